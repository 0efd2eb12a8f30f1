"""Per-step journey figures kept as sums of the history rows (``StepStat``).

A journey with a million history rows cannot be counted from the history on every page view
(a ``COUNT(DISTINCT ...)`` over all its visits took 1.6 s), so the statements that write the
history also write what it adds up to, per journey, step key, UTC day and outcome:

- a visit begins (``EnrollmentStep`` inserted): ``visits`` +1 on the row with an empty
  outcome, and ``people`` +1 when it is the enrollment's first visit to that key;
- a visit ends with an outcome (``outcome`` set): ``visits`` +1 on the row of that outcome;
- an erased person's history goes: the same figures are taken off (``stats_erase_sql``).

The rows are **deltas**, appended in the same statement (so the same transaction) as the
history rows they count: a rolled-back sweep takes its deltas with it, and concurrent sweeps
never wait on one counter row or deadlock on two. The every-minute beat rolls each key's
deltas into one row (``step_stats_roll_up``). ``step_stats_recount`` counts the same figures
straight from the history and ``step_stats_rebuild`` replaces a journey's rows with them, so
the table can be checked against the history (the tests do, after random moves) or rebuilt.

Days are UTC dates of the engine's clock (``now``), which is also the history row's
``entered_at`` / ``left_at``, so recount and deltas agree to the row.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any

from django.db import connection, transaction

from .models import Enrollment, EnrollmentStep, Journey, StepStat

E = Enrollment._meta.db_table
ES = EnrollmentStep._meta.db_table
S = StepStat._meta.db_table

#: One advisory lock for the roll-up and the rebuild: both delete rows and insert their sum.
_LOCK = 7_413_021

_COLUMNS = (
    "tenant_id, journey_id, step_key, day, outcome, holdout, visits, people, rolled, "
    "created_at, updated_at"
)
#: The ``outcome`` of a journey row (``step_key`` empty): the enrollment's status, with the
#: reason for EXITED. SQL over an enrollment row ``e``.
JOURNEY_OUTCOME = "CASE WHEN e.status = 'EXITED' THEN 'EXITED:' || e.exit_reason ELSE e.status END"


def stats_day(now: datetime) -> date:
    """The day a delta written at ``now`` counts on (UTC, as the recount reads the rows)."""
    return now.astimezone(UTC).date()


def stats_insert_sql(source: str) -> str:
    """``INSERT`` of deltas from ``source``, a query (usually over a data-modifying CTE of
    the same statement) with the columns tenant_id, journey_id, step_key, outcome, holdout,
    visits, people. Named parameters: ``day`` (``stats_day(now)``) and ``now``."""
    return f"""
        INSERT INTO "{S}" ({_COLUMNS})
        SELECT d.tenant_id, d.journey_id, d.step_key, %(day)s::date, d.outcome, d.holdout,
               d.visits, d.people, false, %(now)s, %(now)s
        FROM ({source}) d
        WHERE d.visits <> 0 OR d.people <> 0
    """  # noqa: S608


# The history of some enrollments, with each visit's rank among the enrollment's visits to
# the same key (1: the first). Parameter: the enrollments' ids.
_HISTORY = f"""
    SELECT es.tenant_id, e.journey_id, es.step_key, es.outcome, es.entered_at, es.left_at,
           row_number() OVER (PARTITION BY es.enrollment_id, es.step_key ORDER BY es.visit)
               AS nth
    FROM "{ES}" es JOIN "{E}" e ON e.id = es.enrollment_id
    WHERE {{where}}
"""  # noqa: S608

# The figures of a history (``_HISTORY``) by step key, day and outcome; and the journey
# rows of its enrollments (``_ENROLLMENTS``): each one's status, on its day of entry.
_FIGURES = f"""
    SELECT tenant_id, journey_id, step_key, (entered_at AT TIME ZONE 'UTC')::date AS day,
           '' AS outcome, false AS holdout, count(*) AS visits,
           count(*) FILTER (WHERE nth = 1) AS people
    FROM h GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT tenant_id, journey_id, step_key, (left_at AT TIME ZONE 'UTC')::date, outcome,
           false, count(*), 0
    FROM h WHERE outcome <> '' GROUP BY 1, 2, 3, 4, 5
    UNION ALL
    SELECT e.tenant_id, e.journey_id, '', (e.entered_at AT TIME ZONE 'UTC')::date,
           {JOURNEY_OUTCOME}, e.holdout, count(*), 0
    FROM "{E}" e WHERE {{enrollments}} GROUP BY 1, 2, 3, 4, 5, 6
