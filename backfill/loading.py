"""Planning and loading of a staged run, set-wise in SQL (never one ORM save per row).

``stage_checks`` marks the faults only visible across rows. ``plan`` groups the member rows
into people and decides each row's outcome and profile, touching only the run's own rows and
temporary tables: it is the whole of a dry run. ``apply`` then writes profiles, aliases,
consent, suppressions, activities, lifetime value, metrics and merge suggestions from the
plan, in the caller's transaction (``runs.run_load``), every statement idempotent.

Identity (docs/backfill.md): a member row's keys are its legacy key ``(region, ClubCode,
MemberNo)`` (an external id ``mca_v1_<region>_<club>:<MemberNo>``), its e-mail, its mobile
and its national or handicap-system number (``za_id:`` / ``cdh:``). Rows sharing a key are
one person (connected components by label propagation, a few UPDATEs); a person whose keys
already belong to a live profile joins it (legacy key first, then e-mail, mobile, external
id; then the oldest profile), and keys pointing at two profiles make a merge suggestion.
What the CRM recorded after the export wins: consent, membership and handicap change only
where the CRM's own record is older than the export (and consent only when the decision
differs: a later export repeating it records nothing); names, date of birth and addresses
only fill blanks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import connection

from crm.models import Tenant
from customers.handlers import ROLLING_WINDOW, activity_count_recompute
from customers.models import (
    LIVE_STATUSES,
    Activity,
    ConsentRecord,
    CustomerProfile,
    IdentityAlias,
    MergeSuggestion,
)
from marketing.models import Suppression

from . import duplicates
from .mca import DIALECTS, MEMBERS, ROUNDS, TRANSACTIONS
from .models import ImportRow, ImportRun, RowOutcome

ROWS = ImportRow._meta.db_table
PROFILE = CustomerProfile._meta.db_table
ALIAS = IdentityAlias._meta.db_table
ACTIVITY = Activity._meta.db_table
CONSENT = ConsentRecord._meta.db_table
SUGGESTION = MergeSuggestion._meta.db_table
SUPPRESSION = Suppression._meta.db_table
SOURCE = "mca_v1"
Progress = Callable[[str, int, int | None], None]
LIVE = ", ".join(f"'{s}'" for s in LIVE_STATUSES)
NATIONAL_SYSTEM = {"ZA": "za_id", "UK": "cdh"}
# Confidence of a key when it finds an existing profile (the legacy key is the surest).
KEY_CONFIDENCE_SQL = (
    "CASE WHEN a.kind = 'external' AND a.value LIKE 'mca\\_v1\\_%%' THEN 100 "
    "WHEN a.kind = 'email' THEN 95 WHEN a.kind = 'phone' THEN 85 ELSE 80 END"
)
TEMP_TABLES = ("bf_keys", "bf_shared", "bf_groups", "bf_match", "bf_changed", "bf_pairs",
               "bf_people", "bf_blocks", "bf_auto", "bf_roots", "bf_known", "bf_known_blocks",
               "bf_known_pairs", "bf_history")  # fmt: skip
# Consent columns the export decides (blank = never asked = no decision).
CONSENT_DECISIONS = {
    "email": "CASE WHEN g.deceased THEN false ELSE g.email_opt END",
    "sms": "CASE WHEN g.deceased THEN false ELSE g.sms_opt END",
    "push": "CASE WHEN g.deceased THEN false END",
    "whatsapp": "CASE WHEN g.deceased THEN false END",
}


def _new_consent_sql() -> str:
    """A new profile's consent columns, set as it is inserted (the export's decision at the
    export time; blank = never asked = no consent): no second write of every profile."""
    return ", ".join(
        f"COALESCE({d}, false), CASE WHEN {d} IS NOT NULL THEN %(exported)s END, "
        f"CASE WHEN {d} IS NOT NULL THEN %(source)s ELSE '' END"
        for d in CONSENT_DECISIONS.values()
    )


def _exec(sql: str, params: Any = ()) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _fetch(sql: str, params: Any = ()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# ----------------------------------------------------------------------------- staging


def _reject_repeats(run: ImportRun, file: str, key: tuple[str, ...], reason: str) -> None:
    """Every row of a key but its first is rejected. One hash aggregate finds the keys seen
    twice (no sort of the whole file), and only their rows are updated."""
    cols = ", ".join(key)
    match = " AND ".join(f"r.{c} = d.{c}" for c in key)
    _exec(
        f"""
        UPDATE "{ROWS}" r SET rejected = true, outcome = %s, profile_id = NULL,
            reason = %s || ' (first on line ' || d.first_line || ')'
        FROM (SELECT {cols}, min(line) AS first_line FROM "{ROWS}"
              WHERE run_id = %s AND file = %s AND NOT rejected
              GROUP BY {cols} HAVING count(*) > 1) d
        WHERE r.run_id = %s AND r.file = %s AND NOT r.rejected AND {match}
          AND r.line > d.first_line
        """,  # noqa: S608
        [RowOutcome.REJECTED, reason, run.pk, file, run.pk, file],
    )


def stage_checks(*, run: ImportRun) -> None:
    """Faults across rows: a member key twice, a transaction Reference twice, the same round
    twice, a round or transaction of a member not in members.csv (or whose row was rejected)."""
    _reject_repeats(run, MEMBERS, ("club_code", "member_no"), "ClubCode and MemberNo twice")
    _reject_repeats(run, TRANSACTIONS, ("source_event_id",), "same Reference twice")
    _reject_repeats(run, ROUNDS, ("source_event_id",), "the same round twice")
    # One hash join of the history rows with the member keys (their state: loaded or not).
    _exec(
        f"""
        WITH m AS (
            SELECT club_code, member_no, bool_or(NOT rejected) AS loaded FROM "{ROWS}"
            WHERE run_id = %s AND file = %s GROUP BY club_code, member_no)
        UPDATE "{ROWS}" r SET rejected = true, outcome = %s, profile_id = NULL,
            reason = CASE WHEN x.known THEN 'the member row was rejected'
              ELSE 'unknown member: ' || r.club_code || ' ' || r.member_no
                   || ' is not in members.csv' END
        FROM (SELECT h.id, m.club_code IS NOT NULL AS known FROM "{ROWS}" h
              LEFT JOIN m ON m.club_code = h.club_code AND m.member_no = h.member_no
              WHERE h.run_id = %s AND h.file IN (%s, %s) AND NOT h.rejected
                AND m.loaded IS NOT TRUE) x
        WHERE r.id = x.id
        """,  # noqa: S608
        [run.pk, MEMBERS, RowOutcome.REJECTED, run.pk, ROUNDS, TRANSACTIONS],
    )


# ----------------------------------------------------------------------------- plan

# The CRM's tables the plan joins with the run's: their statistics decide its join orders.
PLANNED_TABLES = (ALIAS, PROFILE, ACTIVITY)


def stats_refresh(tables: tuple[str, ...] = PLANNED_TABLES) -> list[str]:
    """ANALYZE those of ``tables`` whose statistics are missing or stale (more than a tenth
    of their rows changed since, autovacuum's default rule), and return them. Run before the
    load's transaction: an export imported again right after the first import, before
    autovacuum had analyzed what it wrote, was planned from no statistics at all, and one
    statement of the planning ran for more than 13 minutes at 250,000 records instead of
    about a second (the whole planning 18.6 s once analyzed; the ANALYZE 1.4 s, a sample of
    each table whatever its size)."""
    stale = [
        name
        for (name,) in _fetch(
            """SELECT c.relname FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid
            WHERE c.relname = ANY(%s)
              AND (c.reltuples < 0 OR s.n_mod_since_analyze > 50 + 0.1 * c.reltuples)
            ORDER BY c.relname""",
            [list(tables)],
        )
    ]
    if stale:
        _exec("ANALYZE " + ", ".join(f'"{name}"' for name in stale))
    return stale


_REP_ORDER = "(status IN ('A', 'S')) DESC, join_date DESC NULLS LAST, id DESC"

# The member fields planning reads, typed, extracted once from ``data`` (``bf_members``).
_MEMBER_FIELDS = (
    "email text, phone text, national_id text, first_name text, last_name text, dob date, "
    "last_visit timestamptz, status text, join_date date, email_opt_in boolean, "
    "sms_opt_in boolean, club text, category text, handicap text, known_as text, "
    "gender text, postal text, town text"
)
# What the best record gives the person: ``bf_groups.rep_<field>``, typed columns (not one
# jsonb object built for every person and parsed again by each reader).
_REP_FIELDS = ("status", "category", "join_date", "handicap", "club", "known_as", "gender",
               "postal", "town")  # fmt: skip


def _first(expr: str) -> str:
    """The first non-null value of ``expr`` in the group, best row first."""
    return f"(array_agg({expr} ORDER BY {_REP_ORDER}) FILTER (WHERE {expr} IS NOT NULL))[1]"


def _consent_agg(column: str) -> str:
    # A refusal anywhere in the person's records stands; else a consent; else never asked.
    return f"CASE WHEN bool_or({column} = false) THEN false WHEN bool_or({column}) THEN true END"


def _silent(phase: str, done: int, total: int | None) -> None:
    return None


def plan(*, run: ImportRun, now: datetime, progress: Progress = _silent) -> dict[str, int]:
    """Group member rows into people, match them to existing profiles, find likely
    duplicates, and set every row's outcome and profile. Writes only the run's rows and
    temporary tables (dropped at commit).

    The work is done on ``bf_members``, a narrow temporary table of the run's loadable
    member rows with their fields typed (one scan of the staged rows): grouping and the
    auto-merges update it (no WAL, no index of the staging table to keep), and the staged
    rows are written once, at the end (group, profile, reason, and the outcome computed in
    that same statement from the person)."""
    region = run.region.lower()
    # ``ANALYZE bf_members (id, grp)``: the plans over it join by id and group only; the
    # stats of its wide text columns (names, e-mails) cost 0.24 s at 62,500 rows and no plan
    # filters or joins on them. ``bf_keys`` has no (kind, value) index: every join on it is
    # a hash join or an index probe of the alias table; building it cost 0.3-0.4 s (the
    # planning phase 3.1 -> 2.7 s back to back without it, the alias insert unchanged).
    # Dropped at commit; dropped here too for a second plan in one transaction (tests).
    _exec(f"DROP TABLE IF EXISTS bf_members, {', '.join(TEMP_TABLES)}")
    _exec(
        f"""
        CREATE TEMP TABLE bf_members ON COMMIT DROP AS
        SELECT r.id, r.id AS grp, r.line, r.club_code, r.member_no, r.reason,
            ''::text AS merge_note, r.grp AS staged_grp, r.profile_id AS staged_profile,
            r.outcome AS staged_outcome, d.*
        FROM "{ROWS}" r, jsonb_to_record(r.data) AS d({_MEMBER_FIELDS})
        WHERE r.run_id = %s AND r.file = %s AND NOT r.rejected;
        UPDATE bf_members SET first_name = NULLIF(first_name, ''),
            last_name = NULLIF(last_name, '')
        WHERE first_name = '' OR last_name = '';
        CREATE UNIQUE INDEX ON bf_members (id);
        ANALYZE bf_members (id, grp);
        CREATE TEMP TABLE bf_keys ON COMMIT DROP AS
        SELECT m.id AS row_id, k.kind, k.value FROM bf_members m, LATERAL (VALUES
            ('external', 'mca_v1_' || %s || '_' || lower(m.club_code) || ':' || m.member_no),
            ('email', m.email),
            ('phone', m.phone),
            ('external', %s || ':' || m.national_id)
        ) AS k(kind, value)
        WHERE k.value IS NOT NULL;
        CREATE INDEX ON bf_keys (row_id);
        ANALYZE bf_keys;
        """,  # noqa: S608
        [run.pk, MEMBERS, region, NATIONAL_SYSTEM[run.region]],
    )
    # Connected components: every row takes the smallest group of a row sharing a key, until
    # nothing moves (as many rounds as the longest chain of shared keys, usually 2 or 3).
    # Only keys held by two rows or more can join anything.
    _exec(
        """
        CREATE TEMP TABLE bf_shared ON COMMIT DROP AS
        SELECT k.row_id, k.kind, k.value FROM bf_keys k
        JOIN (SELECT kind, value FROM bf_keys GROUP BY kind, value HAVING count(*) > 1) s
          ON s.kind = k.kind AND s.value = k.value;
        CREATE INDEX ON bf_shared (kind, value);
        ANALYZE bf_shared;
        """
    )
    while _exec(
        """
        WITH m AS (
            SELECT k1.row_id, min(r2.grp) AS g FROM bf_shared k1
            JOIN bf_shared k2 ON k2.kind = k1.kind AND k2.value = k1.value
            JOIN bf_members r2 ON r2.id = k2.row_id GROUP BY k1.row_id)
        UPDATE bf_members r SET grp = m.g FROM m WHERE r.id = m.row_id AND m.g < r.grp
        """
    ):
        pass
    _exec("CREATE INDEX ON bf_members (grp)")
    _groups_build(run)
    progress("duplicates", 0, None)
    pairs = duplicates.pairs_find(run=run)
    progress("planning", 0, None)
    merged = _auto_merge(run)
    if merged:
        # People joined: their values and matches are computed again (for the merged
        # groups only: every other person's row is a function of its own records), then
        # their pairs are scored again (every other pair keeps its score).
        _groups_build(run, merged=True)
        progress("duplicates", 0, None)
        pairs = duplicates.pairs_find(run=run, merged=True)
        progress("planning", 0, None)
    progress("duplicates", 0, None)
    known = duplicates.known_pairs_find(run=run)
    progress("planning", 0, None)
    _exec("CREATE INDEX ON bf_pairs (grp_b); CREATE INDEX ON bf_known_pairs (grp_a)")
    _changed_table(run)
    _exec("CREATE UNIQUE INDEX ON bf_changed (grp); ANALYZE bf_changed")
    # The staged rows' plan, written only where it differs from what staging wrote (a new
    # person of one record: ``created``, its own profile id, no group): group, profile,
    # outcome and the auto-merge's note, for the ~7% of rows that joined another record or a
    # profile, or were merged or suggested. Every member row was rewritten before (a non-HOT
    # update of the wide staged rows, 160 MB of WAL at 62,500). ``grp`` is kept for the rows
    # whose person's first record is another row. The outcome is computed here, from the
    # person (``bf_groups``), and compared with the staged values carried in ``bf_members``,
    # so only the rows to change are looked up in the staging table.
    _exec(
        f"""
        UPDATE "{ROWS}" r SET grp = x.grp, profile_id = x.profile_id, outcome = x.outcome,
            reason = x.reason
        FROM (
            SELECT m.id, m.staged_grp, m.staged_profile, m.staged_outcome,
                m.reason AS staged_reason, NULLIF(m.grp, m.id) AS grp, g.profile_id, CASE
                WHEN g.is_new AND m.id = g.first_row AND (
                    EXISTS (SELECT 1 FROM bf_pairs d WHERE d.grp_b = g.grp)
                    OR EXISTS (SELECT 1 FROM bf_known_pairs k WHERE k.grp_a = g.grp)) THEN %s
                WHEN g.is_new AND m.id = g.first_row THEN %s
                WHEN g.is_new THEN %s
                WHEN EXISTS (SELECT 1 FROM "{ALIAS}" a WHERE a.tenant_id = %s
                    AND a.kind = 'external' AND a.profile_id = g.profile_id
                    AND a.value = 'mca_v1_' || %s || '_' || lower(m.club_code) || ':'
                        || m.member_no)
                    THEN CASE WHEN g.grp IN (SELECT grp FROM bf_changed) THEN %s ELSE %s END
                ELSE %s END AS outcome,
                CASE WHEN m.merge_note = '' THEN m.reason
                    ELSE concat_ws('; ', NULLIF(m.reason, ''), m.merge_note) END AS reason
            FROM bf_members m JOIN bf_groups g ON g.grp = m.grp) x
        WHERE (x.grp, x.profile_id, x.outcome, x.reason)
              IS DISTINCT FROM (x.staged_grp, x.staged_profile, x.staged_outcome, x.staged_reason)
          AND r.id = x.id AND r.run_id = %s
        """,  # noqa: S608
        [
            RowOutcome.SUGGESTED, RowOutcome.CREATED, RowOutcome.JOINED, run.tenant_id,
            region, RowOutcome.UPDATED, RowOutcome.UNCHANGED, RowOutcome.JOINED, run.pk,
        ],
    )  # fmt: skip
    return {"duplicate_pairs": pairs, "merged_automatically": merged, "like_existing": known}


def _groups_build(run: ImportRun, *, merged: bool = False) -> None:
    """``bf_groups`` (one row per person: their best values, profile, new or not) and
    ``bf_match`` (the existing profiles their keys found). ``merged``: after the automatic
    merges, only the groups in ``bf_roots`` are computed again (the others are unchanged).

    ``bf_match`` is built first, so each person's row is written once, complete (external
    ids, profile found or a new one): no UPDATE of every person afterwards (each rewrote the
    whole table: three passes over the people)."""
    rep = ", ".join(f"b.{f} AS rep_{f}" for f in _REP_FIELDS)
    only = "WHERE grp IN (SELECT root FROM bf_roots)" if merged else ""
    scope = "grp IN (SELECT root FROM bf_roots)" if merged else "true"
    # Most people have one record: their values are that record's (what the aggregates give
    # for one row), without the aggregates' sorts (each ordered aggregate sorts its group).
    # Their external ids too: the object the aggregate of their ``bf_keys`` would give (the
    # same key strings, split at the first colon), built from the row itself, not by a join,
    # sort and aggregate of every external key (0.3 s at 62,500 rows).
    # The profile: the one their keys found (surest key first), else a new one.
    legacy = f"('mca_v1_{run.region.lower()}_' || lower(club_code) || ':' || member_no)"
    own_ext = (
        f"jsonb_build_object(split_part({legacy}, ':', 1),"
        f" substr({legacy}, strpos({legacy}, ':') + 1))"
        f" || CASE WHEN national_id IS NULL THEN '{{}}'::jsonb"
        f" ELSE jsonb_build_object('{NATIONAL_SYSTEM[run.region]}', national_id) END"
    )
    people = f"""
        WITH multi AS (
            SELECT grp FROM bf_members WHERE {scope} GROUP BY grp HAVING count(*) > 1)
        SELECT a.*, {rep},
            COALESCE(c.profile_id, a.new_id, gen_random_uuid()) AS profile_id,
            c.profile_id IS NULL AS is_new, COALESCE(e.ext, a.own_ext, '{{}}'::jsonb) AS ext
        FROM (
            SELECT grp, min(id) AS first_row, (array_agg(id ORDER BY {_REP_ORDER}))[1] AS rep_id,
                (array_agg(staged_profile ORDER BY id))[1] AS new_id, NULL::jsonb AS own_ext,
                {_first("email")} AS email,
                {_first("phone")} AS phone,
                {_first("first_name")} AS first_name,
                {_first("last_name")} AS last_name,
                {_first("dob")} AS dob,
                max(last_visit) AS last_visit,
                bool_or(status = 'D') AS deceased,
                bool_or(status IN ('A', 'S')) AS member,
                {_consent_agg("email_opt_in")} AS email_opt,
                {_consent_agg("sms_opt_in")} AS sms_opt
            FROM bf_members WHERE grp IN (SELECT grp FROM multi) GROUP BY grp
            UNION ALL
            SELECT grp, id, id, staged_profile, {own_ext}, email, phone, first_name, last_name,
                dob, last_visit, status = 'D', status IN ('A', 'S'), email_opt_in, sms_opt_in
            FROM bf_members WHERE {scope} AND grp NOT IN (SELECT grp FROM multi)) a
        JOIN bf_members b ON b.id = a.rep_id
        LEFT JOIN (
            SELECT r.grp, jsonb_object_agg(split_part(k.value, ':', 1),
                substr(k.value, strpos(k.value, ':') + 1) ORDER BY r.id) AS ext
            FROM bf_keys k JOIN bf_members r ON r.id = k.row_id
            WHERE k.kind = 'external' AND r.grp IN (SELECT grp FROM multi) GROUP BY r.grp) e
          ON e.grp = a.grp
        LEFT JOIN (
            SELECT DISTINCT ON (grp) grp, profile_id FROM bf_match {only}
            ORDER BY grp, confidence DESC, keys DESC, created, profile_id) c
          ON c.grp = a.grp
    """  # noqa: S608
    match = f"""
        SELECT r.grp, a.profile_id, max({KEY_CONFIDENCE_SQL}) AS confidence, count(*) AS keys,
               min(p.created_at) AS created, string_agg(DISTINCT a.kind, ', ') AS kinds
        FROM bf_keys k JOIN bf_members r ON r.id = k.row_id
        JOIN "{ALIAS}" a ON a.tenant_id = %s AND a.kind = k.kind AND a.value = k.value
        JOIN "{PROFILE}" p ON p.id = a.profile_id AND p.status IN ({LIVE})
             AND p.deleted_at IS NULL
        {only.replace("grp", "r.grp")}
        GROUP BY r.grp, a.profile_id
    """  # noqa: S608
    if merged:
        tables = f"""
        DELETE FROM bf_match WHERE grp IN (SELECT grp FROM bf_roots);
        INSERT INTO bf_match {match};
        DELETE FROM bf_groups WHERE grp IN (SELECT grp FROM bf_roots);
        INSERT INTO bf_groups {people};
        """  # noqa: S608
    else:
        tables = f"""
        CREATE TEMP TABLE bf_match ON COMMIT DROP AS {match};
        CREATE TEMP TABLE bf_groups ON COMMIT DROP AS {people};
        CREATE UNIQUE INDEX ON bf_groups (grp);
        CREATE INDEX ON bf_groups (profile_id);
        """
    _exec(f"{tables} ANALYZE bf_groups;", [run.tenant_id])


def _auto_merge(run: ImportRun) -> int:
    """People whose duplicate score reaches ``duplicates.AUTO_MERGE_THRESHOLD`` become one
    person (one round: pairs found after it are suggestions). Returns the rows moved."""
    _exec(
        "CREATE TEMP TABLE bf_auto ON COMMIT DROP AS "
        "SELECT grp_a, grp_b, score FROM bf_pairs WHERE score >= %s",
        [duplicates.AUTO_MERGE_THRESHOLD],
    )
    _exec(
        "CREATE TEMP TABLE bf_roots ON COMMIT DROP AS SELECT grp, grp AS root FROM "
        "(SELECT grp_a AS grp FROM bf_auto UNION SELECT grp_b FROM bf_auto) x"
    )
    while _exec(
        """
        WITH m AS (
            SELECT r1.grp, min(r2.root) AS root FROM bf_roots r1
            JOIN bf_auto e ON r1.grp IN (e.grp_a, e.grp_b)
            JOIN bf_roots r2 ON r2.grp IN (e.grp_a, e.grp_b) GROUP BY r1.grp)
        UPDATE bf_roots r SET root = m.root FROM m WHERE r.grp = m.grp AND m.root < r.root
        """
    ):
        pass
    return _exec(
        """
        UPDATE bf_members r SET grp = t.root, merge_note = 'merged automatically with line '
            || first.line || ' (duplicate score ' || round(s.score::numeric, 2) || ')'
        FROM bf_roots t, bf_members first,
            LATERAL (SELECT max(score) AS score FROM bf_auto
                     WHERE t.grp IN (grp_a, grp_b)) s
        WHERE r.grp = t.grp AND t.grp <> t.root AND first.id = t.root
        """
    )


# What an existing profile takes from the export (``g``: the person's values; ``p``: the
# profile). The same guards decide the plan's "updated" and the load's UPDATE.
def _guards(exported: str) -> dict[str, str]:
    return {
        "membership": f"(p.membership_updated_at IS NULL OR p.membership_updated_at < {exported})",
        "handicap": f"(p.handicap_updated_at IS NULL OR p.handicap_updated_at < {exported})",
    }


def _person_values() -> dict[str, str]:
    """SQL of the CRM's values of a person (``g``), from the best record (``g.rep_x``)."""
    return {
        "lifecycle_stage": (
            "CASE WHEN g.deceased THEN 'CHURNED' WHEN g.member THEN 'MEMBER' ELSE 'LAPSED' END"
        ),
        "membership_status": (
            "CASE WHEN g.deceased THEN 'DECEASED' ELSE CASE g.rep_status "
            "WHEN 'A' THEN 'ACTIVE' WHEN 'S' THEN 'SUSPENDED' WHEN 'R' THEN 'RESIGNED' "
            "ELSE 'LAPSED' END END"
        ),
        "membership_type": "left(COALESCE(g.rep_category, ''), 64)",
        "membership_joined_on": "g.rep_join_date",
        "handicap_index": "g.rep_handicap::numeric(4, 1)",
    }


