"""Duplicate detection among people of an import who share no key (docs/backfill.md).

Records of one person re-typed by another club, or after a re-join, often share no e-mail,
mobile or national number. They are found in SQL in two steps, so the work stays close to
linear in the number of people (never all pairs):

1. **Blocking**: each person gets a few block keys (date of birth with the initial of
   one of the names, so a day's block stays small at a million records; the first three letters
   of the surname and the first letter of the canonical first name; the two names in sorted
   order, which catches swapped first and last names; the sorted digits of the date of birth
   with the surname's initial, which catches transposed date digits). Only people sharing a
   block are compared, and blocks larger than ``MAX_BLOCK`` are skipped (a key that
   common says nothing).
2. **Scoring** (0..1): names by the best of trigram similarity (``pg_trgm``), edit distance
   and Double Metaphone (``fuzzystrmatch``), the better of straight and swapped, with
   nicknames mapped to their full name (``NICKNAMES``) and ``KnownAs`` counted as a first
   name; date of birth equal (1), with two digits transposed (0.8) or unknown
   (0.5); and agreement on gender, town or postal code, e-mail local part, or the last
   seven digits of a phone. A moved house only loses the small address weight.

Pairs at or above ``THRESHOLD`` become merge suggestions (``bf_pairs``, read by the load);
at or above ``AUTO_MERGE_THRESHOLD`` the two are one person before anything is loaded. The
run's people are also compared, the same way, with the tenant's profiles already in the CRM
(``known_pairs_find``: from the API or an earlier import, no shared key): suggestions only.
Measured on a generated labelled set: ``benchmarks/backfill_duplicates.py`` and
tests/backfill/test_duplicates.py.
"""

from __future__ import annotations

from django.db import connection

from customers.models import LIVE_STATUSES, CustomerProfile

from .models import ImportRun

PROFILE = CustomerProfile._meta.db_table
LIVE = ", ".join(f"'{s}'" for s in LIVE_STATUSES)

THRESHOLD = 0.80
# At or above this score two people are merged by the import itself (same name, date of
# birth, gender and town or postcode, give or take a typo): no false pair reached it on the
# labelled sets (docs/backfill.md).
AUTO_MERGE_THRESHOLD = 0.92
MAX_BLOCK = 50
WEIGHTS = {"name": 0.55, "dob": 0.30, "other": 0.15}

# Short forms -> the full first name (English and Afrikaans usage at the clubs).
NICKNAMES: dict[str, str] = {
    "bill": "william", "will": "william", "billy": "william", "bob": "robert",
    "rob": "robert", "bobby": "robert", "jim": "james", "jimmy": "james", "mike": "michael",
    "mick": "michael", "dave": "david", "tom": "thomas", "tommy": "thomas", "dick": "richard",
    "rick": "richard", "rich": "richard", "liz": "elizabeth", "beth": "elizabeth",
    "betty": "elizabeth", "kate": "katherine", "katie": "katherine", "cathy": "catherine",
    "sue": "susan", "suzie": "susan", "jen": "jennifer", "jenny": "jennifer",
    "andy": "andrew", "drew": "andrew", "tony": "anthony", "chris": "christopher",
    "steve": "stephen", "alex": "alexander", "sandy": "alexandra", "sam": "samuel",
    "ben": "benjamin", "dan": "daniel", "danny": "daniel", "ed": "edward", "ted": "edward",
    "eddie": "edward", "fred": "frederick", "greg": "gregory", "harry": "henry",
    "jack": "john", "johnny": "john", "jon": "jonathan", "joe": "joseph", "matt": "matthew",
    "nick": "nicholas", "pat": "patrick", "pete": "peter", "phil": "philip", "ron": "ronald",
    "tim": "timothy", "meg": "margaret", "maggie": "margaret", "peggy": "margaret",
    "nan": "ann", "annie": "ann", "gerry": "gerald", "hennie": "hendrik", "henk": "hendrik",
    "kobus": "jacobus", "koos": "jacobus", "sarel": "sarel", "piet": "pieter",
    "jan": "johannes", "hans": "johannes", "johan": "johannes", "sannie": "susanna",
    "marie": "maria", "ria": "maria", "gerrit": "gerhardus", "fanie": "stephanus",
    "thabo": "thabo", "gugu": "gugulethu", "zan": "zanele", "nom": "nomsa",
}  # fmt: skip


