"""Duplicate detection on a generated labelled set: precision and recall of the merge
suggestions and automatic merges at the default thresholds (targets: precision >= 0.95,
recall >= 0.90; automatic merges: no false one)."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import date

import pytest

from backfill.duplicates import THRESHOLD
from backfill.models import ImportRow, RowOutcome
from benchmarks.backfill_duplicates import HEADER, labelled_export, precision_recall
from customers.models import CustomerProfile, MergeSuggestion

from .helpers import do_import, region_tenant

pytestmark = pytest.mark.django_db


def _by_profile(run) -> dict:
    by_profile: dict = {}
    for row in ImportRow.objects.filter(run=run, file="members"):
        by_profile.setdefault(row.profile_id, []).append((row.club_code, row.member_no))
    return by_profile


def _merged_pairs(run) -> set[frozenset]:
    """Records the import itself made one person (the copies share no key, so every profile
    with two records is an automatic merge)."""
    return {
        frozenset((a, b))
        for records in _by_profile(run).values()
        for i, a in enumerate(records)
        for b in records[i + 1 :]
    }


def _suggested_pairs(tenant, run) -> set[frozenset]:
    """Pairs of records that ended as one profile or in a merge suggestion."""
    by_profile = _by_profile(run)
    found = _merged_pairs(run)
    for s in MergeSuggestion.objects.for_tenant(tenant):
        for a in by_profile[s.profile_id]:
            for b in by_profile[s.candidate_id]:
                found.add(frozenset((a, b)))
    return found


def test_precision_and_recall_on_a_labelled_set(tmp_path):
    pairs, variations = labelled_export(tmp_path, people=800, duplicates=200, seed=11)
    tenant = region_tenant("UK")
    run = do_import(tenant, "UK", path=tmp_path)
    outcomes = run.counters["member_outcomes"]
    merged = _merged_pairs(run)
    # The copies share no key: every join is an automatic merge, and every one is right.
    assert outcomes.get("joined", 0) == len(merged) > 0
    assert merged <= {frozenset(pair) for pair in pairs}
    joined = ImportRow.objects.filter(run=run, outcome=RowOutcome.JOINED)
    assert all("merged automatically with line" in row.reason for row in joined)
    found = _suggested_pairs(tenant, run)
    precision, recall = precision_recall(found, pairs)
    print(
        f"duplicates: {len(pairs)} true pairs, {len(found)} found ({len(merged)} merged), "
        f"precision {precision:.3f}, recall {recall:.3f}"
    )
    missed = [v for pair, v in zip(pairs, variations, strict=True) if frozenset(pair) not in found]
    assert precision >= 0.95, (precision, len(found))
    assert recall >= 0.90, (recall, Counter(missed))
    # The later record of each suggested pair is reported as "suggested", with evidence.
    assert outcomes[RowOutcome.SUGGESTED] > 0
    suggestion = MergeSuggestion.objects.for_tenant(tenant).first()
    assert suggestion.evidence["score"] >= THRESHOLD and "name" in suggestion.evidence


def test_each_kind_of_variation_is_found(tmp_path):
    pairs, variations = labelled_export(tmp_path, people=400, duplicates=150, seed=3)
    tenant = region_tenant("UK")
    found = _suggested_pairs(tenant, do_import(tenant, "UK", path=tmp_path))
    by_kind: dict[str, list[bool]] = {}
    for pair, used in zip(pairs, variations, strict=True):
        for kind in used:
            by_kind.setdefault(kind, []).append(frozenset(pair) in found)
    for kind, hits in by_kind.items():
        assert sum(hits) / len(hits) >= 0.8, (kind, sum(hits), len(hits))


def _members_csv(folder, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "members.csv", "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(HEADER)
        for row in rows:
            writer.writerow([row.get(column, "") for column in HEADER])


# Two members, no key in common with anyone else.
_AMELIA_AND_CALLUM = [
    {"ClubCode": "SAN", "MemberNo": "501", "FirstName": "AMELIA", "Surname": "Fraser",
     "Gender": "F", "DOB": "04/03/1971", "Email": "a.fraser@example.org", "Status": "A"},
    {"ClubCode": "HGT", "MemberNo": "502", "FirstName": "Callum", "Surname": "Reid",
     "Gender": "M", "DOB": "09/09/1980", "Status": "A"},
]  # fmt: skip


def _profile(tenant, **fields):
    return CustomerProfile.objects.create(tenant=tenant, currency="GBP", **fields)


def test_a_record_like_an_existing_profile_without_a_shared_key_is_suggested(tmp_path):
    """A person already in the CRM (from the API, no legacy key) typed again in the export
    with another e-mail: a merge suggestion against that profile, not a silent new person."""
    tenant = region_tenant("UK")
    born = date(1971, 3, 4)
    existing = _profile(tenant, first_name="Amelia", last_name="Fraser", date_of_birth=born,
                        email="amelia@elsewhere.test")  # fmt: skip
    namesake = _profile(tenant, first_name="Amelia", last_name="Fraser",
                        date_of_birth=date(1958, 11, 20))  # fmt: skip
    elsewhere = _profile(region_tenant("UK", slug="bf-other"), first_name="Amelia",
                         last_name="Fraser", date_of_birth=born)  # fmt: skip
    _members_csv(tmp_path, _AMELIA_AND_CALLUM)

    run = do_import(tenant, "UK", tmp_path)

    rows = {r.member_no: r for r in ImportRow.objects.filter(run=run, file="members")}
    assert rows["501"].outcome == RowOutcome.SUGGESTED
    assert rows["502"].outcome == RowOutcome.CREATED
    suggestions = list(MergeSuggestion.objects.for_tenant(tenant))
    assert [{s.profile_id, s.candidate_id} for s in suggestions] == [
        {rows["501"].profile_id, existing.pk}
    ]
    assert suggestions[0].evidence["existing_profile"] == str(existing.pk)
    assert suggestions[0].evidence["date_of_birth"] == 1.0
    assert namesake.pk not in {suggestions[0].profile_id, suggestions[0].candidate_id}
    assert not MergeSuggestion.objects.filter(candidate_id=elsewhere.pk).exists()
    assert not MergeSuggestion.objects.filter(profile_id=elsewhere.pk).exists()

    again = do_import(tenant, "UK", tmp_path)  # a completed export again: nothing new
    assert again.pk != run.pk and MergeSuggestion.objects.for_tenant(tenant).count() == 1


def test_a_profile_created_after_an_import_is_compared_when_the_export_comes_again(tmp_path):
    """On a second import the run's people are not compared with the profiles they already
    are, but a profile created since (the API, no shared key) still is."""
    tenant = region_tenant("UK")
    _members_csv(tmp_path, _AMELIA_AND_CALLUM)
    first = do_import(tenant, "UK", tmp_path)
    assert not MergeSuggestion.objects.for_tenant(tenant).exists()
    since = _profile(tenant, first_name="Callum", last_name="Reid", date_of_birth=date(1980, 9, 9),
                     email="callum.reid@elsewhere.test")  # fmt: skip

    again = do_import(tenant, "UK", tmp_path)

    rows = {r.member_no: r for r in ImportRow.objects.filter(run=again, file="members")}
    assert {r.outcome for r in rows.values()} == {RowOutcome.UNCHANGED}
    callum = ImportRow.objects.get(run=first, member_no="502").profile_id
    assert rows["502"].profile_id == callum
    suggestions = list(MergeSuggestion.objects.for_tenant(tenant))
    assert [{s.profile_id, s.candidate_id} for s in suggestions] == [{callum, since.pk}]
    assert suggestions[0].evidence["existing_profile"] == str(since.pk)
