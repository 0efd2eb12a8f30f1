"""Import runs: start (or resume) a run, stage the files, then plan and load.

States: ``PENDING`` → ``STAGING`` → ``STAGED`` → ``LOADING`` → ``COMPLETED`` (or ``FAILED``).

- Staging streams each file row by row through the transforms and COPYs the rows into
  ``ImportRow`` (one row per input row), then marks the faults only visible across rows
  (a key twice, a round of an unknown member) in SQL. A run killed while staging restages
  from scratch: its rows are deleted first, so it never holds a row twice.
- Planning and loading (``backfill.loading``) run in **one transaction** that also marks the
  run ``COMPLETED``: a run killed while loading leaves nothing behind but its staged rows, and
  started again it plans and loads exactly as an uninterrupted run would. A dry run plans
  (outcomes, profiles it would create or join, duplicates) and writes nothing else.
- A run is found again by its tenant, fingerprint (the files' checksums) and dry-run flag:
  starting the same export again resumes the unfinished run, or, when it completed, starts a
  new run that changes nothing (0 created, 0 updated).

Locks: the run row is locked (``select_for_update``) for the whole load, so two workers given
the same run cannot load it twice; a transaction-level advisory lock per tenant serialises
the loads of one tenant (two exports loading at once could each create the same person).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from crm.models import Club, Tenant

from . import loading, reports
from .mca import (
    DIALECTS,
    FILE_KINDS,
    MEMBERS,
    ROUNDS,
    TRANSACTIONS,
    Dialect,
    Export,
    columns,
    read_raw,
)
from .models import ImportRow, ImportRun, RowOutcome, RunStatus
from .transforms import (
    FieldFault,
    RowRejected,
    member_transform,
    parse_money,
    round_transform,
    transaction_transform,
)

Progress = Callable[[str, int, int | None], None]
ROW_TABLE = ImportRow._meta.db_table
STAGE_COLUMNS = (
    "tenant_id", "run_id", "file", "line", "club_code", "member_no", "raw", "data", "rejected",
    "reason", "outcome", "profile_id", "source_event_id", "amount_minor", "created_at",
    "updated_at",
)  # fmt: skip
STAGE_CHUNK = 5000  # input rows per chunk given to a staging process
# Staging processes for the transforms (the CPU-bound part of staging).
STAGING_PROCESSES = min(4, os.cpu_count() or 1)
PROGRESS_TTL = 2 * 3600
# Memory of each sort and hash of the staging and load transactions (their aggregates and
# joins run over every row of the run: spilled to disk at the default 4 MB).
WORK_MEM = "128MB"


def _session_tune(cursor: Any) -> None:
    """Settings of the staging and load transactions (``SET LOCAL``: they end with them).
    No JIT: every statement here is costed over the whole run, so PostgreSQL compiles each
    one, about a second apiece (profiled: 1.2 s of a 2.6 s UPDATE), more than most of them
    take to run."""
    cursor.execute(
        "SELECT set_config('work_mem', %s, true), set_config('jit', 'off', true)", [WORK_MEM]
    )


def progress_key(run_id: Any) -> str:
    """Cache key of a running import's progress. The cache, not the run row: the staging and
    the load each run in one transaction, whose writes nobody sees until they commit."""
    return f"backfill:progress:{run_id}"


class ImportRefused(ValidationError):
    """The run cannot start (unknown club codes, bad region); nothing was written."""


def _no_progress(phase: str, done: int, total: int | None) -> None:
    return None


def club_codes(export: Export, dialect: Dialect) -> set[str]:
    """Every ClubCode of the export (a streaming pass over the files)."""
    codes: set[str] = set()
    for kind in FILE_KINDS:
        if kind in export.names:
            for _, raw in read_raw(export, kind, dialect):
                if raw[0].strip():
                    codes.add(raw[0].strip().upper())
    return codes


def club_map_resolve(*, tenant: Tenant, codes: set[str], mapping: dict[str, str]) -> dict[str, str]:
    """ClubCode -> club id: the ``--club-map CODE=CLUB`` given (a club id or name), else a
    club of the tenant named like the code. Raises ``ImportRefused`` listing unknown codes."""
    clubs = list(Club.objects.for_tenant(tenant).values_list("id", "name"))
    by_id = {str(pk): str(pk) for pk, _ in clubs}
    by_name = {name.strip().upper(): str(pk) for pk, name in clubs}
    resolved, unknown = {}, []
    for code in sorted(codes):
        target = mapping.get(code)
        club = (
            (by_id.get(target) or by_name.get(target.strip().upper())) if target else None
        ) or by_name.get(code)
        if club is None:
            unknown.append(code)
        else:
            resolved[code] = club
    if unknown:
        raise ImportRefused(
            {"club_map": [f"Unknown club codes (map them with CODE=CLUB): {', '.join(unknown)}"]}
        )
    return resolved


def run_start(
    *,
    tenant: Tenant,
    export: Export,
    region: str,
    dry_run: bool = False,
    club_map: dict[str, str] | None = None,
    exported_at: datetime | None = None,
    requested_by: str = "",
    now: datetime | None = None,
) -> ImportRun:
    """Check the export and its club codes, then create the run, or return the unfinished run
    of the same export (resume). Nothing is written when a check fails."""
    now = now or timezone.now()
    if region not in DIALECTS:
        raise ImportRefused({"region": [f"Region must be one of {', '.join(DIALECTS)}."]})
    dialect = DIALECTS[region]
    clubs = club_map_resolve(
        tenant=tenant, codes=club_codes(export, dialect), mapping=club_map or {}
    )
    files = {kind: {"name": export.names[kind], "sha256": export.checksum(kind)}
             for kind in FILE_KINDS if kind in export.names}  # fmt: skip
    fingerprint = hashlib.sha256(json.dumps([region, files], sort_keys=True).encode()).hexdigest()
    unfinished = (
        ImportRun.objects.for_tenant(tenant)
        .filter(fingerprint=fingerprint, dry_run=dry_run)
        .exclude(status=RunStatus.COMPLETED)
        .order_by("-created_at")
        .first()
    )
    if unfinished is not None:
        return unfinished
    return ImportRun.objects.create(
        tenant=tenant,
        region=region,
        source=export.path.name,
        files=files,
        fingerprint=fingerprint,
        dry_run=dry_run,
        exported_at=exported_at or _export_time(export),
        club_map=clubs,
        requested_by=requested_by,
        started_at=now,
    )


def _export_time(export: Export) -> datetime:
    """When the export was written: the members file's modification time (stable across
    re-imports of the same files; ``--exported-at`` overrides it)."""
    if export._zip is not None:
        info = export._zip.getinfo(export.names[MEMBERS])
        return datetime(*info.date_time, tzinfo=UTC)
    stamp = (export.path / export.names[MEMBERS]).stat().st_mtime
    return datetime.fromtimestamp(stamp, tz=UTC)


# A version 4 (random) UUID as 32 hex digits (what PostgreSQL's uuid input reads): 1.6 µs a
# row, ``str(uuid.uuid4())`` 5 µs (measured at load ~7).
_UUID4_MASK = int("ffffffffffff0fff3fffffffffffffff", 16)
_UUID4_BITS = int("00000000000040008000000000000000", 16)


def _uuid4_hex() -> str:
    return "%032x" % (int.from_bytes(os.urandom(16)) & _UUID4_MASK | _UUID4_BITS)


def _event_id(region: str, kind: str, parts: list[Any]) -> str:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:40]
    return f"{region}:{kind}:{digest}"


def _staged_row(
    head: tuple[str, str, str, date], kind: str, dialect: Dialect, line: int, raw: list[str]
) -> tuple:
    """One input row's staged values: transformed, or rejected with its reason."""
    region = dialect.region
    tenant_id, run_id, now, as_of = head
    expected = columns(kind, dialect)
    club = raw[0].strip().upper() if raw else ""
    number = raw[1].strip() if len(raw) > 1 else ""
    fields = dict(zip(expected, raw, strict=True)) if len(raw) == len(expected) else None
    data: dict[str, Any] = {}
    reason, rejected, event_id, amount = "", False, "", None
    if fields is None:
        rejected = True
        reason = f"row with {len(raw)} fields, the header has {len(expected)}"
    else:
        try:
            if kind == MEMBERS:
                data, flags = member_transform(fields, dialect, as_of=as_of)
                reason = "; ".join(flags)
            elif kind == ROUNDS:
                data = round_transform(fields, dialect)
                event_id = _event_id(region, "round", list(data.values()))
            else:
                data = transaction_transform(fields, dialect)
                amount = data["amount_minor"]
                event_id = _event_id(region, "txn", [data["club"], data["reference"]])
        except RowRejected as exc:
            rejected, reason = True, str(exc)
    if kind == TRANSACTIONS and amount is None and fields is not None:
        # Money in is every amount read, loaded or not (reconciliation).
        amount = _amount_or_none(fields["Amount"], dialect)
    # A loadable member row is staged with the commonest plan (see ``outcome_staged``): a new
    # person of its own, with the id that person's profile will have (random, as any other
    # profile id). Planning rewrites only the rows whose plan differs.
    profile_id = _uuid4_hex() if kind == MEMBERS and not rejected else None
    return (
        tenant_id, run_id, kind, line, club[:16], number[:32], json.dumps(raw),
        json.dumps(data), rejected, reason, outcome_staged(kind, rejected), profile_id,
        event_id, amount, now, now,
    )  # fmt: skip


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_COPY_LINE_BREAK = re.compile(r"[\n\r]")