_PEOPLE_COLUMNS = "grp, fn, kn, ln, dob, dob_sig, gender, postal, town, email_local, phone7"


def _people_select(only: str = "") -> str:
    # Person features from bf_groups (planning's temporary table of people).
    first = "lower(COALESCE(g.first_name, ''))"
    return f"""
        SELECT g.grp,
            COALESCE(n.full_name, {first}) AS fn,
            COALESCE(nk.full_name, lower(COALESCE(g.rep->>'known_as', ''))) AS kn,
            lower(COALESCE(g.last_name, '')) AS ln,
            g.dob,
            (SELECT string_agg(c, '' ORDER BY c)
             FROM regexp_split_to_table(to_char(g.dob, 'DDMMYYYY'), '') AS c) AS dob_sig,
            COALESCE(g.rep->>'gender', '') AS gender,
            lower(COALESCE(g.rep->>'postal', '')) AS postal,
            lower(COALESCE(g.rep->>'town', '')) AS town,
            split_part(COALESCE(g.email, ''), '@', 1) AS email_local,
            right(COALESCE(g.phone, ''), 7) AS phone7
        FROM bf_groups g
        LEFT JOIN unnest(%s::text[], %s::text[]) AS n(short, full_name) ON n.short = {first}
        LEFT JOIN unnest(%s::text[], %s::text[]) AS nk(short, full_name)
             ON nk.short = lower(COALESCE(g.rep->>'known_as', ''))
        {only}
    """  # noqa: S608


def _people_sql() -> str:
    return f"""
        CREATE TEMP TABLE bf_people ON COMMIT DROP AS {_people_select()};
        CREATE UNIQUE INDEX ON bf_people (grp);
        -- Double Metaphone once per person, not once per compared pair.
        ALTER TABLE bf_people ADD COLUMN fn_dm text, ADD COLUMN kn_dm text,
            ADD COLUMN ln_dm text;
        UPDATE bf_people SET fn_dm = dmetaphone(fn), kn_dm = dmetaphone(kn),
            ln_dm = dmetaphone(ln);
    """  # noqa: S608


# After the automatic merges: the people of the merged groups (``bf_roots``) again, the
# others kept as they are (a person's features and blocks depend on their own records only).
_MERGED = "g.grp IN (SELECT root FROM bf_roots)"


def _people_merged_sql() -> str:
    return f"""
        DELETE FROM bf_people WHERE grp IN (SELECT grp FROM bf_roots);
        INSERT INTO bf_people ({_PEOPLE_COLUMNS}) {_people_select("WHERE " + _MERGED)};
        UPDATE bf_people g SET fn_dm = dmetaphone(fn), kn_dm = dmetaphone(kn),
            ln_dm = dmetaphone(ln)
        WHERE {_MERGED};
        DELETE FROM bf_blocks WHERE grp IN (SELECT grp FROM bf_roots);
        INSERT INTO bf_blocks (grp, key) {_BLOCKS_SELECT.format(only="AND " + _MERGED)};
        ANALYZE bf_people;
        ANALYZE bf_blocks;
    """  # noqa: S608


_BLOCKS_SELECT = """
    SELECT grp, key FROM bf_people g, LATERAL (VALUES
        ('d:' || dob || ':' || left(fn, 1)),
        ('d:' || dob || ':' || left(ln, 1)),
        ('d:' || dob || ':' || left(kn, 1)),
        ('n:' || left(ln, 3) || ':' || left(fn, 1)),
        ('s:' || least(fn, ln) || '|' || greatest(fn, ln)),
        ('t:' || dob_sig || ':' || left(ln, 1)),
        ('k:' || left(ln, 3) || ':' || left(kn, 1))
    ) AS b(key) WHERE key IS NOT NULL AND key NOT IN ('n::', 'k::', 's:|')
      AND key NOT LIKE 'd:%%:' {only}
"""
_BLOCKS_SQL = f"""
    CREATE TEMP TABLE bf_blocks ON COMMIT DROP AS {_BLOCKS_SELECT.format(only="")};
    CREATE INDEX ON bf_blocks (key);
    ANALYZE bf_blocks;
"""


