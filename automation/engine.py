"""The journey engine: enrollment, the sweep that advances due enrollments, and the step
executors.

States of an enrollment: ACTIVE (at ``step_key``, looked at again from ``due_at``) ->
COMPLETED (reached END) | CONVERTED (reached the goal) | EXITED (exit criteria, journey
archived, erased) | FAILED (a step kept failing; ``error`` says why).

The sweep (``journeys_advance``: every minute from beat, and kicked right after people
enroll or a subscribed event arrives) claims due ACTIVE enrollments of ACTIVE journeys in
batches with ``SELECT ... FOR UPDATE SKIP LOCKED`` and advances them **set-wise**: the
enrollments at the same step of the same version are one group, and each group's effect
(the message rows, the profile updates, the notes) and its move (enrollment rows, the closed
history row, the new history row) are a few statements, all in the claim's transaction. A
worker killed mid-sweep rolls the whole batch back; the next sweep does it again, so every
step runs exactly once per visit (message rows are also unique per step visit and channel).
Immediate steps are followed in further rounds of the same sweep; WAIT steps set ``due_at``
(no Celery ETAs). A group whose step raises is retried with backoff (1, 2, 4 minutes) and
FAILED after ``MAX_ATTEMPTS``, with the error.

A SEND step writes its message rows (QUEUED, or SKIPPED with the reason) in the claim's
transaction, with the move: the row exists exactly when the step was taken. Nothing is sent
inside the sweep: once it has committed, it kicks the sender tasks (``automation.delivery``),
which deliver through the campaigns' two-phase send (claim and commit, send, mark SENT per
SMTP email), so a worker killed mid-send repeats at most the one email in flight. Consent and
suppression are checked again, skip reasons, tracking, idempotency keys and the frequency
cap work as for campaigns. A condition on "opened / clicked the message of step S" waits
while that message is still QUEUED or SENDING (it is decided on what the person could see).
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from crm.models import Tenant
from crm.tasks import tenant_task
from customers.models import Activity, CustomerProfile
from customers.timeline import Author, notes_create_many
from marketing.common import ADDRESS_COLUMN, skip_reason_params, skip_reason_sql
from marketing.models import Interaction, Message, MessageStatus
from marketing.segments import criteria_parse, matching
from marketing.sending import in_quiet_hours, quiet_hours_end

from .delivery import journey_senders_kick
from .journeys import journey_tz
from .models import (
    Enrollment,
    EnrollmentStatus,
    EnrollmentStep,
    Journey,
    JourneyStatus,
    Step,
    StepType,
)
from .stats import JOURNEY_OUTCOME, stats_day, stats_erase, stats_insert_sql

logger = logging.getLogger(__name__)

BATCH = 10_000
MAX_ROUNDS = 25
MAX_ATTEMPTS = 3
PENDING_RECHECK = timedelta(minutes=1)  # a condition waiting for its message to go
JOURNEY_AUTHOR = Author("journey", "Journey")

E = Enrollment._meta.db_table
ES = EnrollmentStep._meta.db_table
M = Message._meta.db_table
P = CustomerProfile._meta.db_table
J = Journey._meta.db_table

# A place in [0, 1) from a hash: the same input always lands in the same place.
_BUCKET = "(('x' || substr(md5({}), 1, 8))::bit(32)::bigint / 4294967296.0)"


# ----------------------------------------------------------------------------- enrollment


@dataclass
class Intake:
    """The people one journey is to take in: their ids and trigger keys (None: manual), and
    when the journey's entry step ends if it is a WAIT (its wait starts on entry)."""

    journey: Journey
    entry_wait: datetime | None
    customer_ids: list[str]
    trigger_keys: list[str | None]


# Every entry is a first visit of the entry step (visits and people alike), and an ACTIVE
# enrollment of the journey.
_ENTERED = """
    SELECT tenant_id, journey_id, step_key, '' AS outcome, false AS holdout,
           count(*) AS visits, count(*) AS people
    FROM ins GROUP BY 1, 2, 3
    UNION ALL
    SELECT tenant_id, journey_id, '', 'ACTIVE', holdout, count(*), 0
    FROM ins GROUP BY 1, 2, 5
"""