_MEMBERSHIP_COLUMNS = ("lifecycle_stage", "membership_status", "membership_type",
                       "membership_joined_on")  # fmt: skip


def _email_free(column: str) -> str:
    return (
        f'NOT EXISTS (SELECT 1 FROM "{ALIAS}" a2 WHERE a2.tenant_id = p.tenant_id '  # noqa: S608
        f"AND a2.kind = '{column}' AND a2.value = g.{column} AND a2.profile_id <> p.id)"
    )


def _changes_sql() -> str:
    """True when the load would change the existing profile ``p`` for person ``g``
    (parameters: the export time, four times)."""
    values, guards = _person_values(), _guards("%(exported)s")
    membership = " OR ".join(f"p.{c} IS DISTINCT FROM {values[c]}" for c in _MEMBERSHIP_COLUMNS)
    consent = " OR ".join(
        f"(({decision}) IS NOT NULL AND (p.{ch}_consent_at IS NULL "
        f"OR (p.{ch}_consent_at < %(exported)s AND p.{ch}_opt_in IS DISTINCT FROM ({decision}))"
        f" OR (g.deceased AND p.{ch}_opt_in)))"
        for ch, decision in CONSENT_DECISIONS.items()
    )
    return f"""(
        (p.first_name = '' AND g.first_name IS NOT NULL)
        OR (p.last_name = '' AND g.last_name IS NOT NULL)
        OR (p.date_of_birth IS NULL AND g.dob IS NOT NULL)
        OR (p.email IS NULL AND g.email IS NOT NULL AND {_email_free("email")})
        OR (p.phone IS NULL AND g.phone IS NOT NULL AND {_email_free("phone")})
        OR NOT (p.external_ids @> g.ext)
        OR ({guards["membership"]} AND ({membership}))
        OR ({guards["handicap"]} AND p.handicap_index IS DISTINCT FROM {values["handicap_index"]})
        OR {consent}
    )"""