def _sim(x: str, y: str) -> str:
    """Similarity of two names, 0..1: the best of trigrams, edit distance and sound (a
    typo in a short name costs trigrams much more than one edit). ``x_dm`` is the
    precomputed Double Metaphone of ``x``."""
    return (
        f"(CASE WHEN {x} = '' OR {y} = '' THEN 0.0 ELSE greatest(similarity({x}, {y}), "
        f"1.0 - levenshtein({x}, {y})::float / greatest(length({x}), length({y})), "
        f"CASE WHEN {x}_dm = {y}_dm THEN 0.85 ELSE 0.0 END) END)"
    )


# Two known dates of birth that are neither equal nor the same digits score 0 on the date,
# and then even equal names and everything else agreeing stay below any threshold above
# name + other weights (0.70): such pairs are not scored at all (most pairs of a block).
_DOB_CAN_REACH = "(px.dob IS NULL OR py.dob IS NULL OR px.dob_sig = py.dob_sig)"


def _score_sql() -> str:
    name_straight = f"({_sim('a.fn', 'b.fn')} + {_sim('a.ln', 'b.ln')}) / 2"
    first_known = (
        f"greatest({_sim('a.kn', 'b.fn')}, {_sim('a.fn', 'b.kn')}, {_sim('a.kn', 'b.kn')})"
    )
    name_known = f"({first_known} + {_sim('a.ln', 'b.ln')}) / 2"
    name_swapped = f"({_sim('a.fn', 'b.ln')} + {_sim('a.ln', 'b.fn')}) / 2"
    dob = (
        "CASE WHEN a.dob IS NULL OR b.dob IS NULL THEN 0.5 WHEN a.dob = b.dob THEN 1.0 "
        "WHEN a.dob_sig = b.dob_sig THEN 0.8 ELSE 0.0 END"
    )
    other = (
        "least(1.0, 0.25 * (a.gender <> '' AND a.gender = b.gender)::int"
        " + 0.35 * ((a.postal <> '' AND a.postal = b.postal)"
        "           OR (a.town <> '' AND a.town = b.town))::int"
        " + 0.4 * ((a.email_local <> '' AND a.email_local = b.email_local)"
        "          OR (a.phone7 <> '' AND a.phone7 = b.phone7))::int)"
    )
    return f"""
        SELECT c.*, s.name, s.dob, s.other,
            {WEIGHTS["name"]} * s.name + {WEIGHTS["dob"]} * s.dob
            + {WEIGHTS["other"]} * s.other AS score
        FROM ({{candidates}}) c
        JOIN bf_people a ON a.grp = c.grp_a JOIN {{b_join}},
        LATERAL (SELECT
            greatest({name_straight}, {name_known}, {name_swapped}) AS name,
            {dob} AS dob, {other} AS other) s
    """  # noqa: S608


def _pairs_table(table: str, candidates: str, b_join: str) -> str:
    """``table``: the candidate pairs (a run's person ``grp_a`` and ``b``) scored, those at
    or above the threshold, with their evidence."""
    scored = _score_sql().format(candidates=candidates, b_join=b_join)
    return f"""
        CREATE TEMP TABLE {table} ON COMMIT DROP AS
        SELECT scored.*, jsonb_build_object(
            'name', round(name::numeric, 2), 'date_of_birth', round(dob::numeric, 2),
            'other', round(other::numeric, 2), 'score', round(score::numeric, 3)) AS evidence
        FROM ({scored}) scored
        WHERE score >= %s
    """  # noqa: S608


def _within_run_sql(prune: bool) -> str:
    candidates = f"""
        SELECT DISTINCT x.grp AS grp_a, y.grp AS grp_b
        FROM (SELECT key FROM bf_blocks GROUP BY key
              HAVING count(*) BETWEEN 2 AND {MAX_BLOCK}) k
        JOIN bf_blocks x ON x.key = k.key JOIN bf_blocks y ON y.key = k.key
        JOIN bf_people px ON px.grp = x.grp JOIN bf_people py ON py.grp = y.grp
        WHERE x.grp < y.grp AND {_DOB_CAN_REACH if prune else "true"}
    """  # noqa: S608
    return _pairs_table("bf_pairs", candidates, "bf_people b ON b.grp = c.grp_b")


