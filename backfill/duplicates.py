"""Duplicate detection among people of an import who share no key (docs/backfill.md).

Records of one person re-typed by another club, or after a re-join, often share no e-mail,
mobile or national number. They are found in SQL in two steps, so the work stays close to
linear in the number of people (never all pairs):

1. **Blocking**: each person gets a few small block keys, and only people sharing one are
   compared. A pair can reach the threshold only with the same date of birth, give or take
   two transposed digits, or with one date unknown and the same e-mail local part or phone
   digits (the weights leave it below otherwise: ``_BLOCKS_EXACT_ABOVE``), so every key
   carries the date: the year with the digits of day and month in any order (``y:``), and
   day and month with the digits of the year in any order (``c:``), each with the Double
   Metaphone of one name and the first letter of the other (first name and surname's
   initial, surname and first name's initial, ``KnownAs`` and surname's initial: swapped
   names share a key, the families mix the names), and the date with the two initials in
   sorted order (``i:``); a person whose date is unknown is compared with the people of the
   same e-mail local part or last seven phone digits. A block holds a few days' people of
   one sound and one initial; blocks larger than ``MAX_BLOCK`` are skipped. The blocks'
   sizes still grow with the file (fixed keys), so the pairs grow faster than the people,
   but 0.05 a person at 250,000 and 0.18 at 1M (docs/profiles/backfill-duplicates.md).
2. **Scoring** (0..1): names by the best of trigram similarity (``pg_trgm``), edit distance
   and Double Metaphone (``fuzzystrmatch``), the better of straight and swapped, with
   nicknames mapped to their full name (``NICKNAMES``) and ``KnownAs`` counted as a first
   name; date of birth equal (1), with two digits transposed within the day and month
   or within the year (0.8) or unknown (0.5); and agreement on gender, town or postal
   code, e-mail local part, or the last seven digits of a phone. A moved house only loses
   the small address weight.

Pairs at or above ``THRESHOLD`` become merge suggestions (``bf_pairs``, read by the load);
at or above ``AUTO_MERGE_THRESHOLD`` the two are one person before anything is loaded, and
only the pairs of the people merged are scored again. The
run's people are also compared, the same way, with the tenant's profiles already in the CRM
that none of them is (``known_pairs_find``: from the API or an earlier import, no shared key
with the run): suggestions only.
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
# The best score of a pair whose dates of birth are known and not the same digits (0 on the
# date), or with one unknown (0.5) and no e-mail local part or phone digits in common (other
# at most 0.25 + 0.35): the blocks find every pair above it that shares a name's sound or
# initials. ``pairs_find`` refuses a threshold at or below it.
_BLOCKS_EXACT_ABOVE = WEIGHTS["name"] + 0.5 * WEIGHTS["dob"] + 0.6 * WEIGHTS["other"]

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


_PEOPLE_COLUMNS = "grp, fn, kn, ln, dob, dob_y, dob_d, gender, postal, town, email_local, phone7"


def _digits(text: str, width: int) -> str:
    """The multiset of the digits of ``text`` (``width`` digits) as a number: the sum of
    10 ** digit (no digit occurs ten times), so the same digits in any order give the same
    number, without sorting anything."""
    terms = " + ".join(f"(10::bigint ^ substr({text}, {i}, 1)::int)" for i in range(1, width + 1))
    return f"({terms})::bigint"


def _dob_keys(dob: str) -> str:
    """``dob_y``: the year and the digits of day and month in any order; ``dob_d``: day and
    month and the digits of the year in any order. Two digits transposed within the day and
    month (or across them: 21/01 and 20/11) keep the first, within the year the second."""
    day_month, year = f"to_char({dob}, 'DDMM')", f"to_char({dob}, 'YYYY')"
    return (
        f"{year} || ':' || {_digits(day_month, 4)} AS dob_y, "
        f"{day_month} || ':' || {_digits(year, 4)} AS dob_d"
    )


def _people_select(only: str = "") -> str:
    # Person features from bf_groups (planning's temporary table of people).
    first = "lower(COALESCE(g.first_name, ''))"
    return f"""
        SELECT g.grp,
            COALESCE(n.full_name, {first}) AS fn,
            COALESCE(nk.full_name, lower(COALESCE(g.rep_known_as, ''))) AS kn,
            lower(COALESCE(g.last_name, '')) AS ln,
            g.dob, {_dob_keys("g.dob")},
            COALESCE(g.rep_gender, '') AS gender,
            lower(COALESCE(g.rep_postal, '')) AS postal,
            lower(COALESCE(g.rep_town, '')) AS town,
            split_part(COALESCE(g.email, ''), '@', 1) AS email_local,
            right(COALESCE(g.phone, ''), 7) AS phone7
        FROM bf_groups g
        LEFT JOIN unnest(%s::text[], %s::text[]) AS n(short, full_name) ON n.short = {first}
        LEFT JOIN unnest(%s::text[], %s::text[]) AS nk(short, full_name)
             ON nk.short = lower(COALESCE(g.rep_known_as, ''))
        {only}
    """  # noqa: S608


def _with_sounds(select: str) -> str:
    # Double Metaphone once per person (as the table is written), not once per compared pair.
    return f"""
        SELECT p.*, dmetaphone(p.fn) AS fn_dm, dmetaphone(p.kn) AS kn_dm,
            dmetaphone(p.ln) AS ln_dm
        FROM ({select}) p
    """  # noqa: S608


def _people_sql() -> str:
    return f"""
        CREATE TEMP TABLE bf_people ON COMMIT DROP AS {_with_sounds(_people_select())};
        CREATE UNIQUE INDEX ON bf_people (grp);
    """


# After the automatic merges: the people of the merged groups (``bf_roots``) again, the
# others kept as they are (a person's features and blocks depend on their own records only).
_MERGED = "g.grp IN (SELECT root FROM bf_roots)"


def _people_merged_sql() -> str:
    return f"""
        DELETE FROM bf_people WHERE grp IN (SELECT grp FROM bf_roots);
        INSERT INTO bf_people ({_PEOPLE_COLUMNS}, fn_dm, kn_dm, ln_dm)
            {_with_sounds(_people_select("WHERE " + _MERGED))};
        DELETE FROM bf_blocks WHERE grp IN (SELECT grp FROM bf_roots);
        INSERT INTO bf_blocks (grp, key) {_BLOCKS_SELECT.format(only="AND " + _MERGED)};
        ANALYZE bf_people;
        ANALYZE bf_blocks;
    """  # noqa: S608


_BLOCKS_SELECT = """
    SELECT grp, key FROM bf_people g, LATERAL (VALUES
        ('y:' || dob_y || ':' || NULLIF(fn_dm, '') || ':' || left(ln, 1)),
        ('y:' || dob_y || ':' || NULLIF(ln_dm, '') || ':' || left(fn, 1)),
        ('y:' || dob_y || ':' || NULLIF(kn_dm, '') || ':' || left(ln, 1)),
        ('c:' || dob_d || ':' || NULLIF(fn_dm, '') || ':' || left(ln, 1)),
        ('c:' || dob_d || ':' || NULLIF(ln_dm, '') || ':' || left(fn, 1)),
        ('c:' || dob_d || ':' || NULLIF(kn_dm, '') || ':' || left(ln, 1)),
        ('i:' || dob || ':' || NULLIF(least(left(fn, 1), left(ln, 1))
                                      || greatest(left(fn, 1), left(ln, 1)), ''))
    ) AS b(key) WHERE key IS NOT NULL {only}
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