_ENROLL_SQL = f"""
    WITH j AS (
        SELECT * FROM unnest(%(journeys)s::uuid[], %(versions)s::bigint[], %(entry_keys)s::text[],
                             %(waits)s::timestamptz[], %(holdouts)s::int[], %(reentries)s::text[],
                             %(afters)s::timestamptz[])
               AS j(journey_id, version_id, entry_key, wait, holdout, reentry, after)
    ), cand AS (
        SELECT DISTINCT ON (c.journey_id, c.customer_id) c.journey_id, c.customer_id,
               c.trigger_key
        FROM unnest(%(c_journeys)s::uuid[], %(c_customers)s::uuid[], %(c_keys)s::text[])
             AS c(journey_id, customer_id, trigger_key)
        JOIN j ON j.journey_id = c.journey_id
        JOIN "{P}" p ON p.id = c.customer_id
        WHERE p.tenant_id = %(tenant)s AND p.status IN ('ACTIVE', 'INACTIVE')
          AND p.deleted_at IS NULL
          AND NOT EXISTS (
            SELECT 1 FROM "{E}" e WHERE e.tenant_id = %(tenant)s AND e.journey_id = c.journey_id
              AND e.customer_id = c.customer_id
              AND (e.status = 'ACTIVE' OR j.reentry = 'never'
                   OR (j.reentry = 'after_days' AND e.entered_at > j.after)))
        ORDER BY c.journey_id, c.customer_id, c.trigger_key
    ), ins AS (
        INSERT INTO "{E}" (tenant_id, journey_id, version_id, customer_id, step_key, visit,
                           step_entered_at, status, due_at, wait_until, trigger_key, holdout,
                           attempts, error, exit_reason, entered_at, created_at, updated_at)
        SELECT %(tenant)s, j.journey_id, j.version_id, cand.customer_id, j.entry_key, 1,
               %(now)s, 'ACTIVE', COALESCE(j.wait, %(now)s), j.wait, cand.trigger_key,
               {_BUCKET.format("j.journey_id::text || cand.customer_id::text")} * 100 < j.holdout,
               0, '', '', %(now)s, %(now)s, %(now)s
        FROM cand JOIN j ON j.journey_id = cand.journey_id
        ON CONFLICT DO NOTHING
        RETURNING id, tenant_id, journey_id, step_key, holdout
    ), trail AS (
        INSERT INTO "{ES}" (tenant_id, enrollment_id, visit, step_key, entered_at, outcome,
                            created_at, updated_at)
        SELECT tenant_id, id, 1, step_key, %(now)s, '', %(now)s, %(now)s FROM ins
    ), stats AS ({stats_insert_sql(_ENTERED)})
    SELECT count(*) FROM ins
"""  # noqa: S608


def _entry_filter(intake: Intake, now: datetime) -> Intake:
    """The people of ``intake`` who pass the journey's entry filter (one query)."""
    journey = intake.journey
    if not journey.entry_criteria:
        return intake
    group = criteria_parse(journey.tenant, journey.entry_criteria)
    passing = {
        str(pk)
        for pk in matching(journey.tenant, group, now)
        .filter(pk__in=intake.customer_ids)
        .values_list("pk", flat=True)
    }
    pairs = [
        (c, k)
        for c, k in zip(intake.customer_ids, intake.trigger_keys, strict=True)
        if c in passing
    ]
    return Intake(journey, intake.entry_wait, [c for c, _ in pairs], [k for _, k in pairs])


def enrollments_insert(*, tenant: Tenant, intakes: Sequence[Intake], now: datetime) -> int:
    """Enroll the people of several journeys of a tenant in **one statement**: each on its
    journey's current version, at its first step, with the first history row and the
    figures (``automation.stats``). Who is not live, does not pass the journey's entry
    filter (one query per journey that has one), is in the journey already, or may not enter
    again (re-entry rule) is left out; a trigger key enrolls once per journey (a replayed
    event or segment change enrolls nobody again), and ``ON CONFLICT DO NOTHING`` keeps at
    most one ACTIVE enrollment per person and journey under concurrent batches. Returns how
    many entered."""
    intakes = [
        _entry_filter(i, now)
        for i in intakes
        if i.customer_ids and i.journey.status == JourneyStatus.ACTIVE
    ]
    intakes = [i for i in intakes if i.customer_ids]
    if not intakes:
        return 0
    params = {
        "tenant": tenant.pk,
        "now": now,
        "day": stats_day(now),
        "journeys": [str(i.journey.pk) for i in intakes],
        "versions": [i.journey.current_version_id for i in intakes],
        "entry_keys": [i.journey.current_version.entry_key for i in intakes],
        "waits": [i.entry_wait for i in intakes],
        "holdouts": [i.journey.holdout_percent for i in intakes],
        "reentries": [i.journey.reentry for i in intakes],
        "afters": [now - timedelta(days=i.journey.reentry_days) for i in intakes],
        "c_journeys": [str(i.journey.pk) for i in intakes for _ in i.customer_ids],
        "c_customers": [str(c) for i in intakes for c in i.customer_ids],
        "c_keys": [k for i in intakes for k in i.trigger_keys],
    }
    with connection.cursor() as cursor:
        cursor.execute(_ENROLL_SQL, params)
        return cursor.fetchone()[0]