def _copy_text(values: tuple) -> str:
    """One line of COPY's text format (what ``copy.write_row`` sends, built without it).
    Most rows need no escape at all: the joined line is checked once (its only tabs the
    separators, its only backslashes those of ``\\N``, no line break), and only a row that
    fails is escaped value by value (a search is much cheaper than ``translate``)."""
    texts = [
        "\\N" if value is None
        else ("t" if value else "f") if value is True or value is False
        else str(value)
        for value in values
    ]  # fmt: skip
    line = "\t".join(texts)
    nulls = sum(value is None for value in values)  # their \N: the only backslashes
    if (
        line.count("\t") == len(texts) - 1
        and line.count("\\") == nulls
        and not _COPY_LINE_BREAK.search(line)
    ):
        return line + "\n"
    return (
        "\t".join(
            text
            if value is None or not _COPY_SPECIAL.search(text)
            else text.translate(_COPY_ESCAPES)
            for value, text in zip(values, texts, strict=True)
        )
        + "\n"
    )


def stage_chunk(job: tuple) -> tuple[int, str]:
    """A chunk of input rows as COPY text (run in the staging processes)."""
    head, kind, region, rows = job
    dialect = DIALECTS[region]
    return len(rows), "".join(
        _copy_text(_staged_row(head, kind, dialect, line, raw)) for line, raw in rows
    )


