"""Realistic ZA and UK club members, generated fast with PostgreSQL COPY, and 90 days of
their activity (rounds, bookings, green-fee payments, competition entries, handicap changes)
with the metrics that follow, plus a few duplicates for merge review.

Identifiers derive from a running number per tenant (the profiles already there), so a
second run adds new people without colliding with the first. The activity is seeded per
person and keyed by a deterministic event id, so a second run adds nothing.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from crm.models import Club, Region, Tenant
from crm.services import club_create

from .events import event_type
from .handlers import NOT_ENGAGEMENT_TYPES, activity_count_recompute, minor_units
from .identity import IdentityHints
from .ingest import activity_insert_sql
from .models import (
    Activity,
    AliasKind,
    CustomerProfile,
    IdentityAlias,
    LifecycleStage,
    MergeSuggestion,
    ProfileStatus,
)
from .services import identity_resolve

FIRST_NAMES: dict[str, list[str]] = {
    Region.ZA: [
        "Thabo",
        "Sipho",
        "Lerato",
        "Naledi",
        "Johan",
        "Pieter",
        "Anele",
        "Zanele",
        "Themba",
        "Bongani",
        "Ayanda",
        "Lindiwe",
        "Kagiso",
        "Mpho",
        "Tshepo",
        "Karabo",
        "Riaan",
        "Ruan",
        "Francois",
        "Chantelle",
        "Nomvula",
        "Sibusiso",
        "Mandla",
        "Priya",
        "Rajesh",
        "Fatima",
        "Ernie",
        "Retief",
        "Louis",
        "Charl",
        "Ashleigh",
        "Dylan",
        "Liezel",
        "Annelie",
    ],
    Region.UK: [
        "Oliver",
        "George",
        "Harry",
        "Jack",
        "Charlie",
        "Thomas",
        "James",
        "William",
        "Amelia",
        "Olivia",
        "Isla",
        "Emily",
        "Ava",
        "Jessica",
        "Sophie",
        "Grace",
        "Rory",
        "Ewan",
        "Callum",
        "Fiona",
        "Morag",
        "Eilidh",
        "Rhys",
        "Gareth",
        "Sian",
        "Niamh",
        "Ciaran",
        "Tommy",
        "Justin",
        "Danny",
        "Laura",
        "Charlotte",
        "Hannah",
        "Alistair",
    ],
}
LAST_NAMES: dict[str, list[str]] = {
    Region.ZA: [
        "Nkosi",
        "Dlamini",
        "Mokoena",
        "Ndlovu",
        "Khumalo",
        "van der Merwe",
        "Botha",
        "Pretorius",
        "Naidoo",
        "Pillay",
        "Mahlangu",
        "Molefe",
        "Sithole",
        "Zulu",
        "Venter",
        "du Plessis",
        "Coetzee",
        "Els",
        "Goosen",
        "Schwartzel",
        "Oosthuizen",
        "Immelman",
        "Mthembu",
        "Baloyi",
    ],
    Region.UK: [
        "Smith",
        "Jones",
        "Taylor",
        "Brown",
        "Williams",
        "Wilson",
        "Johnson",
        "Davies",
        "Robinson",
        "Wright",
        "Thompson",
        "Evans",
        "Walker",
        "White",
        "Roberts",
        "Green",
        "Hall",
        "Wood",
        "McIlroy",
        "Fleetwood",
        "Rose",
        "Fitzpatrick",
        "Lowry",
        "Campbell",
        "Stewart",
        "Murray",
    ],
}
EMAIL_DOMAINS: dict[str, list[str]] = {
    Region.ZA: ["gmail.com", "outlook.com", "webmail.co.za", "mweb.co.za", "icloud.com"],
    Region.UK: ["gmail.com", "outlook.com", "btinternet.com", "yahoo.co.uk", "icloud.com"],
}
# Mobile prefixes that libphonenumber accepts as valid; 7 running digits follow.
MOBILE_PREFIXES: dict[str, list[str]] = {
    Region.ZA: ["+2782", "+2783", "+2784", "+2772", "+2761", "+2779"],
    Region.UK: ["+44740", "+44741", "+44770", "+44775", "+44780", "+44790"],
}
CLUB_NAMES: dict[str, list[str]] = {
    Region.ZA: ["Royal Johannesburg", "Durban Country Club", "Stellenbosch Golf Club"],
    Region.UK: ["Royal Birkdale", "Sunningdale", "Carnoustie Links"],
}
MEMBERSHIP_TYPES = ["Full", "Weekday", "Junior", "Senior", "Country", "Social", "Family"]
PROFILE_COLUMNS: list[str] = [f.column for f in CustomerProfile._meta.concrete_fields if f.column]
ALIAS_COLUMNS = ["tenant_id", "kind", "value", "profile_id", "source", "created_at", "updated_at"]


@dataclass(frozen=True)
class DemoDataResult:
    profiles: int
    aliases: int
    first_number: int


def _clubs(tenant: Tenant) -> list[Club]:
    clubs = list(Club.objects.for_tenant(tenant))
    if not clubs:
        clubs = [club_create(tenant=tenant, name=name) for name in CLUB_NAMES[tenant.region]]
    return clubs


def _person(n: int, tenant: Tenant, clubs: list[Club], rng: random.Random, now: datetime):
    region = tenant.region
    first, last = rng.choice(FIRST_NAMES[region]), rng.choice(LAST_NAMES[region])
    local = f"{first}.{last}".lower().replace(" ", "")
    email = f"{local}.{n}@{rng.choice(EMAIL_DOMAINS[region])}"
    prefixes = MOBILE_PREFIXES[region]
    phone = f"{prefixes[(n // 10_000_000) % len(prefixes)]}{n % 10_000_000:07d}"
    member = rng.random() < 0.7
    joined = date(2005, 1, 1) + timedelta(days=rng.randrange(7300)) if member else None
    lapsed = member and rng.random() < 0.12
    last_active = now - timedelta(days=rng.expovariate(1 / 40)) if rng.random() < 0.9 else None
    consent_at = now - timedelta(days=rng.randrange(1, 1500))
    row = {
        "id": uuid.UUID(int=rng.getrandbits(128), version=4),
        "tenant_id": tenant.pk,
        "created_at": now - timedelta(days=rng.randrange(1, 3000)),
        "updated_at": now,
        "auth_user_id": f"au{n:09d}" if rng.random() < 0.6 else None,
        "email": email,
        "phone": phone,
        "scl_member_id": f"SCL{n:08d}" if member else None,
        "teetime_player_id": f"TT{n:08d}" if rng.random() < 0.8 else None,
        "messaging_contact_id": None,
        "external_ids": Jsonb({}),
        "first_name": first,
        "last_name": last,
        "date_of_birth": date(1945, 1, 1) + timedelta(days=rng.randrange(22000)),
        "home_club_id": rng.choice(clubs).pk,
        "status": ProfileStatus.ACTIVE,
        "lifecycle_stage": (
            LifecycleStage.LAPSED
            if lapsed
            else LifecycleStage.MEMBER
            if member
            else rng.choice(
                [LifecycleStage.VISITOR, LifecycleStage.SUBSCRIBER, LifecycleStage.LEAD]
            )
        ),
        "tags": rng.sample(["competitions", "juniors", "ladies", "seniors", "twilight"], 1)
        if rng.random() < 0.3
        else [],
        "last_activity_at": last_active,
        "last_activity_type": "teetime.round.completed" if last_active else "",
        "activity_count_30d": rng.randrange(0, 12) if last_active else 0,
        "lifetime_value_minor": rng.randrange(0, 5_000_000),
        "currency": tenant.currency,
        "engagement_score": None,
        "engagement_scored_at": None,
        "churn_risk": None,
        "churn_scored_at": None,
        "membership_type": rng.choice(MEMBERSHIP_TYPES) if member else "",
        "membership_status": ("LAPSED" if lapsed else "ACTIVE") if member else "",
        "membership_joined_on": joined,
        "membership_renewal_on": date(now.year, 1, 1) + timedelta(days=rng.randrange(365))
        if member
        else None,
        "membership_updated_at": now - timedelta(days=rng.randrange(1, 400)) if member else None,
        "handicap_index": Decimal(rng.randrange(-30, 360)) / 10 if rng.random() < 0.85 else None,
        "handicap_updated_at": now - timedelta(days=rng.randrange(60)),
        "merged_into_id": None,
        "deleted_at": None,
    }
    for channel, rate in (("email", 0.8), ("sms", 0.55), ("push", 0.3), ("whatsapp", 0.25)):
        decided = rng.random() < 0.9
        row[f"{channel}_opt_in"] = decided and rng.random() < rate
        row[f"{channel}_consent_at"] = consent_at if decided else None
        row[f"{channel}_consent_source"] = "mca_v1" if decided else ""
    aliases: list[tuple[AliasKind, Any]] = [(AliasKind.EMAIL, email), (AliasKind.PHONE, phone)]
    for kind, name in (
        (AliasKind.AUTH_USER, "auth_user_id"),
        (AliasKind.SCL_MEMBER, "scl_member_id"),
        (AliasKind.TEETIME_PLAYER, "teetime_player_id"),
    ):
        if row[name]:
            aliases.append((kind, row[name]))
    return row, aliases


def demo_data_generate(
    *, tenant: Tenant, customers: int, seed: int = 0, batch_size: int = 50_000, progress=None
) -> DemoDataResult:
    """Add ``customers`` generated members to ``tenant`` (COPY, one transaction a batch)."""
    clubs = _clubs(tenant)
    first = CustomerProfile.objects.for_tenant(tenant).count()
    rng = random.Random(f"{tenant.slug}:{seed}:{first}")
    now = timezone.now()
    profiles = aliases = 0
    table = CustomerProfile._meta.db_table
    alias_table = IdentityAlias._meta.db_table
    for start in range(first, first + customers, batch_size):
        stop = min(start + batch_size, first + customers)
        with transaction.atomic():
            connection.ensure_connection()
            with connection.connection.cursor() as cursor:
                alias_rows: list[tuple] = []
                with cursor.copy(f"COPY {table} ({', '.join(PROFILE_COLUMNS)}) FROM STDIN") as copy:
                    for n in range(start, stop):
                        row, person_aliases = _person(n, tenant, clubs, rng, now)
                        copy.write_row([row[column] for column in PROFILE_COLUMNS])
                        alias_rows.extend(
                            (tenant.pk, kind, value, row["id"], "demo", now, now)
                            for kind, value in person_aliases
                        )
                with cursor.copy(
                    f"COPY {alias_table} ({', '.join(ALIAS_COLUMNS)}) FROM STDIN"
                ) as copy:
                    for alias_row in alias_rows:
                        copy.write_row(alias_row)
        profiles += stop - start
        aliases += len(alias_rows)
        if progress is not None:
            progress(stop - start)
    return DemoDataResult(profiles=profiles, aliases=aliases, first_number=first)


# ----------------------------------------------------------------------------- activity

DEMO_SOURCE_PREFIX = "demo"
COURSES = {
    Region.ZA: ["Main course", "East course", "Woodlands nine"],
    Region.UK: ["Championship course", "Old course", "Heath nine"],
}
COMPETITIONS = [
    "Monthly Medal",
    "Saturday Stableford",
    "Club Championship qualifier",
    "Seniors' Open",
    "Mixed Greensomes",
    "Twilight Texas Scramble",
]
# Rounds a week, by lifecycle stage: members play, visitors now and then, the rest hardly.
ROUNDS_PER_WEEK = {
    LifecycleStage.MEMBER: (0.3, 2.5),
    LifecycleStage.VISITOR: (0.05, 0.4),
    LifecycleStage.LAPSED: (0.0, 0.1),
}
GREEN_FEES = {Region.ZA: (350, 950), Region.UK: (45, 140)}  # visitors' fee, whole units
ENTRY_FEES = {Region.ZA: (80, 250), Region.UK: (5, 20)}

_DEMO_ACTIVITY_SQL = activity_insert_sql("customer_id, type, metadata")

# Last activity from the latest engagement activity, for the people who have one.
_LAST_ACTIVITY_SQL = f"""
    UPDATE "{CustomerProfile._meta.db_table}" p
    SET last_activity_at = a.occurred_at, last_activity_type = a.type, updated_at = %s
    FROM (
        SELECT DISTINCT ON (customer_id) customer_id, occurred_at, type
        FROM "{Activity._meta.db_table}"
        WHERE tenant_id = %s AND type <> ALL(%s::text[])
        ORDER BY customer_id, occurred_at DESC, id DESC
    ) a
    WHERE p.id = a.customer_id AND p.tenant_id = %s
      AND p.last_activity_at IS DISTINCT FROM a.occurred_at