def enrollments_create(
    *,
    journey: Journey,
    customer_ids: Sequence[Any],
    trigger_keys: Sequence[str | None] | None = None,
    now: datetime | None = None,
    kick: bool = True,
) -> int:
    """Enroll people of one journey (``enrollments_insert``); then kick the sweep."""
    now = now or timezone.now()
    if not customer_ids or journey.status != JourneyStatus.ACTIVE:
        return 0
    version = journey.current_version
    keys = list(trigger_keys) if trigger_keys is not None else [None] * len(customer_ids)
    entry = Step.objects.get(version=version, key=version.entry_key)
    intake = Intake(journey, wait_end(journey, entry, now), [str(c) for c in customer_ids], keys)
    entered = enrollments_insert(tenant=journey.tenant, intakes=[intake], now=now)
    if entered and kick:
        journeys_kick(journey.tenant)
    return entered


def journeys_kick(tenant: Tenant) -> None:
    """Advance the tenant's due enrollments now rather than at the next beat."""
    tenant_task("automation.advance_journeys").enqueue(tenant)


# ----------------------------------------------------------------------------- the sweep


@dataclass
class Row:
    id: int
    tenant_id: Any
    journey_id: Any
    version_id: int
    customer_id: Any
    step_key: str
    visit: int
    step_entered_at: datetime
    entered_at: datetime
    wait_until: datetime | None
    holdout: bool


_CLAIM_SQL = f"""
    SELECT e.id, e.tenant_id, e.journey_id, e.version_id, e.customer_id, e.step_key, e.visit,
           e.step_entered_at, e.entered_at, e.wait_until, e.holdout
    FROM "{E}" e
    JOIN "{J}" j ON j.id = e.journey_id
    WHERE e.status = 'ACTIVE' AND e.due_at <= %s AND j.status = 'ACTIVE'
      AND (%s::uuid IS NULL OR e.tenant_id = %s::uuid)
    ORDER BY e.due_at, e.id
    LIMIT %s
    FOR UPDATE OF e SKIP LOCKED
"""  # noqa: S608


def journeys_advance(
    *, tenant: Tenant | None = None, now: datetime | None = None, batch: int = BATCH
) -> int:
    """Advance due enrollments (of one tenant, or all) until none is due or ``MAX_ROUNDS``
    batches were done; then, everything committed, kick the senders of the journey messages
    that are queued (``automation.delivery``). Returns how many enrollment steps were
    processed."""
    now = now or timezone.now()
    tenant_id = str(tenant.pk) if tenant else None
    done = 0
    for _ in range(MAX_ROUNDS):
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(_CLAIM_SQL, [now, tenant_id, tenant_id, batch])
                rows = [Row(*r) for r in cursor.fetchall()]
            if not rows:
                break
            _advance(rows, now)
        done += len(rows)
    journey_senders_kick(tenant=tenant, now=now)
    return done


def _advance(rows: list[Row], now: datetime) -> None:
    journeys = {
        j.pk: j
        for j in Journey.objects.filter(pk__in={r.journey_id for r in rows}).select_related(
            "tenant", "club"
        )
    }
    steps = {
        (s.version_id, s.key): s
        for s in Step.objects.filter(version_id__in={r.version_id for r in rows})
    }
    rows = _goals_and_exits(rows, journeys, now)
    groups: dict[tuple[int, str], list[Row]] = defaultdict(list)
    for row in rows:
        groups[(row.version_id, row.step_key)].append(row)
    for (version_id, key), group in groups.items():
        step = steps.get((version_id, key))
        journey = journeys[group[0].journey_id]
        try:
            with transaction.atomic():  # a savepoint: a failing group leaves the others
                if step is None:
                    raise LookupError(f"step {key!r} is not in version {version_id}")
                EXECUTORS[step.type](journey, step, group, now)
        except Exception as exc:
            logger.exception("journey %s step %s failed for %s people", journey.pk, key, len(group))
            _retry_or_fail([r.id for r in group], f"{type(exc).__name__}: {exc}", now)


# ----------------------------------------------------------------------------- goal and exits