# Two known dates of birth that are neither equal nor transposed score 0 on the date, and
# then even equal names and everything else agreeing stay below the threshold: such pairs
# (from the e-mail and phone blocks) are not scored at all.
_TRANSPOSED = "({x}.dob_y = {y}.dob_y OR {x}.dob_d = {y}.dob_d)"
_DOB_CAN_REACH = f"(px.dob IS NULL OR py.dob IS NULL OR {_TRANSPOSED.format(x='px', y='py')})"


def _score_sql() -> str:
    name_straight = f"({_sim('a.fn', 'b.fn')} + {_sim('a.ln', 'b.ln')}) / 2"
    first_known = (
        f"greatest({_sim('a.kn', 'b.fn')}, {_sim('a.fn', 'b.kn')}, {_sim('a.kn', 'b.kn')})"
    )
    name_known = f"({first_known} + {_sim('a.ln', 'b.ln')}) / 2"
    name_swapped = f"({_sim('a.fn', 'b.ln')} + {_sim('a.ln', 'b.fn')}) / 2"
    dob = (
        "CASE WHEN a.dob IS NULL OR b.dob IS NULL THEN 0.5 WHEN a.dob = b.dob THEN 1.0 "
        f"WHEN {_TRANSPOSED.format(x='a', y='b')} THEN 0.8 ELSE 0.0 END"
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


def _pairs_select(candidates: str, b_join: str) -> str:
    """The candidate pairs (a run's person ``grp_a`` and ``b``) scored, those at or above
    the threshold, with their evidence."""
    scored = _score_sql().format(candidates=candidates, b_join=b_join)
    return f"""
        SELECT scored.*, jsonb_build_object(
            'name', round(name::numeric, 2), 'date_of_birth', round(dob::numeric, 2),
            'other', round(other::numeric, 2), 'score', round(score::numeric, 3)) AS evidence
        FROM ({scored}) scored
        WHERE score >= %s
    """  # noqa: S608


def _pairs_table(table: str, candidates: str, b_join: str) -> str:
    return f"CREATE TEMP TABLE {table} ON COMMIT DROP AS {_pairs_select(candidates, b_join)}"


def _contact_pairs(column: str, pair: str) -> str:
    """Pairs with a date of birth unknown on one side (``u``) and the same ``column`` (the
    e-mail local part or the phone digits): the only pairs without the date in a block that
    can reach the threshold. A value held by more than ``MAX_BLOCK`` people says nothing."""
    return f"""
        SELECT least(u.grp, o.grp) AS grp_a, greatest(u.grp, o.grp) AS grp_b
        FROM bf_people u JOIN bf_people o ON o.{column} = u.{column} AND o.grp <> u.grp
        WHERE u.dob IS NULL AND u.{column} <> '' AND {pair.replace("x.", "u.").replace("y.", "o.")}
          AND o.{column} IN (
            SELECT {column} FROM bf_people WHERE {column} IN (
                SELECT {column} FROM bf_people WHERE dob IS NULL AND {column} <> '')
            GROUP BY {column} HAVING count(*) <= {MAX_BLOCK})
    """  # noqa: S608


def _within_run_candidates(only: str = "") -> str:
    """Pairs of people sharing a block, or with one date of birth unknown and the same
    e-mail local part or phone digits (each pair once, the smaller group first). ``only``: a
    query of group ids; then only the pairs of those people."""
    blocks, pair = "bf_blocks", "true"
    if only:
        blocks = f"bf_blocks WHERE key IN (SELECT key FROM bf_blocks WHERE grp IN ({only}))"  # noqa: S608
        pair = f"(x.grp IN ({only}) OR y.grp IN ({only}))"
    return f"""
        SELECT DISTINCT c.grp_a, c.grp_b FROM (
            SELECT x.grp AS grp_a, y.grp AS grp_b
            FROM (SELECT key FROM {blocks}
                  GROUP BY key HAVING count(*) BETWEEN 2 AND {MAX_BLOCK}) k
            JOIN bf_blocks x ON x.key = k.key JOIN bf_blocks y ON y.key = k.key
            WHERE x.grp < y.grp AND {pair}
            UNION ALL {_contact_pairs("email_local", pair)}
            UNION ALL {_contact_pairs("phone7", pair)}
        ) c
        JOIN bf_people px ON px.grp = c.grp_a JOIN bf_people py ON py.grp = c.grp_b
        WHERE {_DOB_CAN_REACH}
    """  # noqa: S608


# After the automatic merges, the pairs of the people merged (``bf_roots``: the groups that
# took others, and those they took) are dropped and the merged people's pairs scored again;
# every other pair keeps its score (a pair's score depends on its two people only).
_MERGED_PAIRS_SQL = f"""
    DELETE FROM bf_pairs WHERE grp_a IN (SELECT grp FROM bf_roots)
        OR grp_b IN (SELECT grp FROM bf_roots);
    INSERT INTO bf_pairs {
    _pairs_select(
        _within_run_candidates("SELECT root FROM bf_roots"),
        "bf_people b ON b.grp = c.grp_b",
    )
};
"""  # noqa: S608


def pairs_find(*, run: ImportRun, threshold: float = THRESHOLD, merged: bool = False) -> int:
    """Build ``bf_pairs`` (grp_a < grp_b, score, evidence) from planning's ``bf_groups``, in
    the caller's transaction; returns the number of pairs. ``merged``: after the automatic
    merges (``bf_people``, ``bf_blocks`` and ``bf_pairs`` kept, the merged groups' rows and
    pairs redone)."""
    if threshold <= _BLOCKS_EXACT_ABOVE:
        raise ValueError(f"the blocks find the pairs above {_BLOCKS_EXACT_ABOVE:.2f} only")
    shorts, fulls = list(NICKNAMES), list(NICKNAMES.values())
    with connection.cursor() as cursor:
        if merged:
            cursor.execute(_people_merged_sql(), [shorts, fulls, shorts, fulls])
            cursor.execute(_MERGED_PAIRS_SQL, [threshold])
            cursor.execute("SELECT count(*) FROM bf_pairs")
            return cursor.fetchone()[0]
        cursor.execute(_people_sql(), [shorts, fulls, shorts, fulls])
        cursor.execute(_BLOCKS_SQL)
        cursor.execute(
            _pairs_table("bf_pairs", _within_run_candidates(), "bf_people b ON b.grp = c.grp_b"),
            [threshold],
        )
        return cursor.rowcount


def _known_sql() -> str:
    """``bf_known``: the tenant's live profiles with a name and a date of birth, as people
    (the features a profile has: no gender, town or postcode), and their block keys. Only
    the date-of-birth blocks (``y:``, ``c:``, ``i:``): without both dates of birth no pair
    reaches the threshold.

    A profile a person of the run already is (found by a key: an earlier import's, or one
    the API created with the same e-mail) is left out: that person is in ``bf_people``, and
    the pairs with them were scored within the run, from the export's fuller features (and
    with more blocks). Importing an export again would otherwise compare every person with
    their own and every other profile of the earlier import a second time (1M against 1M);
    now only with the profiles that came from elsewhere."""
    first = "lower(p.first_name)"
    return f"""
        CREATE TEMP TABLE bf_known ON COMMIT DROP AS
        SELECT k.*, dmetaphone(k.fn) AS fn_dm, ''::text AS kn_dm, dmetaphone(k.ln) AS ln_dm
        FROM (SELECT p.id AS profile_id, COALESCE(n.full_name, {first}) AS fn, ''::text AS kn,
            lower(p.last_name) AS ln, p.date_of_birth AS dob, {_dob_keys("p.date_of_birth")},
            ''::text AS gender, ''::text AS postal, ''::text AS town,
            split_part(COALESCE(p.email, ''), '@', 1) AS email_local,
            right(COALESCE(p.phone, ''), 7) AS phone7
        FROM "{PROFILE}" p
        LEFT JOIN unnest(%s::text[], %s::text[]) AS n(short, full_name) ON n.short = {first}
        WHERE p.tenant_id = %s AND p.status IN ({LIVE}) AND p.deleted_at IS NULL
          AND p.date_of_birth IS NOT NULL AND p.first_name <> '' AND p.last_name <> ''
          AND NOT EXISTS (SELECT 1 FROM bf_groups g WHERE g.profile_id = p.id)) k;
        CREATE UNIQUE INDEX ON bf_known (profile_id);
        CREATE TEMP TABLE bf_known_blocks ON COMMIT DROP AS
        SELECT profile_id, key FROM bf_known, LATERAL (VALUES
            ('y:' || dob_y || ':' || NULLIF(fn_dm, '') || ':' || left(ln, 1)),
            ('y:' || dob_y || ':' || NULLIF(ln_dm, '') || ':' || left(fn, 1)),
            ('c:' || dob_d || ':' || NULLIF(fn_dm, '') || ':' || left(ln, 1)),
            ('c:' || dob_d || ':' || NULLIF(ln_dm, '') || ':' || left(fn, 1)),
            ('i:' || dob || ':' || least(left(fn, 1), left(ln, 1))
                || greatest(left(fn, 1), left(ln, 1)))
        ) AS b(key) WHERE key IS NOT NULL;
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