def _changed_table(run: ImportRun) -> None:
    """``bf_changed``: the groups whose existing profile the load would change."""
    _exec(
        f"""
        CREATE TEMP TABLE bf_changed ON COMMIT DROP AS
        SELECT g.grp FROM bf_groups g JOIN "{PROFILE}" p ON p.id = g.profile_id
        WHERE NOT g.is_new AND p.tenant_id = %(tenant)s AND {_changes_sql()}
        """,  # noqa: S608
        {"tenant": run.tenant_id, "exported": run.exported_at},
    )


# ----------------------------------------------------------------------------- apply


def apply(*, run: ImportRun, now: datetime, progress: Progress = _silent) -> dict[str, int]:
    """Write the plan (inside the caller's transaction). Every statement is idempotent:
    inserts skip what exists, updates are guarded by the export time."""
    tenant: Tenant = run.tenant
    dialect = DIALECTS[run.region]
    params = {
        "tenant": tenant.pk,
        "run": run.pk,
        "now": now,
        "exported": run.exported_at,
        "clubs": json.dumps(run.club_map),
        "currency": tenant.currency,
        "tz": dialect.timezone,
        "source": SOURCE,
        "members": MEMBERS,
        "rounds": ROUNDS,
        "transactions": TRANSACTIONS,
    }
    values = _person_values()
    stats: dict[str, int] = {}
    guards = _guards("%(exported)s")
    membership_sets = ", ".join(
        f"{c} = CASE WHEN {guards['membership']} THEN {values[c]} ELSE p.{c} END"
        for c in _MEMBERSHIP_COLUMNS
    )
    stats["profiles_updated"] = _exec(
        f"""
        UPDATE "{PROFILE}" p SET
            first_name = CASE WHEN p.first_name = '' THEN left(COALESCE(g.first_name, ''), 100)
                ELSE p.first_name END,
            last_name = CASE WHEN p.last_name = '' THEN left(COALESCE(g.last_name, ''), 100)
                ELSE p.last_name END,
            date_of_birth = COALESCE(p.date_of_birth, g.dob),
            email = COALESCE(p.email, CASE WHEN {_email_free("email")} THEN g.email END),
            phone = COALESCE(p.phone, CASE WHEN {_email_free("phone")} THEN g.phone END),
            home_club_id = COALESCE(p.home_club_id, (%(clubs)s::jsonb ->> g.rep_club)::uuid),
            external_ids = g.ext || p.external_ids,
            {membership_sets},
            membership_updated_at = CASE WHEN {guards["membership"]} THEN %(exported)s
                ELSE p.membership_updated_at END,
            handicap_index = CASE WHEN {guards["handicap"]} THEN {values["handicap_index"]}
                ELSE p.handicap_index END,
            handicap_updated_at = CASE WHEN {guards["handicap"]} AND g.rep_handicap IS NOT NULL
                THEN %(exported)s ELSE p.handicap_updated_at END,
            status = CASE WHEN g.deceased THEN 'INACTIVE' ELSE p.status END,
            tags = CASE WHEN g.deceased AND NOT 'deceased' = ANY(p.tags)
                THEN array_append(p.tags, 'deceased') ELSE p.tags END,
            updated_at = %(now)s
        FROM bf_groups g
        WHERE p.id = g.profile_id AND p.tenant_id = %(tenant)s AND NOT g.is_new
          AND {_changes_sql()}
        """,  # noqa: S608
        params,
    )
    # The run's activities first: the new profiles are inserted with what they sum up to.
    stats.update(_activities(params, progress))
    progress("loading", 0, None)
    stats["profiles_created"] = _insert_new_profiles(params)
    # Keys held by one record are inserted as they are; a key several records share once (the
    # records sharing a key are one person: any of them gives the same profile). The shared
    # keys' ORDER BY is in parentheses: unparenthesised, it ordered the whole UNION ALL, a
    # sort of every alias of the run (0.55 s of the 5 s INSERT at 62,500).
    stats["aliases"] = _exec(
        f"""
        INSERT INTO "{ALIAS}" (tenant_id, kind, value, profile_id, source, created_at, updated_at)
        SELECT %(tenant)s, k.kind, k.value, g.profile_id, %(source)s, %(now)s, %(now)s
        FROM (
            SELECT k.kind, k.value, k.row_id FROM bf_keys k
            WHERE NOT EXISTS (SELECT 1 FROM bf_shared s
                              WHERE s.kind = k.kind AND s.value = k.value)
            UNION ALL
            (SELECT DISTINCT ON (kind, value) kind, value, row_id FROM bf_shared
             ORDER BY kind, value, row_id)) k
        JOIN bf_members r ON r.id = k.row_id JOIN bf_groups g ON g.grp = r.grp
        ON CONFLICT DO NOTHING
        """,  # noqa: S608
        params,
    )
    stats["consent_records"] = sum(
        _exec(
            f"""
            WITH d AS (
                SELECT g.profile_id, g.is_new, g.deceased, {decision} AS opt_in FROM bf_groups g
                WHERE {decision} IS NOT NULL
            ), u AS (
                UPDATE "{PROFILE}" p SET {ch}_opt_in = d.opt_in,
                    {ch}_consent_at = %(exported)s, {ch}_consent_source = %(source)s
                FROM d WHERE NOT d.is_new AND p.id = d.profile_id AND p.tenant_id = %(tenant)s
                  AND (p.{ch}_consent_at IS NULL
                       OR (p.{ch}_consent_at < %(exported)s AND p.{ch}_opt_in <> d.opt_in)
                       OR (d.deceased AND p.{ch}_opt_in))
                RETURNING p.id, d.opt_in
            )
            INSERT INTO "{CONSENT}" (tenant_id, customer_id, channel, opt_in, source,
                occurred_at, evidence, created_at, updated_at)
            SELECT %(tenant)s, x.id, '{ch}', x.opt_in, %(source)s, %(exported)s,
                jsonb_build_object('import_run', %(run)s::text), %(now)s, %(now)s
            FROM (SELECT id, opt_in FROM u
                  UNION ALL SELECT profile_id, opt_in FROM d WHERE d.is_new) x
            """,  # noqa: S608
            params,
        )
        for ch, decision in CONSENT_DECISIONS.items()
    )
    stats["suppressions"] = _exec(
        f"""
        INSERT INTO "{SUPPRESSION}" (tenant_id, channel, address, reason, source,
            created_at, updated_at)
        SELECT DISTINCT %(tenant)s, c.channel, k.value, 'deceased', %(source)s, %(now)s, %(now)s
        FROM bf_keys k JOIN bf_members r ON r.id = k.row_id
        JOIN bf_groups g ON g.grp = r.grp AND g.deceased
        JOIN (VALUES ('email', 'email'), ('phone', 'sms'), ('phone', 'whatsapp'))
             AS c(kind, channel) ON c.kind = k.kind
        ON CONFLICT DO NOTHING
        """,  # noqa: S608
        params,
    )
    progress("loading metrics", 0, None)
    _metrics(run=run, now=now)
    stats["suggestions"] = _suggestions(params)
    return stats


