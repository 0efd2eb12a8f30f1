"""Reconciliation of a run: counters per file and club, money in and loaded, the reject
files (in the export's own encoding, with a Reason column) and the JSON report.

Every input row has exactly one ``ImportRow``, and every ``ImportRow`` ends loaded (an
outcome other than rejected) or rejected, so rows in = loaded + rejected holds per file and
club by construction; ``counters`` recomputes it from the rows and says so in ``reconciled``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Any

from django.db import connection

from .mca import DIALECTS, columns
from .models import ImportRow, ImportRun, RowOutcome

ROWS = ImportRow._meta.db_table


def counters(*, run: ImportRun) -> dict[str, Any]:
    """Rows per file, club and outcome; money in, loaded and rejected (minor units)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT file, club_code, outcome, count(*), COALESCE(sum(amount_minor), 0)::bigint,
                   count(*) FILTER (WHERE file = 'transactions' AND amount_minor IS NULL)
            FROM "{ROWS}" WHERE run_id = %s GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            """,  # noqa: S608
            [run.pk],
        )
        rows = cursor.fetchall()
    files: dict[str, dict[str, Any]] = {}
    clubs: dict[str, dict[str, Any]] = {}
    outcomes: dict[str, int] = {}
    money = {"in_minor": 0, "loaded_minor": 0, "rejected_minor": 0, "unreadable_amounts": 0}
    for file, club, outcome, count, amount, unreadable in rows:
        loaded = outcome != RowOutcome.REJECTED
        for bucket in (
            files.setdefault(file, {"rows": 0, "loaded": 0, "rejected": 0}),
            clubs.setdefault(club or "?", {}).setdefault(
                file, {"rows": 0, "loaded": 0, "rejected": 0}
            ),
        ):
            bucket["rows"] += count
            bucket["loaded" if loaded else "rejected"] += count
        if file == "members":
            outcomes[outcome] = outcomes.get(outcome, 0) + count
        if file == "transactions":
            money["in_minor"] += amount
            money["loaded_minor" if loaded else "rejected_minor"] += amount
            money["unreadable_amounts"] += unreadable
    expected = {kind: info.get("rows") for kind, info in run.files.items()}
    reconciled = all(
        b["rows"] == b["loaded"] + b["rejected"]
        for b in [*files.values(), *(f for c in clubs.values() for f in c.values())]
    ) and all(files.get(kind, {}).get("rows", 0) == n for kind, n in expected.items() if n)
    reconciled = reconciled and money["in_minor"] == money["loaded_minor"] + money["rejected_minor"]
    return {
        "files": files,
        "clubs": clubs,
        "member_outcomes": outcomes,
        "money": money,
        "currency": DIALECTS[run.region].currency,
        "reconciled": reconciled,
    }


def member_records(*, run: ImportRun) -> Iterator[dict[str, Any]]:
    """Every member record: club code, member number, line, outcome, profile id, reason."""
    rows = (
        ImportRow.objects.filter(run=run, file="members")
        .order_by("line")
        .values_list("club_code", "member_no", "line", "outcome", "profile_id", "reason")
        .iterator(chunk_size=5000)
    )
    for club, number, line, outcome, profile_id, reason in rows:
        yield {
            "club_code": club,
            "member_no": number,
            "line": line,
            "outcome": outcome,
            "profile_id": str(profile_id) if profile_id and not run.dry_run else None,
            "planned_profile_id": str(profile_id) if profile_id and run.dry_run else None,
            "reason": reason,
        }


def report_write(*, run: ImportRun, handle: IO[str]) -> None:
    """The JSON report, streamed record by record (memory flat)."""
    head = {
        "run": str(run.pk),
        "tenant": run.tenant.slug,
        "region": run.region,
        "source": run.source,
        "dry_run": run.dry_run,
        "status": run.status,
        "exported_at": run.exported_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "files": run.files,
        "counters": run.counters,
    }
    handle.write(json.dumps(head, indent=1)[:-2] + ',\n "members": [')
    for index, record in enumerate(member_records(run=run)):
        handle.write(("," if index else "") + "\n  " + json.dumps(record, ensure_ascii=False))
    handle.write('\n ],\n "rejected": [')
    rejected = (
        ImportRow.objects.filter(run=run, rejected=True)
        .order_by("file", "line")
        .values_list("file", "line", "club_code", "member_no", "reason")
        .iterator(chunk_size=5000)
    )
    for index, (file, line, club, number, reason) in enumerate(rejected):
        item = {"file": file, "line": line, "club_code": club, "member_no": number,
                "reason": reason}  # fmt: skip
        handle.write(("," if index else "") + "\n  " + json.dumps(item, ensure_ascii=False))
    handle.write("\n ]\n}\n")


def rejects_rows(*, run: ImportRun, kind: str) -> Iterator[list[str]]:
    """The reject file of one input file: its header plus ``Reason``, then each rejected row
    as it was read, with its reason."""
    yield [*columns(kind, DIALECTS[run.region]), "Reason"]
    rows = (
        ImportRow.objects.filter(run=run, file=kind, rejected=True)
        .order_by("line")
        .values_list("raw", "reason")
        .iterator(chunk_size=5000)
    )
    for raw, reason in rows:
        yield [*raw, reason]


def export_import_rows(*, tenant: Any, customer: Any, people: list[Any], viewer: Any) -> Any:
    """Export section: the legacy (MCA) import rows that made or updated the person's profile,
    as read and as loaded."""
    rows = ImportRow.objects.filter(tenant=tenant, profile_id__in=people)
    return (
        rows.order_by("run__created_at", "file", "line")
        .values("run__source", "run__created_at", "file", "line", "outcome", "raw", "data")
        .iterator(chunk_size=2000)
    )