"""  # noqa: S608

_ADD_VALUE_SQL = f"""
    UPDATE "{CustomerProfile._meta.db_table}" p
    SET lifetime_value_minor = p.lifetime_value_minor + v.amount, updated_at = %s
    FROM unnest(%s::uuid[], %s::bigint[]) AS v(id, amount)
    WHERE p.id = v.id AND p.tenant_id = %s
"""  # noqa: S608


@dataclass(frozen=True)
class DemoActivityResult:
    activities: int
    people: int
    suggestions: int


def _event(events: list, profile_id, kind: str, payload: dict, at: datetime, key: str) -> None:
    spec = event_type(kind)
    events.append(
        (
            profile_id,
            kind,
            spec.category,
            spec.title(payload)[:255],
            Jsonb(payload),
            spec.source,
            str(payload.get("bookingId") or payload.get("roundId") or "")[:128],
            f"{DEMO_SOURCE_PREFIX}-{key}",
            at,
        )
    )


def _person_activity(
    profile: dict, tenant: Tenant, days: int, now: datetime, seed: int
) -> list[tuple]:
    """One person's seeded 90 days: bookings (some cancelled), paid green fees for
    visitors, rounds with Stableford points, competition entries, handicap changes."""
    rng = random.Random(f"{tenant.slug}:{seed}:{profile['id']}")
    low, high = ROUNDS_PER_WEEK.get(profile["lifecycle_stage"], (0.0, 0.05))
    weekly = rng.uniform(low, high)
    rounds = min(int(rng.expovariate(1) * weekly * days / 7 + 0.5), 40) if weekly else 0
    if profile["lifecycle_stage"] == LifecycleStage.MEMBER:
        rounds = max(rounds, 2)  # a member who never played in 90 days would not be a member
    key = profile["id"].hex[:16]
    region = Region(tenant.region)
    events: list = []
    handicap = profile["handicap_index"]
    for n in sorted(rng.sample(range(days * 24), min(rounds, days * 24))):
        played = now - timedelta(hours=days * 24 - n) + timedelta(minutes=rng.randrange(60))
        played = played.replace(hour=rng.choice([6, 7, 8, 9, 10, 12, 13, 14, 15]), second=0)
        if played + timedelta(hours=5) >= now:
            continue  # everything about the round (booked, paid, played) lies in the past
        booked = played - timedelta(days=rng.randrange(1, 8), hours=rng.randrange(12))
        booked = max(booked, now - timedelta(days=days) + timedelta(minutes=n % 60))
        booking = f"B-{key}-{n}"
        course = rng.choice(COURSES[region])
        tee = {"bookingId": booking, "teeTime": played.isoformat(), "course": course}
        _event(
            events,
            profile["id"],
            "teetime.booking.created",
            tee | {"players": rng.randint(1, 4)},
            booked,
            f"bk-{key}-{n}",
        )
        if rng.random() < 0.08:
            _event(
                events,
                profile["id"],
                "teetime.booking.cancelled",
                {"bookingId": booking, "reason": rng.choice(["Weather", "Work", ""])},
                booked + timedelta(days=1),
                f"bc-{key}-{n}",
            )
            continue
        if profile["lifecycle_stage"] != LifecycleStage.MEMBER or rng.random() < 0.15:
            fee = rng.randint(*GREEN_FEES[region])
            _event(
                events,
                profile["id"],
                "teetime.booking.paid",
                {"bookingId": booking, "amount": f"{fee}.00", "currency": tenant.currency},
                booked + timedelta(minutes=5),
                f"bp-{key}-{n}",
            )
        points = max(12, min(44, int(rng.gauss(32, 5))))
        holes = 9 if rng.random() < 0.15 else 18
        _event(
            events,
            profile["id"],
            "teetime.round.completed",
            {
                "roundId": f"R-{key}-{n}",
                "course": course,
                "holes": holes,
                "stablefordPoints": points if holes == 18 else points // 2,
            },
            played + timedelta(hours=4 if holes == 18 else 2),
            f"rd-{key}-{n}",
        )
        if handicap is not None and holes == 18 and rng.random() < 0.3:
            handicap = max(
                Decimal("-5.0"), min(Decimal("54.0"), handicap + Decimal(rng.randint(-8, 6)) / 10)
            )
            _event(
                events,
                profile["id"],
                "teetime.handicap.updated",
                {"handicapIndex": str(handicap)},
                played + timedelta(hours=5),
                f"hc-{key}-{n}",
            )
    if rounds and rng.random() < 0.45:
        for c in range(rng.randint(1, 3)):
            name = rng.choice(COMPETITIONS)
            entered = now - timedelta(days=rng.randrange(1, days), hours=rng.randrange(24))
            _event(
                events,
                profile["id"],
                "teetime.competition.entered",
                {
                    "competitionId": f"C-{COMPETITIONS.index(name)}-{c}",
                    "name": name,
                    "startsAt": (entered + timedelta(days=rng.randrange(3, 14))).isoformat(),
                },
                entered,
                f"ce-{key}-{c}",
            )
            if rng.random() < 0.7:
                fee = rng.randint(*ENTRY_FEES[region])
                _event(
                    events,
                    profile["id"],
                    "teetime.booking.paid",
                    {
                        "bookingId": f"CE-{key}-{c}",
                        "amount": f"{fee}.00",
                        "currency": tenant.currency,
                    },
                    entered + timedelta(minutes=2),
                    f"cp-{key}-{c}",
                )
    return events


# The latest handicap an activity reported, onto the profile (as the handicap handler does).
_HANDICAP_SQL = f"""
    UPDATE "{CustomerProfile._meta.db_table}" p
    SET handicap_index = (a.metadata->>'handicapIndex')::numeric, handicap_updated_at =
        a.occurred_at, updated_at = %s
    FROM (
        SELECT DISTINCT ON (customer_id) customer_id, occurred_at, metadata
        FROM "{Activity._meta.db_table}"
        WHERE tenant_id = %s AND type = 'teetime.handicap.updated'
        ORDER BY customer_id, occurred_at DESC, id DESC
    ) a
    WHERE p.id = a.customer_id AND p.tenant_id = %s
      AND (p.handicap_updated_at IS NULL OR p.handicap_updated_at < a.occurred_at)