def _chunks(export: Export, kind: str, dialect: Dialect, head: tuple) -> Iterator[tuple]:
    chunk: list[tuple[int, list[str]]] = []
    for line, raw in read_raw(export, kind, dialect):
        chunk.append((line, raw))
        if len(chunk) >= STAGE_CHUNK:
            yield head, kind, dialect.region, chunk
            chunk = []
    if chunk:
        yield head, kind, dialect.region, chunk


def _staged_text(jobs: Iterator[tuple], pool: Any) -> Iterator[tuple[int, str]]:
    """The chunks transformed, in order: by the pool's processes with at most two chunks
    each in flight (memory stays flat), or here when there is no pool."""
    if pool is None:
        yield from map(stage_chunk, jobs)
        return
    pending: deque = deque()
    for job in jobs:
        pending.append(pool.apply_async(stage_chunk, (job,)))
        if len(pending) >= 2 * STAGING_PROCESSES:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


def _staging_pool() -> Any:
    """Processes for the per-row transforms (Python, CPU-bound): forked, so they share the
    loaded code; none when there is one CPU or this process may not have children."""
    if STAGING_PROCESSES < 2:
        return None
    try:
        return multiprocessing.get_context("fork").Pool(STAGING_PROCESSES)
    except (AssertionError, OSError):  # a daemonic process (some worker pools)
        return None


def outcome_staged(kind: str, rejected: bool) -> str:
    """A round or transaction is ``loaded`` from staging on unless a check rejects it (its
    profile comes from its member row when the activity is written): planning never
    rewrites the millions of history rows. A member row is staged ``created`` (with the id of
    the profile it would create): the plan of most rows (a person of one record, new to the
    CRM), so planning rewrites only the rows whose plan differs (joined, suggested, updated,
    unchanged, merged), not every member row (a non-HOT update of the wide staged rows). The
    staged outcome is provisional until the run completes; nothing reads it before."""
    if rejected:
        return RowOutcome.REJECTED
    return RowOutcome.CREATED if kind == MEMBERS else RowOutcome.LOADED


def _amount_or_none(value: str, dialect: Dialect) -> int | None:
    try:
        return parse_money(value, dialect)
    except FieldFault:
        return None