def pairs_find(*, run: ImportRun, threshold: float = THRESHOLD, merged: bool = False) -> int:
    """Build ``bf_pairs`` (grp_a < grp_b, score, evidence) from planning's ``bf_groups``, in
    the caller's transaction; returns the number of pairs. ``merged``: again after the
    automatic merges (``bf_people`` and ``bf_blocks`` kept, the merged groups' rows redone)."""
    shorts, fulls = list(NICKNAMES), list(NICKNAMES.values())
    with connection.cursor() as cursor:
        if merged:
            cursor.execute(_people_merged_sql(), [shorts, fulls, shorts, fulls])
        else:
            cursor.execute(_people_sql(), [shorts, fulls, shorts, fulls])
            cursor.execute(_BLOCKS_SQL.replace("%%", "%"))
        prune = threshold > WEIGHTS["name"] + WEIGHTS["other"]
        cursor.execute(_within_run_sql(prune), [threshold])
        return cursor.rowcount


def _known_sql() -> str:
    """``bf_known``: the tenant's live profiles with a name and a date of birth, as people
    (the features a profile has: no gender, town or postcode), and their block keys. Only
    the date-of-birth blocks: without both dates of birth no pair reaches the threshold."""
    first = "lower(p.first_name)"
    return f"""
        CREATE TEMP TABLE bf_known ON COMMIT DROP AS
        SELECT p.id AS profile_id, COALESCE(n.full_name, {first}) AS fn, ''::text AS kn,
            lower(p.last_name) AS ln, p.date_of_birth AS dob,
            (SELECT string_agg(c, '' ORDER BY c)
             FROM regexp_split_to_table(to_char(p.date_of_birth, 'DDMMYYYY'), '') AS c)
              AS dob_sig,
            ''::text AS gender, ''::text AS postal, ''::text AS town,
            split_part(COALESCE(p.email, ''), '@', 1) AS email_local,
            right(COALESCE(p.phone, ''), 7) AS phone7
        FROM "{PROFILE}" p
        LEFT JOIN unnest(%s::text[], %s::text[]) AS n(short, full_name) ON n.short = {first}
        WHERE p.tenant_id = %s AND p.status IN ({LIVE}) AND p.deleted_at IS NULL
          AND p.date_of_birth IS NOT NULL AND p.first_name <> '' AND p.last_name <> '';
        ALTER TABLE bf_known ADD COLUMN fn_dm text, ADD COLUMN kn_dm text, ADD COLUMN ln_dm text;
        UPDATE bf_known SET fn_dm = dmetaphone(fn), kn_dm = '', ln_dm = dmetaphone(ln);
        CREATE UNIQUE INDEX ON bf_known (profile_id);
        CREATE TEMP TABLE bf_known_blocks ON COMMIT DROP AS
        SELECT profile_id, key FROM bf_known, LATERAL (VALUES
            ('d:' || dob || ':' || left(fn, 1)),
            ('d:' || dob || ':' || left(ln, 1)),
            ('t:' || dob_sig || ':' || left(ln, 1))
        ) AS b(key);
        CREATE INDEX ON bf_known_blocks (key);
        ANALYZE bf_known; ANALYZE bf_known_blocks;
    """  # noqa: S608


def _against_known_sql() -> str:
    # A block too common on either side says nothing; a person's own profile (found by a
    # key) is not a duplicate of itself.
    candidates = f"""
        SELECT DISTINCT x.grp AS grp_a, y.profile_id AS profile_b
        FROM (SELECT key FROM bf_blocks GROUP BY key HAVING count(*) <= {MAX_BLOCK}) kx
        JOIN (SELECT key FROM bf_known_blocks GROUP BY key
              HAVING count(*) <= {MAX_BLOCK}) ky ON ky.key = kx.key
        JOIN bf_blocks x ON x.key = kx.key JOIN bf_known_blocks y ON y.key = kx.key
        JOIN bf_groups g ON g.grp = x.grp
        WHERE g.profile_id <> y.profile_id
    """  # noqa: S608
    return _pairs_table("bf_known_pairs", candidates, "bf_known b ON b.profile_id = c.profile_b")


def known_pairs_find(*, run: ImportRun, threshold: float = THRESHOLD) -> int:
    """Build ``bf_known_pairs`` (grp_a, profile_b, score, evidence): the run's people who
    look like a profile already in the CRM (from the API or an earlier import) without a
    shared key. After ``pairs_find`` (it reads ``bf_people`` and ``bf_blocks``). They only
    ever become suggestions: a profile someone may have edited is never merged blindly."""
    shorts, fulls = list(NICKNAMES), list(NICKNAMES.values())
    with connection.cursor() as cursor:
        cursor.execute(_known_sql(), [shorts, fulls, run.tenant_id])
        cursor.execute(_against_known_sql(), [threshold])
        return cursor.rowcount
