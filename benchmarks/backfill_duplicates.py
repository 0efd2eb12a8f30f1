"""A labelled export for duplicate detection: people, and re-typed copies of some of them
that share no key (no e-mail, mobile or CDH number in common), each with one or two of the
variations real exports have: a typo, first and last names swapped, a nickname, two date
digits transposed, a moved house. Hard negatives too: relatives (same surname and address,
another first name and date of birth) and namesakes (same name, another date of birth).

``python -m benchmarks.backfill_duplicates [--people N]`` (with DATABASE_URL set to a
scratch database) imports one into a scratch tenant and prints the precision and recall of
the merge suggestions at the default threshold, the import's rows/s and the time the
duplicate detection took.
"""

from __future__ import annotations

import csv
import random
from datetime import date, timedelta
from pathlib import Path

from backfill import mca

FIRST = {
    "M": ["William", "Robert", "James", "Michael", "Thomas", "Richard", "Andrew", "David",
          "Johannes", "Hendrik", "Jacobus", "Pieter", "Stephen", "Christopher", "Daniel",
          "Edward", "Samuel", "Benjamin", "Gareth", "Rhys", "Callum", "Hamish", "Sipho",
          "Thabo", "Lwazi", "Kagiso", "Ruan", "Wian", "Liam", "Oliver", "Harvey", "Ewan"],
    "F": ["Elizabeth", "Katherine", "Margaret", "Susan", "Jennifer", "Alexandra", "Maria",
          "Susanna", "Amelia", "Isla", "Grace", "Freya", "Nomsa", "Zanele", "Lerato",
          "Anelisa", "Chloe", "Megan", "Sophie", "Emily", "Olivia", "Lucy", "Hannah",
          "Charlotte", "Annika", "Elna", "Ilse", "Marlize", "Precious", "Thandi", "Fiona"],
}  # fmt: skip
NICK = {"William": "Bill", "Robert": "Bob", "James": "Jim", "Michael": "Mike",
        "Thomas": "Tom", "Richard": "Dick", "Andrew": "Andy", "David": "Dave",
        "Johannes": "Johan", "Hendrik": "Hennie", "Jacobus": "Kobus", "Pieter": "Piet",
        "Stephen": "Steve", "Christopher": "Chris", "Daniel": "Dan", "Edward": "Ted",
        "Samuel": "Sam", "Benjamin": "Ben", "Elizabeth": "Liz", "Katherine": "Kate",
        "Margaret": "Meg", "Susan": "Sue", "Jennifer": "Jen", "Alexandra": "Sandy",
        "Maria": "Marie", "Susanna": "Sannie"}  # fmt: skip
LAST = [
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Robertson",
    "Wright",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Jackson",
    "Clarke",
    "Patel",
    "Khan",
    "Lewis",
    "Harris",
    "Martin",
    "Cooper",
    "King",
    "Lee",
    "Baker",
    "Hughes",
    "MacDonald",
    "Campbell",
    "Stewart",
    "Murray",
    "Reid",
    "Fraser",
    "Nkosi",
    "Dlamini",
    "Mahlangu",
    "Mokoena",
    "Botha",
    "Van Wyk",
    "Pretorius",
    "Coetzee",
    "Steyn",
    "Naidoo",
    "Pillay",
    "Govender",
    "Venter",
    "Erasmus",
    "Moodley",
    "Le Roux",
    "Du Plessis",
    "Fourie",
    "Kruger",
    "Zulu",
    "Ndlovu",
    "O'Neill",
    "Sullivan",
    "Gallagher",
    "Kennedy",
    "Morrison",
    "Henderson",
    "Ferguson",
]
TOWNS = [("Troon", "KA10 6EP"), ("Bath", "BA1 1LZ"), ("Harrogate", "HG1 2AB"),
         ("St Andrews", "KY16 9SF"), ("Chester", "CH1 2HS"), ("Cardiff", "CF10 1AA"),
         ("York", "YO1 7HH"), ("Leeds", "LS1 4AP"), ("Bristol", "BS1 5TR"),
         ("Exeter", "EX1 1HS"), ("Oxford", "OX1 2JD"), ("Durham", "DH1 3RW")]  # fmt: skip
HEADER = list(mca.columns(mca.MEMBERS, mca.DIALECTS["UK"]))
VARIATIONS = ("typo", "swap", "nickname", "transpose", "moved")