def _insert_new_profiles(params: dict[str, Any]) -> int:
    """The new people's profiles, written once and complete: after their activities (the
    foreign keys are checked at commit), so last activity, the 30-day count and lifetime
    value come from ``bf_history`` instead of two more writes of every new profile (an
    UPDATE of a row just inserted is a new version in all of the table's indexes); before
    the run's aliases, so an e-mail or phone already held as an alias is one of another
    profile."""
    values = _person_values()
    return _exec(
        f"""
        INSERT INTO "{PROFILE}" (
            id, tenant_id, created_at, updated_at, email, phone, external_ids, first_name,
            last_name, date_of_birth, home_club_id, status, lifecycle_stage, tags,
            {
            ", ".join(
                f"{ch}_opt_in, {ch}_consent_at, {ch}_consent_source" for ch in CONSENT_DECISIONS
            )
        },
            last_activity_at, last_activity_type, activity_count_30d, lifetime_value_minor,
            currency,
            membership_type, membership_status, membership_joined_on, membership_updated_at,
            handicap_index, handicap_updated_at)
        SELECT g.profile_id, %(tenant)s, %(now)s, %(now)s,
            CASE WHEN NOT EXISTS (SELECT 1 FROM "{ALIAS}" a WHERE a.tenant_id = %(tenant)s
                AND a.kind = 'email' AND a.value = g.email) THEN g.email END,
            CASE WHEN NOT EXISTS (SELECT 1 FROM "{ALIAS}" a WHERE a.tenant_id = %(tenant)s
                AND a.kind = 'phone' AND a.value = g.phone) THEN g.phone END,
            g.ext, left(COALESCE(g.first_name, ''), 100), left(COALESCE(g.last_name, ''), 100),
            g.dob, (%(clubs)s::jsonb ->> g.rep_club)::uuid,
            CASE WHEN g.deceased THEN 'INACTIVE' ELSE 'ACTIVE' END,
            {values["lifecycle_stage"]},
            CASE WHEN g.deceased THEN ARRAY['deceased'] ELSE ARRAY[]::varchar[] END,
            {_new_consent_sql()},
            CASE WHEN h.at >= g.last_visit OR g.last_visit IS NULL THEN h.at
                ELSE g.last_visit END,
            CASE WHEN h.at >= g.last_visit OR g.last_visit IS NULL THEN COALESCE(h.type, '')
                ELSE 'mca_v1.visit' END,
            COALESCE(h.recent, 0), COALESCE(h.amount, 0), %(currency)s,
            {values["membership_type"]}, {values["membership_status"]},
            {values["membership_joined_on"]}, %(exported)s,
            {values["handicap_index"]},
            CASE WHEN g.rep_handicap IS NOT NULL THEN %(exported)s END
        FROM bf_groups g LEFT JOIN (
            SELECT customer_id, max(at) AS at, (array_agg(type ORDER BY at DESC))[1] AS type,
                sum(amount) AS amount, sum(recent) AS recent
            FROM bf_history GROUP BY customer_id
        ) h ON h.customer_id = g.profile_id
        WHERE g.is_new
        """,  # noqa: S608
        params,
    )