"""  # noqa: S608

DUPLICATES = 3


def _duplicates(tenant: Tenant, now: datetime) -> int:
    """A few people who booked a tee time with a second email address, then gave that
    address with their phone: identity resolution ties the two profiles and records a merge
    suggestion for staff to review (the real path, not a hand-made row)."""
    made = 0
    people = list(
        CustomerProfile.objects.for_tenant(tenant)
        .filter(status=ProfileStatus.ACTIVE, phone__isnull=False, email__isnull=False)
        .exclude(email__startswith="second.")
        .order_by("email")
        .values("id", "email", "phone", "first_name", "last_name")[:DUPLICATES]
    )
    for person in people:
        second = f"second.{person['email']}"
        duplicate = identity_resolve(
            tenant=tenant,
            hints=IdentityHints(email=second, teetime_player_id=f"TT-DUP-{person['id'].hex[:8]}"),
            source="teetime",
        ).profile
        assert duplicate is not None  # resolve creates the person when nobody matches
        if not duplicate.first_name:
            CustomerProfile.objects.filter(pk=duplicate.pk, tenant=tenant).update(
                first_name=person["first_name"], last_name=person["last_name"], updated_at=now
            )
        pair = MergeSuggestion.objects.for_tenant(tenant).filter(
            profile_id__in=[person["id"], duplicate.pk],
            candidate_id__in=[person["id"], duplicate.pk],
        )
        if pair.exists():
            continue  # suggested before (and perhaps already decided): not again
        identity_resolve(
            tenant=tenant,
            hints=IdentityHints(email=second, phone=person["phone"]),
            source="teetime",
        )
        made += 1
    return made


def demo_activity_generate(
    *, tenant: Tenant, now: datetime, days: int = 90, seed: int = 0
) -> DemoActivityResult:
    """``days`` of seeded activity for every active person of the tenant, inserted set-wise
    (as the event pipeline would: same types, titles, categories), then the metrics the
    pipeline keeps: lifetime value (new payments only), last activity, handicap, the rolling
    30-day count at ``now``. Running it again inserts nothing and changes nothing."""
    people = list(
        CustomerProfile.objects.for_tenant(tenant)
        .filter(status=ProfileStatus.ACTIVE)
        .exclude(email__startswith="second.")
        .order_by("id")
        .values("id", "lifecycle_stage", "handicap_index")
    )
    inserted = 0
    with transaction.atomic():
        for start in range(0, len(people), 200):
            rows = [
                event
                for person in people[start : start + 200]
                for event in _person_activity(person, tenant, days, now, seed)
            ]
            if not rows:
                continue
            with connection.cursor() as cursor:
                cursor.execute(
                    _DEMO_ACTIVITY_SQL, [tenant.pk, now, now, *map(list, zip(*rows, strict=True))]
                )
                new = cursor.fetchall()
            inserted += len(new)
            paid: dict = {}
            for customer_id, kind, raw in new:
                # Django reads jsonb as text (its JSONField decodes it), so decode here.
                metadata = json.loads(raw) if isinstance(raw, str) else raw
                if kind == "teetime.booking.paid" and metadata["currency"] == tenant.currency:
                    paid[customer_id] = paid.get(customer_id, 0) + minor_units(
                        metadata["amount"], metadata["currency"]
                    )
            if paid:
                with connection.cursor() as cursor:
                    cursor.execute(
                        _ADD_VALUE_SQL, [now, list(paid), list(paid.values()), tenant.pk]
                    )
        with connection.cursor() as cursor:
            cursor.execute(
                _LAST_ACTIVITY_SQL, [now, tenant.pk, list(NOT_ENGAGEMENT_TYPES), tenant.pk]
            )
            cursor.execute(_HANDICAP_SQL, [now, tenant.pk, tenant.pk])
        activity_count_recompute(tenant=tenant, now=now)
    suggestions = _duplicates(tenant, now)
    return DemoActivityResult(activities=inserted, people=len(people), suggestions=suggestions)