def run_stage(*, run: ImportRun, export: Export, progress: Progress = _no_progress) -> None:
    """Stage every file of the export (COPY), then mark the cross-row faults."""
    dialect = DIALECTS[run.region]
    ImportRun.objects.filter(pk=run.pk).update(status=RunStatus.STAGING)
    with transaction.atomic():
        ImportRow.objects.filter(run=run).delete()
        # The rows' timestamps, and the export's date in the region (the day a date of birth
        # would be in the future).
        as_of = run.exported_at.astimezone(ZoneInfo(dialect.timezone)).date()
        head = (str(run.tenant_id), str(run.pk), timezone.now().isoformat(), as_of)
        pool = _staging_pool()
        try:
            with connection.cursor() as cursor:
                _session_tune(cursor)
                for kind in FILE_KINDS:
                    if kind not in export.names:
                        continue
                    done = 0
                    sql = f"COPY {ROW_TABLE} ({', '.join(STAGE_COLUMNS)}) FROM STDIN"
                    jobs = _chunks(export, kind, dialect, head)
                    with cursor.copy(sql) as copy:
                        for count, text in _staged_text(jobs, pool):
                            copy.write(text)
                            done += count
                            progress(f"staging {kind}", done, None)
                    progress(f"staging {kind}", done, done)
                    run.files[kind]["rows"] = done
                # Fresh statistics: the planner otherwise takes the COPYed table for empty.
                cursor.execute(f"ANALYZE {ROW_TABLE}")
        finally:
            if pool is not None:
                pool.terminate()
        progress("checking", 0, None)
        loading.stage_checks(run=run)
        run.status = RunStatus.STAGED
        run.save(update_fields=["status", "files", "updated_at"])


class _PhaseTimer:
    """Passes progress on and adds up the seconds spent in each phase (the run's page and
    the benchmark read them from ``ImportRun.progress["seconds"]``)."""

    def __init__(self, progress: Progress) -> None:
        self.progress, self.seconds = progress, {}  # type: dict[str, float]
        self.phase, self.since = "", time.monotonic()

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        if phase != self.phase:
            self.stop()
            self.phase = phase
        self.progress(phase, done, total)

    def stop(self) -> dict[str, float]:
        now = time.monotonic()
        if self.phase:
            self.seconds[self.phase] = round(self.seconds.get(self.phase, 0) + now - self.since, 2)
        self.since = now
        return self.seconds


def run_load(*, run: ImportRun, now: datetime | None = None, progress: Progress = _no_progress):
    """Plan and (unless a dry run) load, in one transaction that ends the run COMPLETED."""
    now = now or timezone.now()
    loading.stats_refresh()  # outside the transaction: its lock is released at once
    with transaction.atomic():
        locked = ImportRun.objects.select_for_update().get(pk=run.pk)
        if locked.status == RunStatus.COMPLETED:
            return locked
        # One load per tenant at a time: two exports loading at once could each create the
        # same new person (neither sees the other's uncommitted aliases).
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", [f"backfill:{run.tenant_id}"]
            )
            _session_tune(cursor)
        locked.status = RunStatus.LOADING
        timed = _PhaseTimer(progress)
        timed("planning", 0, None)
        loading.plan(run=locked, now=now, progress=timed)
        if not locked.dry_run:
            timed("loading", 0, None)
            loading.apply(run=locked, now=now, progress=timed)
        timed("counting", 0, None)
        locked.counters = reports.counters(run=locked)
        locked.status = RunStatus.COMPLETED
        locked.finished_at = now
        locked.progress = {"phase": "completed", "seconds": timed.stop()}
        locked.save()
        # The commit runs the deferred foreign-key checks of every row written (two per
        # activity: millions): its own phase for the caller's timings, not "counting".
        progress("committing", 0, None)
    progress("completed", 1, 1)
    return locked


def run_import(
    *,
    tenant: Tenant,
    export: Export,
    region: str,
    dry_run: bool = False,
    club_map: dict[str, str] | None = None,
    exported_at: datetime | None = None,
    requested_by: str = "",
    progress: Progress = _no_progress,
    now: datetime | None = None,
) -> ImportRun:
    """Start or resume a run and take it to the end (the command and the task call this)."""
    run = run_start(
        tenant=tenant, export=export, region=region, dry_run=dry_run, club_map=club_map,
        exported_at=exported_at, requested_by=requested_by, now=now,
    )  # fmt: skip
    return run_continue(run=run, export=export, progress=progress, now=now)


def run_continue(
    *,
    run: ImportRun,
    export: Export,
    progress: Progress = _no_progress,
    now: datetime | None = None,
) -> ImportRun:
    try:
        if run.status in (RunStatus.PENDING, RunStatus.STAGING, RunStatus.FAILED):
            run_stage(run=run, export=export, progress=progress)
        return run_load(run=run, now=now, progress=progress)
    except Exception as exc:
        ImportRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, error=str(exc)[:2000])
        raise