_ACTIVITY_INSERT = f"""
    INSERT INTO "{ACTIVITY}" (tenant_id, customer_id, type, category, title, metadata,
        source_service, source_id, source_event_id, occurred_at, created_at, updated_at)
"""


# A round's or transaction's person: its member row's profile (one loaded row per key).
_MEMBER_JOIN = f"""JOIN "{ROWS}" m ON m.run_id = r.run_id AND m.file = 'members'
    AND NOT m.rejected AND m.club_code = r.club_code AND m.member_no = r.member_no"""


def _earlier_import(params: dict[str, Any]) -> bool:
    """The tenant has activities of an earlier import (the first entry of the unique index's
    prefix)."""
    return _fetch(
        f"""SELECT EXISTS (SELECT 1 FROM "{ACTIVITY}" WHERE tenant_id = %(tenant)s
            AND source_service = %(source)s)""",  # noqa: S608
        params,
    )[0][0]


def _not_loaded(event_id: str, earlier: bool) -> str:
    """``AND`` the activity of source event id ``event_id`` (SQL) is not on the timeline yet,
    when an earlier import may have written it; else nothing. Each INSERT keeps ON CONFLICT
    DO NOTHING as the guarantee; this anti-join (a hash of the tenant's imported event ids)
    skips the rows already written before their titles and metadata are built: 1.25M rounds
    imported again took 17.2 s with the conflict checks alone, 3.7 s with it. A first import
    goes without it: there it would hash, for the transactions and membership ends, the
    rounds the run has just written (+25 s at 250,000 records)."""
    if not earlier:
        return ""
    return f"""AND NOT EXISTS (SELECT 1 FROM "{ACTIVITY}" a WHERE a.tenant_id = %(tenant)s
        AND a.source_service = %(source)s AND a.source_event_id = {event_id})"""  # noqa: S608