def _customers_with_event(rows: list[Row], event_type: str, since: dict[int, datetime]) -> set[int]:
    """Enrollment ids whose person had ``event_type`` at or after ``since[enrollment]``."""
    if not rows:
        return set()
    sql = f"""
        SELECT x.id FROM unnest(%s::bigint[], %s::uuid[], %s::timestamptz[])
               AS x(id, customer_id, since)
        WHERE EXISTS (SELECT 1 FROM "{Activity._meta.db_table}" a
                      WHERE a.tenant_id = %s AND a.customer_id = x.customer_id
                        AND a.type = %s AND a.occurred_at >= x.since)
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                [r.id for r in rows],
                [str(r.customer_id) for r in rows],
                [since[r.id] for r in rows],
                str(rows[0].tenant_id),
                event_type,
            ],
        )
        return {r[0] for r in cursor.fetchall()}


def _matching_rows(journey: Journey, rows: list[Row], raw: dict, now: datetime) -> set[int]:
    group = criteria_parse(journey.tenant, raw)
    ok = {
        str(pk)
        for pk in matching(journey.tenant, group, now)
        .filter(pk__in=[r.customer_id for r in rows])
        .values_list("pk", flat=True)
    }
    return {r.id for r in rows if str(r.customer_id) in ok}


def _hits(journey: Journey, rows: list[Row], spec: dict, now: datetime) -> set[int]:
    """Enrollments that meet a goal / exit spec (an event since entering, or criteria)."""
    hit: set[int] = set()
    if spec.get("event_type"):
        hit |= _customers_with_event(rows, spec["event_type"], {r.id: r.entered_at for r in rows})
    if spec.get("criteria"):
        hit |= _matching_rows(journey, rows, spec["criteria"], now)
    return hit


def _goals_and_exits(rows: list[Row], journeys: dict, now: datetime) -> list[Row]:
    """People who reached the goal are CONVERTED, people who meet the exit criteria EXITED;
    the others go on. Looked at whenever an enrollment is due (and kicked by the events)."""
    by_journey: dict[Any, list[Row]] = defaultdict(list)
    for row in rows:
        by_journey[row.journey_id].append(row)
    ended: set[int] = set()
    for journey_id, group in by_journey.items():
        journey = journeys[journey_id]
        converted = _hits(journey, group, journey.goal, now) if journey.goal else set()
        exited = (
            _hits(journey, group, journey.exit_criteria, now) - converted
            if journey.exit_criteria
            else set()
        )
        if converted:
            _finish(sorted(converted), EnrollmentStatus.CONVERTED, "converted", "", now)
        if exited:
            _finish(sorted(exited), EnrollmentStatus.EXITED, "exited", "exit_criteria", now)
        ended |= converted | exited
    return [r for r in rows if r.id not in ended]


# ----------------------------------------------------------------------------- moves


# The figures of a move: the visits that ended (by outcome) and the ones that began, first
# visits of the enrollment to that key counting as people (the statement's snapshot does not
# see the history rows it inserts itself).
_MOVED = f"""
    SELECT tenant_id, journey_id, step_key, outcome, false AS holdout, count(*) AS visits,
           0 AS people
    FROM closed WHERE outcome <> '' GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT tenant_id, journey_id, step_key, '', false, count(*),
           count(*) FILTER (WHERE NOT EXISTS (
               SELECT 1 FROM "{ES}" s WHERE s.tenant_id = moved.tenant_id
                 AND s.enrollment_id = moved.id AND s.step_key = moved.step_key))
    FROM moved GROUP BY 1, 2, 3
"""  # noqa: S608

_MOVE_SQL = f"""
    WITH m AS (
        SELECT * FROM unnest(%(ids)s::bigint[], %(keys)s::text[], %(dues)s::timestamptz[],
                             %(waits)s::timestamptz[], %(outcomes)s::text[])
               AS m(id, key, due, wait_until, outcome)
    ), moved AS (
        UPDATE "{E}" e SET step_key = m.key, visit = e.visit + 1, step_entered_at = %(now)s,
               due_at = m.due, wait_until = m.wait_until, attempts = 0, error = '',
               updated_at = %(now)s
        FROM m WHERE e.id = m.id AND e.status = 'ACTIVE'
        RETURNING e.id, e.tenant_id, e.journey_id, e.visit, e.step_key, m.outcome
    ), closed AS (
        -- The visit left: found by its unique key from the moved rows (a join of the ids
        -- with the enrollments was planned as a scan of all of them).
        UPDATE "{ES}" s SET left_at = %(now)s, outcome = moved.outcome, updated_at = %(now)s
        FROM moved
        WHERE s.tenant_id = moved.tenant_id AND s.enrollment_id = moved.id
          AND s.visit = moved.visit - 1
        RETURNING s.tenant_id, moved.journey_id, s.step_key, s.outcome
    ), trail AS (
        INSERT INTO "{ES}" (tenant_id, enrollment_id, visit, step_key, entered_at, outcome,
                            created_at, updated_at)
        SELECT tenant_id, id, visit, step_key, %(now)s, '', %(now)s, %(now)s FROM moved
    )
    {stats_insert_sql(_MOVED)}
