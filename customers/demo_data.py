"""Realistic ZA and UK club members, generated fast with PostgreSQL COPY.

Identifiers derive from a running number per tenant (the profiles already there), so a
second run adds new people without colliding with the first.
"""

from __future__ import annotations

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

from .models import AliasKind, CustomerProfile, IdentityAlias, LifecycleStage, ProfileStatus

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