# A membership end's source event id: one per record and date it left.
_LEFT_EVENT_ID = "'left:' || r.club_code || ':' || r.member_no || ':' || (r.data->>'left_date')"


# A person's lifetime value counts the transactions in the tenant's currency (refunds negative).
_TENANT_CURRENCY_SUM = "COALESCE(sum(amount) FILTER (WHERE currency = %(currency)s), 0)"


def _history(activity_type: str, amount: str) -> str:
    """A CTE (``h``) adding to ``bf_history``, per person, what an activity INSERT (``ins``,
    returning ``customer_id`` and ``occurred_at``) wrote: the latest, the number in the
    rolling 30-day window at ``now`` and ``amount`` (SQL over ``ins``), returning each
    person's ``amount``. Only rows really inserted are returned (ON CONFLICT DO NOTHING), so a
    second import adds nothing."""
    return f"""h AS (
        INSERT INTO bf_history (customer_id, at, type, amount, recent)
        SELECT customer_id, max(occurred_at), '{activity_type}', {amount},
            count(*) FILTER (WHERE occurred_at > %(now)s::timestamptz - interval '{ROLLING_WINDOW}'
                             AND occurred_at <= %(now)s::timestamptz)
        FROM ins GROUP BY customer_id
        RETURNING customer_id, amount
    )"""  # noqa: S608