"""  # noqa: S608


def _move(
    moves: list[tuple[int, str, str]], steps: dict[str, Step], journey: Journey, now: datetime
) -> None:
    """Move enrollments ``(id, next key, outcome of the step left)`` in one statement: the
    history row of the visit ends, the enrollment points at the next step, a new history row
    begins. A WAIT step's due time is worked out on arrival; other steps are due now."""
    if not moves:
        return
    ids, keys, dues, waits, outcomes = [], [], [], [], []
    arrivals: dict[str, datetime | None] = {}
    for pk, key, outcome in moves:
        if key not in arrivals:
            arrivals[key] = wait_end(journey, steps[key], now)
        wait = arrivals[key]
        ids.append(pk)
        keys.append(key)
        dues.append(wait or now)
        waits.append(wait)
        outcomes.append(outcome[:60])
    with connection.cursor() as cursor:
        cursor.execute(
            _MOVE_SQL,
            {
                "ids": ids,
                "keys": keys,
                "dues": dues,
                "waits": waits,
                "outcomes": outcomes,
                "now": now,
                "day": stats_day(now),
            },
        )


# The figures of ending enrollments: the closed visits' outcomes, and the journey's
# enrollments moving from ACTIVE to their end status.
_FINISHED = """
    SELECT tenant_id, journey_id, step_key, outcome, false AS holdout, count(*) AS visits,
           0 AS people
    FROM closed GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT tenant_id, journey_id, '', 'ACTIVE', holdout, -count(*), 0 FROM ended
    GROUP BY 1, 2, 5
    UNION ALL
    SELECT tenant_id, journey_id, '', outcome, holdout, count(*), 0 FROM ended
    GROUP BY 1, 2, 4, 5
"""

_FINISH_SQL = f"""
    WITH m AS (SELECT unnest(%(ids)s::bigint[]) AS id),
    ended AS (
        UPDATE "{E}" e SET status = %(status)s, exit_reason = %(reason)s, error = %(error)s,
               ended_at = %(now)s, due_at = NULL, wait_until = NULL, updated_at = %(now)s
        FROM m WHERE e.id = m.id AND e.status = 'ACTIVE'
        RETURNING e.id, e.tenant_id, e.journey_id, e.visit, e.holdout,
                  {JOURNEY_OUTCOME} AS outcome
    ), closed AS (
        UPDATE "{ES}" s SET left_at = %(now)s, outcome = %(outcome)s, updated_at = %(now)s
        FROM ended
        WHERE s.tenant_id = ended.tenant_id AND s.enrollment_id = ended.id
          AND s.visit = ended.visit AND s.left_at IS NULL
        RETURNING s.tenant_id, ended.journey_id, s.step_key, s.outcome
    ), stats AS ({stats_insert_sql(_FINISHED)})
    SELECT count(*) FROM ended
"""  # noqa: S608


def _finish(
    ids: list[int], status: str, outcome: str, reason: str, now: datetime, error: str = ""
) -> int:
    """End enrollments: the open history row closes with ``outcome``, counted in the
    figures."""
    params = {
        "ids": ids,
        "now": now,
        "day": stats_day(now),
        "outcome": outcome,
        "status": status,
        "reason": reason,
        "error": error[:500],
    }
    with connection.cursor() as cursor:
        cursor.execute(_FINISH_SQL, params)
        return cursor.fetchone()[0]


def _hold(ids: list[int], until: datetime, now: datetime) -> None:
    """Stay at the step; look again at ``until``."""
    Enrollment.objects.filter(pk__in=ids).update(due_at=until, updated_at=now)


