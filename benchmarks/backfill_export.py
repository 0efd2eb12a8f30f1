"""A generated MCA v1 ZA export at scale, for the ``backfill`` suite.

``za_export(folder, members=1_000_000)`` writes ``members.csv``, ``rounds.csv`` (5 per
member record) and ``transactions.csv`` (3 per member record) in the ZA spelling
(Windows-1252, ``;``, CRLF, decimal commas), deterministic for a seed, with what real exports
hold (shared/design/mca-v1-format.md):

- the same person at a second club (same e-mail and ID number), re-joined at the same club
  under a new number (same ID number), and re-typed copies sharing no key (a typo, swapped
  names, a nickname, transposed date digits, no e-mail): about 4 %, 2 % and 1 % of records;
- every phone spelling (``082 123 4567``, ``0821234567``, ``+27 82 123 4567``,
  ``27821234567``, ``(011) 555-1234``), names in capitals, trailing spaces, ``é``;
- faults, about 0.1 % each: impossible or wrongly formatted dates, a wrong ID check digit,
  e-mails with spaces or two ``@``, phones too short, rows with a field too many, rounds and
  transactions of unknown members, a transaction ``Reference`` twice.

Files are written once and kept (``var/bench/backfill/za-<members>-<seed>/``, marked
complete by a ``.complete`` file), so re-runs of the suite reuse them.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path

from backfill import mca
from backfill.transforms import luhn_ok

from .backfill_duplicates import FIRST, LAST, NICK, _transpose, _typo
from .harness import ROOT

CACHE = ROOT / "var" / "bench" / "backfill"
CLUBS = ("RGC", "SVG", "DGC", "KGC", "HGC", "PGC", "WGC", "EGC")
TOWNS = [("Pretoria", "0081"), ("Centurion", "0157"), ("Stellenbosch", "7600"),
         ("Durban", "4001"), ("Johannesburg", "2001"), ("Cape Town", "8001"),
         ("Bloemfontein", "9301"), ("George", "6529"), ("Knysna", "6570"),
         ("Port Elizabeth", "6001"), ("Paarl", "7646"), ("Rustenburg", "0299")]  # fmt: skip
CATEGORIES = ("Full", "FULL MEMBER", "5-Day", "Junior", "Senior", "Social", "Country", "Life")
# Surnames: the labelled set's plus syllable compounds (a few thousand, as at real clubs).
_HEADS = ("Van", "Ber", "Mo", "Nko", "Pre", "Ste", "Kru", "Jo", "Mah", "Dla", "Bo", "Ven",
          "Coe", "Fou", "Mar", "Wil", "Ro", "Har", "Thom", "Ed", "Gal", "Ken", "Mor", "Fer",
          "Hen", "Ma", "Na", "Pil", "Go", "Le", "Du", "Zu", "Ndl", "Sul", "Ker", "Lou",
          "Smi", "Tay", "Bro", "Wal")  # fmt: skip
_TAILS = ("ster", "ena", "kosi", "lamini", "torius", "yn", "ger", "nson", "langu", "tha",
          "ter", "tzee", "rie", "tin", "liams", "berts", "ris", "pson", "wards", "lagher",
          "nedy", "rison", "guson", "derson", "hlaba", "idoo", "lay", "vender", "roux",
          "plessis", "lu", "ovu", "livan", "ridge", "rens", "th",
          "lor", "wn", "ker", "ton")  # fmt: skip
SURNAMES = LAST + [h + t for h in _HEADS for t in _TAILS]
FIRSTS = {g: names + [n + suffix for n in names for suffix in ("a", "e", "ie", "o")]
          for g, names in FIRST.items()}  # fmt: skip
COURSES = ("Championship", "Valley", "Links", "Lakes", "Old", "New")
COMPETITIONS = ("", "", "", "Monthly Medal", "Club Championship", "Ladies Open", "Stableford")
TXN_TYPES = ("SUB", "GF", "POS", "POS", "LEVY", "REFUND")
FAULT = 0.001


def _luhn_digit(body: str) -> str:
    return next(digit for digit in "0123456789" if luhn_ok(body + digit))


def _za_id(dob: date, gender: str, serial: int) -> str:
    sequence = (5000 if gender == "M" else 0) + serial % 5000
    body = f"{dob:%y%m%d}{sequence:04d}08"
    return body + _luhn_digit(body)


def _mobile(rng: random.Random, number: int) -> str:
    prefix = rng.choice(("82", "83", "84", "72", "73", "76", "79", "81"))
    rest = f"{number % 10_000_000:07d}"
    shape = rng.random()
    if shape < 0.4:
        return f"0{prefix} {rest[:3]} {rest[3:]}"
    if shape < 0.7:
        return f"0{prefix}{rest}"
    if shape < 0.85:
        return f"+27 {prefix} {rest[:3]} {rest[3:]}"
    if shape < 0.95:
        return f"27{prefix}{rest}"
    return f"+27{prefix}{rest}"


def _person(rng: random.Random, serial: int) -> dict:
    gender = rng.choice("MF")
    town, postal = rng.choice(TOWNS)
    dob = date(1935, 1, 1) + timedelta(days=rng.randrange(0, 365 * 72))
    first = rng.choice(FIRSTS[gender])
    last = rng.choice(SURNAMES)
    local = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
    return {
        "first": first, "last": last, "gender": gender, "dob": dob,
        "id": _za_id(dob, gender, serial),
        "email": f"{local}{serial}@{rng.choice(('example.org', 'example.co.za', 'mail.test'))}",
        "mobile": _mobile(rng, serial),
        "address": f"{rng.randrange(1, 300)} {rng.choice(('Links', 'Green', 'Club', 'Fairway'))} "
                   f"{rng.choice(('Road', 'Lane', 'Drive'))}",
        "town": town, "postal": postal,
    }  # fmt: skip


def _member_row(rng: random.Random, club: str, number: int, p: dict, faults: bool) -> list[str]:
    status = rng.choices("ASRLD", weights=(70, 3, 12, 13, 2))[0]
    join = date(1990, 1, 1) + timedelta(days=rng.randrange(0, 12000))
    left = join + timedelta(days=rng.randrange(100, 3000)) if status in "RL" else None
    first, last = p["first"], p["last"]
    dob_text = p["dob"].strftime("%d/%m/%Y")
    national, email, mobile = p["id"], p["email"], p["mobile"]
    if rng.random() < 0.05:
        first, last = first.upper(), last.upper()
    if rng.random() < 0.02:
        first = first + "  "
    if rng.random() < 0.005:
        first = "Ren\u00e9" if p["gender"] == "M" else "Ren\u00e9e"
    extra: list[str] = []
    if faults:
        fault = rng.randrange(8)
        if fault == 0:
            dob_text = "31/02/2019"
        elif fault == 1:
            dob_text = p["dob"].strftime("%Y-%m-%d")
        elif fault == 2:
            national = national[:-1] + str((int(national[-1]) + 1) % 10)
        elif fault == 3:
            email = email.replace(".", " ", 1)
        elif fault == 4:
            email = email.replace("@", "@@")
        elif fault == 5:
            mobile = "082 123"
        elif fault == 6:
            extra = ["extra"]
        else:
            dob_text = "00/00/0000"
    row = [
        club, str(number), rng.choice(("Mr", "Mrs", "Ms", "Dr", "")), first, last,
        first[:3] if rng.random() < 0.1 else "", p["gender"], dob_text, national, email,
        mobile, "(011) 555-1234" if rng.random() < 0.2 else "", p["address"], "", p["town"],
        p["postal"], rng.choice(CATEGORIES), status, join.strftime("%d/%m/%Y"),
        left.strftime("%d/%m/%Y") if left else "",
        f"{rng.randrange(0, 400) / 10:.1f}".replace(".", ","),
        rng.choice(("Y", "N", "")), rng.choice(("Y", "N", "")),
        (date(2023, 1, 1) + timedelta(days=rng.randrange(0, 600))).strftime("%d/%m/%Y")
        + f" {rng.randrange(6, 19):02d}:{rng.randrange(0, 60):02d}",
    ]  # fmt: skip
    return row + extra


def _retyped(rng: random.Random, p: dict) -> dict:
    """The same person typed again by another club: no shared key, one or two variations."""
    copy = dict(p, email="", id="", mobile=_mobile(rng, rng.randrange(10**7)))
    for variation in rng.sample(("typo", "swap", "nickname", "transpose", "moved"), 2):
        if variation == "typo":
            field = rng.choice(("first", "last"))
            copy[field] = _typo(rng, copy[field])
        elif variation == "swap":
            copy["first"], copy["last"] = copy["last"], copy["first"]
        elif variation == "nickname" and copy["first"] in NICK:
            copy["first"] = NICK[copy["first"]]
        elif variation == "transpose":
            copy["dob"] = _transpose(copy["dob"])
        elif variation == "moved":
            copy["town"], copy["postal"] = rng.choice(TOWNS)
    return copy


def _write(path: Path, header: list[str], rows) -> None:
    dialect = mca.DIALECTS["ZA"]
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as handle:
        mca.write_rows(handle, dialect, iter([header]))
        buffer: list[list[str]] = []
        for row in rows:
            buffer.append(row)
            if len(buffer) >= 50_000:
                mca.write_rows(handle, dialect, iter(buffer))
                buffer.clear()
        mca.write_rows(handle, dialect, iter(buffer))
    tmp.rename(path)


def za_export(members: int, *, seed: int = 11, folder: Path | None = None) -> Path:
    """The export folder for ``members`` member records (written unless already complete)."""
    folder = folder or CACHE / f"za-{members}-{seed}"
    if (folder / ".complete").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    keys: list[tuple[str, int]] = []

    def member_rows():
        serial, number = 0, 100000
        persons: list[dict] = []
        while len(keys) < members:
            serial += 1
            number += 1
            p = _person(rng, serial)
            club = rng.choice(CLUBS)
            keys.append((club, number))
            yield _member_row(rng, club, number, p, rng.random() < 8 * FAULT)
            if len(persons) < 5000:
                persons.append(p)
            else:
                persons[rng.randrange(5000)] = p
            shape = rng.random()
            if shape < 0.07 and len(keys) < members:
                other = rng.choice(persons)
                if shape < 0.04:  # the same person at another club: same keys
                    copy, club = other, rng.choice(CLUBS)
                elif shape < 0.06:  # re-joined under a new number: same ID number
                    copy = dict(other, email="", mobile=_mobile(rng, rng.randrange(10**7)))
                else:  # typed again without a shared key
                    copy, club = _retyped(rng, other), rng.choice(CLUBS)
                number += 1
                keys.append((club, number))
                yield _member_row(rng, club, number, copy, False)

    header = list(mca.columns(mca.MEMBERS, mca.DIALECTS["ZA"]))
    _write(folder / "members.csv", header, member_rows())

    def round_rows():
        for _ in range(members * 5):
            club, number = keys[rng.randrange(len(keys))]
            if rng.random() < FAULT:
                number = 1  # not in members.csv
            holes = rng.choice((18, 18, 18, 9))
            gross = rng.randrange(65, 120) if holes == 18 else rng.randrange(32, 60)
            played = date(2015, 1, 1) + timedelta(days=rng.randrange(0, 3600))
            yield [club, str(number), played.strftime("%d/%m/%Y"), rng.choice(COURSES),
                   str(holes), str(gross), str(rng.randrange(15, 44)),
                   rng.choice(COMPETITIONS)]  # fmt: skip

    _write(folder / "rounds.csv", list(mca.COLUMNS[mca.ROUNDS]), round_rows())

    def transaction_rows():
        for index in range(members * 3):
            club, number = keys[rng.randrange(len(keys))]
            if rng.random() < FAULT:
                number = 1
            kind = rng.choice(TXN_TYPES)
            cents = rng.randrange(1000, 900_000)
            amount = f"{cents // 100:,}".replace(",", " ") + f",{cents % 100:02d}"
            reference = index - 1 if index and rng.random() < FAULT else index
            on = date(2015, 1, 1) + timedelta(days=rng.randrange(0, 3600))
            yield [club, str(number), on.strftime("%d/%m/%Y"), kind,
                   ("-" if kind == "REFUND" else "") + amount, f"{club}-{reference}"]  # fmt: skip

    _write(folder / "transactions.csv", list(mca.COLUMNS[mca.TRANSACTIONS]), transaction_rows())
    (folder / ".complete").write_text("ok\n")
    return folder


if __name__ == "__main__":
    import sys
    import time

    started = time.monotonic()
    path = za_export(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
    print(path, f"{time.monotonic() - started:.1f}s")