def _activities(params: dict[str, Any], progress: Progress) -> dict[str, int]:
    """Rounds, transactions (and lifetime value: refunds subtract) and membership ends, each
    with its source event id, so a row is never on the timeline twice."""
    _exec(
        "CREATE TEMP TABLE bf_history (customer_id uuid, at timestamptz, type text, "
        "amount bigint, recent bigint) ON COMMIT DROP"
    )
    earlier = _earlier_import(params)
    progress("loading rounds", 0, None)
    rounds = _fetch(
        f"""WITH ins AS ({_ACTIVITY_INSERT}
        SELECT %(tenant)s, m.profile_id, 'mca_v1.round', 'golf',
            'Played ' || (r.data->>'holes') || ' holes at ' || (r.data->>'course')
              || COALESCE(', ' || (r.data->>'stableford') || ' points', '')
              || COALESCE(' (' || NULLIF(r.data->>'competition', '') || ')', ''),
            r.data - 'club' - 'member_no', %(source)s, r.club_code || ':' || r.member_no,
            r.source_event_id, ((r.data->>'played_on')::date::timestamp AT TIME ZONE %(tz)s),
            %(now)s, %(now)s
        FROM "{ROWS}" r {_MEMBER_JOIN}
        WHERE r.run_id = %(run)s AND r.file = %(rounds)s AND r.outcome = 'loaded'
          {_not_loaded("r.source_event_id", earlier)}
        ON CONFLICT (tenant_id, source_service, source_event_id) DO NOTHING
        RETURNING customer_id, occurred_at), {_history("mca_v1.round", "0")}
        SELECT count(*) FROM ins
        """,  # noqa: S608
        params,
    )[0][0]
    progress("loading transactions", 0, None)
    transactions = _fetch(
        f"""
        WITH ins AS ({_ACTIVITY_INSERT}
            SELECT %(tenant)s, m.profile_id, 'mca_v1.transaction', 'commerce',
                CASE r.data->>'type' WHEN 'REFUND' THEN 'Refund ' ELSE 'Paid ' END
                  || (r.data->>'currency') || ' '
                  || to_char(abs(r.amount_minor) / 100.0, 'FM999999990.00')
                  || ' (' || (r.data->>'type') || ', ' || (r.data->>'reference') || ')',
                r.data - 'club' - 'member_no', %(source)s, r.club_code || ':' || r.member_no,
                r.source_event_id,
                ((r.data->>'on')::date::timestamp AT TIME ZONE %(tz)s), %(now)s, %(now)s
            FROM "{ROWS}" r {_MEMBER_JOIN}
            WHERE r.run_id = %(run)s AND r.file = %(transactions)s AND r.outcome = 'loaded'
              {_not_loaded("r.source_event_id", earlier)}
            ON CONFLICT (tenant_id, source_service, source_event_id) DO NOTHING
            RETURNING customer_id, occurred_at, (metadata->>'amount_minor')::bigint AS amount,
                metadata->>'currency' AS currency
        ), {_history("mca_v1.transaction", _TENANT_CURRENCY_SUM)}, upd AS (
            -- Per person, the sums ``h`` wrote to bf_history. The people the run creates are
            -- not in the table yet: their lifetime value is read from bf_history as they are
            -- inserted.
            UPDATE "{PROFILE}" p SET lifetime_value_minor = p.lifetime_value_minor + t.amount
            FROM h t WHERE p.id = t.customer_id AND p.tenant_id = %(tenant)s AND t.amount <> 0
            RETURNING p.id
        )
        SELECT (SELECT count(*) FROM ins), (SELECT COALESCE(sum(amount), 0) FROM ins)
        """,  # noqa: S608
        params,
    )[0]
    progress("loading membership ends", 0, None)
    left = _fetch(
        f"""WITH ins AS ({_ACTIVITY_INSERT}
        SELECT %(tenant)s, r.profile_id, 'mca_v1.membership.left', 'membership',
            CASE r.data->>'status' WHEN 'R' THEN 'Resigned' ELSE 'Membership lapsed' END
              || ' at ' || r.club_code,
            jsonb_build_object('club', r.club_code, 'member_no', r.member_no,
                'status', r.data->>'status'),
            %(source)s, r.club_code || ':' || r.member_no,
            {_LEFT_EVENT_ID},
            ((r.data->>'left_date')::date::timestamp AT TIME ZONE %(tz)s), %(now)s, %(now)s
        FROM "{ROWS}" r WHERE r.run_id = %(run)s AND r.file = %(members)s AND NOT r.rejected
          AND r.data->>'status' IN ('R', 'L') AND r.data->>'left_date' IS NOT NULL
          {_not_loaded(_LEFT_EVENT_ID, earlier)}
        ON CONFLICT (tenant_id, source_service, source_event_id) DO NOTHING
        RETURNING customer_id, occurred_at), {_history("mca_v1.membership.left", "0")}
        SELECT count(*) FROM ins
        """,  # noqa: S608
        params,
    )[0][0]
    _exec("ANALYZE bf_history")
    return {
        "round_activities": rounds,
        "transaction_activities": transactions[0],
        "money_loaded_minor": int(transactions[1]),
        "membership_activities": left,
    }


