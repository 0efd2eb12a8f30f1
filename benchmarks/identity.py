"""Identity resolution at scale: in-process and over HTTP."""

from __future__ import annotations

import time
import uuid

from django.db import connection
from django.test.utils import CaptureQueriesContext

from crm.models import Region
from crm.services import api_key_create, tenant_create
from customers.demo_data import demo_data_generate
from customers.identity import IdentityHints
from customers.models import AliasKind, CustomerProfile, IdentityAlias
from customers.services import identity_resolve

from .harness import Server, http_load, summary_ms

TARGETS = {
    "resolve_existing_median_ms": 1.0,
    "http_single_p99_ms": 25.0,
    "http_8_clients_rps": 500.0,
}


def _ensure_profiles(tenant, count: int, log) -> int:
    have = CustomerProfile.objects.for_tenant(tenant).count()
    if have < count:
        log(f"generating {count - have:,} profiles (have {have:,}) ...")
        started = time.monotonic()
        demo_data_generate(tenant=tenant, customers=count - have, seed=7)
        log(f"  done in {time.monotonic() - started:.0f}s")
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE customers_customerprofile, customers_identityalias")
    return CustomerProfile.objects.for_tenant(tenant).count()


def _sample(tenant, kind: str, size: int) -> list[str]:
    # TABLESAMPLE keeps the pick cheap on a million rows; on a small table it can come back
    # short (even empty), so the rest comes from a plain scan.
    table = IdentityAlias._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT value FROM {table} TABLESAMPLE SYSTEM (2) "  # noqa: S608
            "WHERE tenant_id = %s AND kind = %s LIMIT %s",
            [tenant.pk, kind, size],
        )
        values = [row[0] for row in cursor.fetchall()]
        if len(values) < size:
            cursor.execute(
                f"SELECT value FROM {table} WHERE tenant_id = %s AND kind = %s "  # noqa: S608
                "AND NOT (value = ANY(%s)) LIMIT %s",
                [tenant.pk, kind, values, size - len(values)],
            )
            values += [row[0] for row in cursor.fetchall()]
        return values


def _time_resolves(tenant, hints_list: list[IdentityHints]) -> list[float]:
    timings = []
    for hints in hints_list:
        t0 = time.perf_counter()
        identity_resolve(tenant=tenant, hints=hints)
        timings.append(time.perf_counter() - t0)
    return timings


def run(*, profiles: int, quick: bool, env: dict[str, str], log) -> dict:
    tenant, _ = tenant_create(slug="bench", name="Bench Golf Club", region=Region.ZA)
    total = _ensure_profiles(tenant, profiles, log)
    aliases = IdentityAlias.objects.for_tenant(tenant).count()
    samples = 300 if quick else 3000
    emails = _sample(tenant, AliasKind.EMAIL, samples)
    phones = _sample(tenant, AliasKind.PHONE, samples)

    # Warm up connections and caches before measuring.
    _time_resolves(tenant, [IdentityHints(email=e) for e in emails[:50]])
    with CaptureQueriesContext(connection) as queries:
        identity_resolve(tenant=tenant, hints=IdentityHints(email=emails[0]))
    by_email = summary_ms(_time_resolves(tenant, [IdentityHints(email=e) for e in emails]))
    by_phone = summary_ms(_time_resolves(tenant, [IdentityHints(phone=p) for p in phones]))
    new_people = [
        IdentityHints(email=f"bench-{uuid.uuid4().hex}@example.com") for _ in range(samples // 3)
    ]
    new = summary_ms(_time_resolves(tenant, new_people))
    log(f"in-process: email {by_email}, phone {by_phone}, new {new}")

    key = api_key_create(tenant=tenant, name="benchmark").raw_key
    headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
    bodies = [{"email": e} for e in emails]
    server = Server(env, workers=4)
    try:
        server.wait()
        load = dict(
            port=server.port, path="/api/v1/customers/resolve", headers=headers, bodies=bodies
        )
        http_load(**load, clients=1, requests_per_client=200, seconds=10)  # warm-up
        single = http_load(
            **load, clients=1, requests_per_client=400 if quick else 3000, seconds=30
        )
        eight = http_load(**load, clients=8, requests_per_client=100 if quick else 1500, seconds=30)
    finally:
        server.stop()
    log(f"http: single {single}, eight {eight}")
    return {
        "data": {"profiles": total, "aliases": aliases},
        "resolve_existing_by_email": {**by_email, "queries_per_call": len(queries)},
        "resolve_existing_by_phone": by_phone,
        "resolve_new": new,
        "http_single_client": single,
        "http_8_clients": eight,
        "checks": {
            "resolve_existing_median_ms": by_email["median_ms"],
            "http_single_p99_ms": single["p99_ms"],
            "http_8_clients_rps": eight["requests_per_s"],
        },
        "targets": TARGETS,
    }