def _typo(rng: random.Random, word: str) -> str:
    if len(word) < 4:
        return word + rng.choice("aeiou")
    i = rng.randrange(1, len(word) - 1)
    kind = rng.choice(("sub", "drop", "swap", "double"))
    if kind == "sub":
        return word[:i] + rng.choice("aeioulnrst") + word[i + 1 :]
    if kind == "drop":
        return word[:i] + word[i + 1 :]
    if kind == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return word[:i] + word[i] + word[i:]


def _transpose(day: date) -> date:
    """Two digits of the date swapped (day's digits, or day and month), still a real date."""
    text = day.strftime("%d%m%Y")
    for i, j in ((0, 1), (2, 3), (6, 7), (0, 2)):
        chars = list(text)
        chars[i], chars[j] = chars[j], chars[i]
        swapped = "".join(chars)
        if swapped == text:
            continue
        try:
            return date(int(swapped[4:]), int(swapped[2:4]), int(swapped[:2]))
        except ValueError:
            continue
    return day + timedelta(days=10)


def labelled_export(folder: Path, *, people: int, duplicates: int, seed: int = 7):
    """Write ``members.csv`` (UK spelling) to ``folder``; returns the true pairs as
    ``((club, no), (club, no))`` and the variations used."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows, persons = [], []
    serial = [100000]

    def member(club, p, **over):
        serial[0] += 1
        values = {
            "ClubCode": club, "MemberNo": str(serial[0]), "Title": "", "FirstName": p["first"],
            "Surname": p["last"], "KnownAs": p.get("known", ""), "Gender": p["gender"],
            "DOB": p["dob"].strftime("%d/%m/%Y"), "CDHNumber": f"{rng.randrange(10**9, 10**10)}",
            "Email": f"m{serial[0]}@example.org", "Mobile": f"07700 9{serial[0] % 100000:05d}",
            "HomePhone": "", "Address1": p["address"], "Address2": "", "Town": p["town"],
            "Postcode": p["postcode"], "Category": "Full", "Status": "A",
            "JoinDate": "01/02/2010", "LeftDate": "", "HandicapIndex": "18.2",
            "EmailOptIn": "", "SMSOptIn": "", "LastVisit": "",
        }  # fmt: skip
        values.update(over)
        rows.append([values[h] for h in HEADER])
        return (club, values["MemberNo"])

    for _ in range(people):
        gender = rng.choice("MF")
        town, postcode = rng.choice(TOWNS)
        p = {
            "first": rng.choice(FIRST[gender]), "last": rng.choice(LAST), "gender": gender,
            "dob": date(1940, 1, 1) + timedelta(days=rng.randrange(0, 365 * 60)),
            "address": f"{rng.randrange(1, 200)} {rng.choice(['Links', 'Green', 'Club'])} Road",
            "town": town, "postcode": postcode,
        }  # fmt: skip
        p["key"] = member(rng.choice(("SAN", "HGT")), p)
        persons.append(p)
    pairs, used = [], []
    for p in rng.sample(persons, duplicates):
        copy = dict(p)
        chosen = rng.sample(VARIATIONS, rng.choice((1, 2)))
        for variation in chosen:
            if variation == "typo":
                field = rng.choice(("first", "last"))
                copy[field] = _typo(rng, copy[field])
            elif variation == "swap":
                copy["first"], copy["last"] = copy["last"], copy["first"]
            elif variation == "nickname":
                if copy["first"] in NICK:
                    copy["first"] = NICK[copy["first"]]
                else:
                    copy["known"] = copy["first"][:3]
            elif variation == "transpose":
                copy["dob"] = _transpose(copy["dob"])
            elif variation == "moved":
                copy["town"], copy["postcode"] = rng.choice(TOWNS)
                copy["address"] = f"{rng.randrange(1, 200)} New Street"
        typed = copy["first"].upper() if rng.random() < 0.2 else copy["first"]
        club = rng.choice(("SAN", "HGT"))
        second = member(club, copy, Status=rng.choice("ALR"), FirstName=typed)
        pairs.append((p["key"], second))
        used.append(tuple(chosen))
    # Hard negatives: relatives at the same address, namesakes born on another day.
    for p in rng.sample(persons, max(1, people // 10)):
        relative = dict(p, first=rng.choice(FIRST[p["gender"]]),
                        dob=p["dob"] + timedelta(days=rng.randrange(400, 12000)))  # fmt: skip
        member(rng.choice(("SAN", "HGT")), relative)
    for p in rng.sample(persons, max(1, people // 10)):
        namesake = dict(p, dob=p["dob"] - timedelta(days=rng.randrange(400, 12000)),
                        town=rng.choice(TOWNS)[0])  # fmt: skip
        member(rng.choice(("SAN", "HGT")), namesake)
    rng.shuffle(rows)
    with open(folder / "members.csv", "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(HEADER)
        writer.writerows(rows)
    return pairs, used


def precision_recall(found: set[frozenset], truth: list[tuple]) -> tuple[float, float]:
    expected = {frozenset(pair) for pair in truth}
    hits = len(found & expected)
    precision = hits / len(found) if found else 1.0
    recall = hits / len(expected) if expected else 1.0
    return precision, recall


def measure(*, people: int, slug: str = "bench-backfill", seed: int = 7) -> dict:
    """Import a labelled export of ``people`` (plus a tenth as re-typed copies) into a fresh
    tenant ``slug``; the quality of the duplicates found and the timings."""
    import tempfile
    import time

    from backfill import duplicates
    from backfill.mca import Export
    from backfill.models import ImportRow
    from backfill.runs import run_import
    from crm.models import Club, Tenant
    from customers.models import MergeSuggestion

    Tenant.objects.filter(slug=slug).delete()
    tenant = Tenant.objects.create(slug=slug, name="Bench", region="UK",
                                   timezone="Europe/London", default_phone_region="GB",
                                   currency="GBP")  # fmt: skip
    for code in ("SAN", "HGT"):
        Club.objects.create(tenant=tenant, name=code, timezone="Europe/London")
    timings: dict[str, float] = {}
    real = duplicates.pairs_find

    def timed(**kwargs):
        started = time.monotonic()
        result = real(**kwargs)
        timings["duplicates"] = timings.get("duplicates", 0.0) + time.monotonic() - started
        return result

    duplicates.pairs_find = timed
    try:
        with tempfile.TemporaryDirectory() as folder:
            pairs, _ = labelled_export(
                Path(folder), people=people, duplicates=people // 10, seed=seed
            )
            started = time.monotonic()
            run = run_import(tenant=tenant, export=Export(folder), region="UK")
            total = time.monotonic() - started
    finally:
        duplicates.pairs_find = real
    by_profile: dict = {}
    for row in ImportRow.objects.filter(run=run, file="members"):
        by_profile.setdefault(row.profile_id, []).append((row.club_code, row.member_no))
    suggested = {
        frozenset((a, b))
        for s in MergeSuggestion.objects.for_tenant(tenant)
        for a in by_profile[s.profile_id]
        for b in by_profile[s.candidate_id]
    }
    merged = {
        frozenset((a, b))
        for records in by_profile.values()
        for i, a in enumerate(records)
        for b in records[i + 1 :]
    }
    precision, recall = precision_recall(suggested | merged, pairs)
    rows = run.files["members"]["rows"]
    return {
        "people": people,
        "member_rows": rows,
        "true_pairs": len(pairs),
        "suggested": len(suggested),
        "merged_automatically": len(merged),
        "merged_wrongly": len(merged - {frozenset(pair) for pair in pairs}),
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "import_s": round(total, 1),
        "duplicates_s": round(timings["duplicates"], 1),
        "threshold": duplicates.THRESHOLD,
        "auto_merge_threshold": duplicates.AUTO_MERGE_THRESHOLD,
    }


def main(argv: list[str] | None = None) -> int:
    """Generate a labelled export, import it into a scratch tenant, print the quality and the
    timings. Needs DATABASE_URL (a scratch database: the tenant is dropped and re-made)."""
    import argparse

    import django

    parser = argparse.ArgumentParser(prog="python -m benchmarks.backfill_duplicates")
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    django.setup()
    q = measure(people=args.people, seed=args.seed)
    print(
        f"{q['member_rows']} member rows, {q['true_pairs']} true pairs, {q['suggested']} "
        f"suggested, {q['merged_automatically']} merged automatically ({q['merged_wrongly']} "
        f"wrongly): precision {q['precision']:.3f}, recall {q['recall']:.3f}; import "
        f"{q['import_s']:.1f}s ({q['member_rows'] / q['import_s']:,.0f} rows/s), duplicate "
        f"detection {q['duplicates_s']:.1f}s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