def _metrics(*, run: ImportRun, now: datetime) -> None:
    """Last activity (forward only) of the run's existing people, from what the run wrote
    (``bf_history``) and the export's LastVisit (the new people were inserted with theirs);
    then the tenant's rolling 30-day counts at ``now``. On a tie an activity wins over the
    visit date, as for a new person."""
    _exec(
        f"""
        WITH latest AS (
            SELECT DISTINCT ON (customer_id) customer_id, at, type FROM (
                SELECT h.customer_id, h.at, h.type FROM bf_history h
                WHERE NOT EXISTS (SELECT 1 FROM bf_groups g
                                  WHERE g.profile_id = h.customer_id AND g.is_new)
                UNION ALL
                SELECT g.profile_id, g.last_visit, 'mca_v1.visit' FROM bf_groups g
                WHERE g.last_visit IS NOT NULL AND NOT g.is_new
            ) x ORDER BY customer_id, at DESC, type = 'mca_v1.visit'
        )
        UPDATE "{PROFILE}" p SET last_activity_at = l.at, last_activity_type = l.type
        FROM latest l WHERE p.id = l.customer_id AND p.tenant_id = %s
          AND (p.last_activity_at IS NULL OR p.last_activity_at < l.at)
        """,  # noqa: S608
        [run.tenant_id],
    )
    activity_count_recompute(tenant=run.tenant, now=now)


def _ordered(x: str, y: str) -> str:
    """Two profile ids as the pair ``a, b`` in a fixed order (one suggestion per pair)."""
    return (
        f"CASE WHEN {x}::text < {y}::text THEN {x} ELSE {y} END AS a, "
        f"CASE WHEN {x}::text < {y}::text THEN {y} ELSE {x} END AS b"
    )


def _suggestions(params: dict[str, Any]) -> int:
    """Merge suggestions: people whose keys found two profiles, and likely duplicates
    (``bf_pairs``). A pair already suggested (pending, merged or dismissed) is not again."""
    return _exec(
        f"""
        INSERT INTO "{SUGGESTION}" (tenant_id, profile_id, candidate_id, reason, evidence,
            status, decided_by, created_at, updated_at)
        SELECT %(tenant)s, x.a, x.b, left(x.reason, 255), x.evidence, 'PENDING', '',
            %(now)s, %(now)s
        FROM (
            SELECT DISTINCT ON (a, b) * FROM (
                SELECT {_ordered("g.profile_id", "m.profile_id")},
                       'MCA v1 import: the same ' || m.kinds || ' as another profile' AS reason,
                       jsonb_build_object('import_run', %(run)s::text, 'keys', m.kinds) AS evidence,
                       100.0 AS score
                FROM bf_match m JOIN bf_groups g ON g.grp = m.grp
                WHERE m.profile_id <> g.profile_id
                UNION ALL
                SELECT {_ordered("ga.profile_id", "gb.profile_id")},
                       'MCA v1 import: likely the same person (score '
                         || round(d.score::numeric, 2) || ')',
                       d.evidence || jsonb_build_object('import_run', %(run)s::text),
                       d.score
                FROM bf_pairs d JOIN bf_groups ga ON ga.grp = d.grp_a
                JOIN bf_groups gb ON gb.grp = d.grp_b
                WHERE ga.profile_id <> gb.profile_id
                UNION ALL
                SELECT {_ordered("g.profile_id", "k.profile_b")},
                       'MCA v1 import: likely the same person as an existing profile (score '
                         || round(k.score::numeric, 2) || ')',
                       k.evidence || jsonb_build_object('import_run', %(run)s::text,
                         'existing_profile', k.profile_b::text),
                       k.score
                FROM bf_known_pairs k JOIN bf_groups g ON g.grp = k.grp_a
            ) y ORDER BY a, b, score DESC
        ) x
        WHERE NOT EXISTS (SELECT 1 FROM "{SUGGESTION}" s WHERE s.tenant_id = %(tenant)s
            AND s.profile_id = x.a AND s.candidate_id = x.b)
        ON CONFLICT DO NOTHING
        """,  # noqa: S608
        params,
    )