def _retry_or_fail(ids: list[int], error: str, now: datetime) -> None:
    """After a failed step: again in 1, 2, 4... minutes; FAILED after ``MAX_ATTEMPTS``."""
    sql = f"""
        UPDATE "{E}" SET attempts = attempts + 1, error = %s, updated_at = %s,
               due_at = %s::timestamptz + make_interval(mins => power(2, attempts)::int)
        WHERE id = ANY(%s) AND status = 'ACTIVE'
        RETURNING id, attempts
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [error[:500], now, now, ids])
        spent = [pk for pk, attempts in cursor.fetchall() if attempts >= MAX_ATTEMPTS]
    if spent:
        _finish(spent, EnrollmentStatus.FAILED, "failed", "failed", now, error)


# ----------------------------------------------------------------------------- waits


def wait_end(journey: Journey, step: Step, now: datetime) -> datetime | None:
    """When a WAIT step entered at ``now`` ends (its timeout for an event wait); None for
    other steps. "Until" times are wall-clock times in the journey's timezone, so 09:00
    stays 09:00 across DST changes (a time that does not exist that day is taken as the
    same wall time after the jump, the usual fold=0 reading)."""
    if step.type != StepType.WAIT:
        return None
    config = step.config
    if "until" in config:
        return next_local_time(
            now, journey_tz(journey), config["until"]["time"], config["until"].get("weekdays")
        )
    spec = config.get("duration") or config.get("timeout") or {}
    return now + timedelta(
        days=spec.get("days", 0), hours=spec.get("hours", 0), minutes=spec.get("minutes", 0)
    )


def next_local_time(now: datetime, tz, hhmm: str, weekdays: list[int] | None) -> datetime:
    """The first moment after ``now`` that is ``hhmm`` local time on one of ``weekdays``."""
    hour, minute = (int(x) for x in hhmm.split(":"))
    local_today = now.astimezone(tz).date()
    for offset in range(0, 8):
        day = local_today + timedelta(days=offset)
        if weekdays and day.weekday() not in weekdays:
            continue
        candidate = datetime.combine(day, time(hour, minute), tzinfo=tz)
        # Normalise through UTC: a wall time skipped by DST becomes the real instant.
        candidate = candidate.astimezone(UTC)
        if candidate > now:
            return candidate
    raise ValueError("no weekday given")  # pragma: no cover  (validation forbids it)


# ----------------------------------------------------------------------------- executors


def _steps_of(step: Step) -> dict[str, Step]:
    return {s.key: s for s in Step.objects.filter(version_id=step.version_id)}


def _execute_send(journey: Journey, step: Step, rows: list[Row], now: datetime) -> None:
    steps = _steps_of(step)
    tenant = journey.tenant
    holdout = [r for r in rows if r.holdout]
    live = [r for r in rows if not r.holdout]
    if live and in_quiet_hours(tenant, now):
        # Nothing is sent in quiet hours: the step waits for the window to open.
        _hold([r.id for r in live], quiet_hours_end(tenant, now), now)
        live = []
    channel = step.config["channel"]
    if live:
        column = ADDRESS_COLUMN[channel]
        sql = f"""
            INSERT INTO "{M}" (tenant_id, run_id, campaign_id, journey_step_id, template_id,
                               customer_id, channel, address, variant, status, skip_reason,
                               attempts, error, provider_id, created_at, updated_at)
            SELECT %s, NULL, NULL, r.step_id, %s, r.id, %s, r.address, '',
                   CASE WHEN r.reason <> '' THEN 'SKIPPED' ELSE 'QUEUED' END, r.reason,
                   0, '', '', %s, %s
            FROM (
                SELECT es.id AS step_id, p.id, COALESCE(p.{column}, '') AS address,
                       {skip_reason_sql(channel)} AS reason
                FROM "{E}" e
                JOIN "{ES}" es ON es.tenant_id = e.tenant_id AND es.enrollment_id = e.id
                              AND es.visit = e.visit
                JOIN "{P}" p ON p.id = e.customer_id
                WHERE e.id = ANY(%s) AND p.tenant_id = %s
            ) r
            ON CONFLICT DO NOTHING
        """  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute(
                sql,
                [
                    tenant.pk,
                    step.config["template_id"],
                    channel,
                    now,
                    now,
                    *skip_reason_params(tenant, channel, now),
                    [r.id for r in live],
                    tenant.pk,
                ],
            )
    nxt = step.next_keys[0]
    _move(
        [(r.id, nxt, "holdout") for r in holdout] + [(r.id, nxt, "message") for r in live],
        steps,
        journey,
        now,
    )


def _execute_wait(journey: Journey, step: Step, rows: list[Row], now: datetime) -> None:
    steps = _steps_of(step)
    config = step.config
    if "event_type" in config:
        happened = _customers_with_event(
            rows, config["event_type"], {r.id: r.step_entered_at for r in rows}
        )
        moves = [(r.id, step.next_keys[0], "event") for r in rows if r.id in happened]
        moves += [
            (r.id, step.next_keys[1], "timeout")
            for r in rows
            if r.id not in happened and (r.wait_until is None or r.wait_until <= now)
        ]
    else:
        moves = [
            (r.id, step.next_keys[0], "waited")
            for r in rows
            if r.wait_until is None or r.wait_until <= now
        ]
    moved = {pk for pk, _, _ in moves}
    early = defaultdict(list)  # kicked before the wait ended (by an event): look again later
    for r in rows:
        if r.id not in moved:
            early[r.wait_until].append(r.id)
    for until, ids in early.items():
        _hold(ids, until, now)
    _move(moves, steps, journey, now)


def _execute_condition(journey: Journey, step: Step, rows: list[Row], now: datetime) -> None:
    steps = _steps_of(step)
    config = step.config
    if "criteria" in config:
        yes = _matching_rows(journey, rows, config["criteria"], now)
    elif "event_type" in config:
        yes = _customers_with_event(rows, config["event_type"], {r.id: r.entered_at for r in rows})
    else:
        kind = "OPENED" if "opened" in config else "CLICKED"
        target = config.get("opened") or config.get("clicked")
        rows = _after_pending_messages(journey, rows, target, now)
        yes = set(
            Enrollment.objects.filter(pk__in=[r.id for r in rows])
            .filter(
                Q(
                    trail__step_key=target,
                    trail__pk__in=Message.objects.filter(
                        tenant=journey.tenant,
                        journey_step_id__isnull=False,
                        pk__in=Interaction.objects.filter(tenant=journey.tenant, kind=kind).values(
                            "message_id"
                        ),
                    ).values("journey_step_id"),
                )
            )
            .values_list("pk", flat=True)
        )
    yes_key, no_key = step.next_keys
    _move(
        [(r.id, yes_key, "yes") if r.id in yes else (r.id, no_key, "no") for r in rows],
        steps,
        journey,
        now,
    )


def _after_pending_messages(
    journey: Journey, rows: list[Row], target: str, now: datetime
) -> list[Row]:
    """The enrollments whose message of step ``target`` is settled (sent, skipped, failed,
    or there is none); the others stay at the condition until it is: "not opened" would be
    wrong of a message the person has not been sent yet (held by quiet hours, a backlog, a
    retry). Looked at again a minute later, or when quiet hours end."""
    visits = EnrollmentStep.objects.filter(
        tenant=journey.tenant, enrollment_id__in=[r.id for r in rows], step_key=target
    )
    pending = list(
        Message.objects.filter(
            tenant=journey.tenant,
            status__in=[MessageStatus.QUEUED, MessageStatus.SENDING],
            journey_step_id__in=visits.values("pk"),
        ).values_list("journey_step_id", "send_after")
    )
    if not pending:
        return rows
    enrollment_of = dict(
        visits.filter(pk__in=[step_id for step_id, _ in pending]).values_list("pk", "enrollment_id")
    )
    later: dict[datetime, list[int]] = defaultdict(list)
    for step_id, send_after in pending:
        soon = now + PENDING_RECHECK
        later[max(soon, send_after) if send_after else soon].append(enrollment_of[step_id])
    for until, ids in later.items():
        _hold(ids, until, now)
    held = {pk for ids in later.values() for pk in ids}
    return [r for r in rows if r.id not in held]


def split_branch(enrollment_id: int, weights: list[int]) -> int:
    """The branch of an enrollment: from a hash of its id, so it never changes."""
    digest = hashlib.md5(str(enrollment_id).encode(), usedforsecurity=False).hexdigest()
    point = int(digest[:8], 16) % sum(weights)
    for i, weight in enumerate(weights):
        if point < weight:
            return i
        point -= weight
    return len(weights) - 1  # pragma: no cover


def _execute_split(journey: Journey, step: Step, rows: list[Row], now: datetime) -> None:
    steps = _steps_of(step)
    weights = step.config["weights"]
    moves = []
    for r in rows:
        branch = split_branch(r.id, weights)
        moves.append((r.id, step.next_keys[branch], f"branch {branch + 1}"))
    _move(moves, steps, journey, now)


def _execute_update(journey: Journey, step: Step, rows: list[Row], now: datetime) -> None:
    steps = _steps_of(step)
    config = step.config
    live = [r for r in rows if not r.holdout]
    if live:
        add = config.get("add_tags") or []
        remove = config.get("remove_tags") or []
        stage = config.get("lifecycle_stage") or None
        sql = f"""
            UPDATE "{P}" SET
              tags = ARRAY(SELECT DISTINCT t FROM unnest(tags || %s::varchar[]) AS t
                           WHERE NOT t = ANY(%s::varchar[]) ORDER BY t),
              lifecycle_stage = COALESCE(%s, lifecycle_stage),
              updated_at = %s
            WHERE tenant_id = %s AND id = ANY(%s::uuid[])
        """  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute(
                sql,
                [add, remove, stage, now, journey.tenant_id, [str(r.customer_id) for r in live]],
            )
    nxt = step.next_keys[0]
    _move([(r.id, nxt, "holdout" if r.holdout else "updated") for r in rows], steps, journey, now)


def _execute_task(journey: Journey, step: Step, rows: list[Row], now: datetime) -> None:
    steps = _steps_of(step)
    live = [r for r in rows if not r.holdout]
    if live:
        notes_create_many(
            tenant=journey.tenant,
            customer_ids=[r.customer_id for r in live],
            author=Author("journey", f"Journey “{journey.name}”"[:150]),
            body=step.config["body"],
        )
    nxt = step.next_keys[0]
    _move([(r.id, nxt, "holdout" if r.holdout else "note") for r in rows], steps, journey, now)


def _execute_end(journey: Journey, step: Step, rows: list[Row], now: datetime) -> None:
    _finish([r.id for r in rows], EnrollmentStatus.COMPLETED, "completed", "", now)


EXECUTORS = {
    StepType.SEND: _execute_send,
    StepType.WAIT: _execute_wait,
    StepType.CONDITION: _execute_condition,
    StepType.SPLIT: _execute_split,
    StepType.UPDATE: _execute_update,
    StepType.TASK: _execute_task,
    StepType.END: _execute_end,
}


# ----------------------------------------------------------------------------- merge, erasure


def move_enrollments(*, tenant: Tenant, winner: CustomerProfile, loser: CustomerProfile) -> int:
    """Merge hook: the loser's enrollments become the winner's. Where both are in the same
    journey right now, the winner's stays and the loser's ends EXITED ("merged"), so the
    winner never goes through one journey twice at once (the partial unique index would
    refuse it anyway). Their history moves too: it is what the person went through."""
    now = timezone.now()
    clash = Enrollment.objects.filter(
        tenant=tenant, customer=loser, status=EnrollmentStatus.ACTIVE
    ).filter(
        journey_id__in=Enrollment.objects.filter(
            tenant=tenant, customer=winner, status=EnrollmentStatus.ACTIVE
        ).values("journey_id")
    )
    ids = list(clash.values_list("pk", flat=True))
    if ids:
        _finish(ids, EnrollmentStatus.EXITED, "merged", "merged", now)
    return Enrollment.objects.filter(tenant=tenant, customer=loser).update(
        customer=winner, updated_at=now
    )


def erase_enrollments(*, tenant: Tenant, customer: CustomerProfile, addresses: dict) -> int:
    """Erase hook: the person's enrollments and their history go (the journey's figures
    lose them; the messages are anonymised by marketing's hook)."""
    with transaction.atomic():  # the figures lose exactly what is deleted
        stats_erase(tenant_id=tenant.pk, customer_id=customer.pk, now=timezone.now())
        return Enrollment.objects.filter(tenant=tenant, customer=customer).delete()[0]