"""  # noqa: S608


def stats_erase(*, tenant_id: Any, customer_id: Any, now: datetime) -> None:
    """Take an erased person's history off the figures (before it is deleted)."""
    where = "e.tenant_id = %s AND e.customer_id = %s"
    sql = f"""
        WITH h AS ({_HISTORY.format(where=where)}), f AS ({_FIGURES.format(enrollments=where)})
        INSERT INTO "{S}" ({_COLUMNS})
        SELECT tenant_id, journey_id, step_key, day, outcome, holdout, -visits, -people, false,
               %s, %s
        FROM f
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [tenant_id, customer_id, tenant_id, customer_id, now, now])


def step_stats_read(*, journey: Journey) -> dict[str, dict[str, Any]]:
    """Per step key: visits, people, outcomes (the keys with any visit); and, under the
    key ``""``, the journey's enrollments by status (``journey_totals``)."""
    sql = f"""
        SELECT step_key, outcome, holdout, sum(visits), sum(people) FROM "{S}"
        WHERE tenant_id = %s AND journey_id = %s GROUP BY 1, 2, 3
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [journey.tenant_id, journey.pk])
        return _shape(cursor.fetchall())


def step_stats_recount(*, journey: Journey) -> dict[str, dict[str, Any]]:
    """The same figures as ``step_stats_read``, counted from the history rows."""
    where = "e.tenant_id = %s AND e.journey_id = %s"
    sql = f"""
        WITH h AS ({_HISTORY.format(where=where)}), f AS ({_FIGURES.format(enrollments=where)})
        SELECT step_key, outcome, holdout, sum(visits), sum(people) FROM f GROUP BY 1, 2, 3
    """  # noqa: S608
    ids = [journey.tenant_id, journey.pk]
    with connection.cursor() as cursor:
        cursor.execute(sql, ids + ids)
        return _shape(cursor.fetchall())


def _shape(rows: list[tuple[str, str, bool, int, int]]) -> dict[str, dict[str, Any]]:
    steps: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"visits": 0, "people": 0, "outcomes": {}}
    )
    enrollments: dict[tuple[str, bool], int] = {}
    for key, outcome, holdout, visits, people in sorted(rows):
        if not key:
            if visits:
                enrollments[(outcome, holdout)] = int(visits)
        elif outcome:
            if visits:
                steps[key]["outcomes"][outcome] = int(visits)
        elif visits or people:
            steps[key].update(visits=int(visits), people=int(people))
    shaped = dict(steps)
    if enrollments:
        shaped[""] = {"enrollments": enrollments}
    return shaped


def step_stats_rebuild(*, journey: Journey, now: datetime) -> int:
    """Replace the journey's figures with a recount of its history, in one statement (one
    snapshot: a delta the recount cannot see stays, one it sees goes). Returns the rows."""
    where = "e.tenant_id = %s AND e.journey_id = %s"
    sql = f"""
        WITH gone AS (
            DELETE FROM "{S}" WHERE tenant_id = %s AND journey_id = %s
        ), h AS ({_HISTORY.format(where=where)}), f AS ({_FIGURES.format(enrollments=where)})
        INSERT INTO "{S}" ({_COLUMNS})
        SELECT tenant_id, journey_id, step_key, day, outcome, holdout, visits, people, true,
               %s, %s
        FROM f
    """  # noqa: S608
    ids = [journey.tenant_id, journey.pk]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK])
        cursor.execute(sql, ids * 3 + [now, now])
        return cursor.rowcount


def step_stats_roll_up(*, now: datetime) -> int:
    """Beat: each key with new deltas becomes one row again (the deltas and the old rolled
    row are deleted and their sum inserted, in one statement). Skipped while another roll-up
    or a rebuild runs. Returns the rows written."""
    sql = f"""
        WITH fresh AS (
            SELECT DISTINCT tenant_id, journey_id, step_key, day, outcome, holdout FROM "{S}"
            WHERE NOT rolled
        ), gone AS (
            DELETE FROM "{S}" s USING fresh f
            WHERE s.tenant_id = f.tenant_id AND s.journey_id = f.journey_id
              AND s.step_key = f.step_key AND s.day = f.day AND s.outcome = f.outcome
              AND s.holdout = f.holdout
            RETURNING s.tenant_id, s.journey_id, s.step_key, s.day, s.outcome, s.holdout,
                      s.visits, s.people
        )
        INSERT INTO "{S}" ({_COLUMNS})
        SELECT tenant_id, journey_id, step_key, day, outcome, holdout, sum(visits),
               sum(people), true, %s, %s
        FROM gone GROUP BY 1, 2, 3, 4, 5, 6
        HAVING sum(visits) <> 0 OR sum(people) <> 0
    """  # noqa: S608
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_LOCK])
        if not cursor.fetchone()[0]:
            return 0
        cursor.execute(sql, [now, now])
        return cursor.rowcount