__all__ = [
    "EXECUTORS",
    "enrollments_create",
    "erase_enrollments",
    "journeys_advance",
    "journeys_kick",
    "move_enrollments",
    "next_local_time",
    "split_branch",
    "wait_end",
]


def export_enrollments(*, tenant: Tenant, customer, people, viewer):
    """Export section: the person's journey enrollments, where they are and how they ended."""
    rows = Enrollment.objects.filter(tenant=tenant, customer_id__in=people)
    return (
        rows.order_by("-entered_at", "-id")
        .values(
            "journey__name",
            "status",
            "step_key",
            "entered_at",
            "ended_at",
            "exit_reason",
            "holdout",
        )
        .iterator(chunk_size=2000)
    )


def export_enrollment_steps(*, tenant: Tenant, customer, people, viewer):
    """Export section: each step the person's enrollments visited, when, and what happened
    there (the journey's trail)."""
    rows = EnrollmentStep.objects.filter(
        tenant=tenant,
        enrollment__in=Enrollment.objects.filter(tenant=tenant, customer_id__in=people),
    )
    return (
        rows.order_by("-entered_at", "-id")
        .values(
            "enrollment__journey__name", "step_key", "visit", "entered_at", "left_at", "outcome"
        )
        .iterator(chunk_size=2000)
    )
