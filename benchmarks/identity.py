"""Identity resolution at scale: in-process and over HTTP.

* In-process: ``identity_resolve`` for existing people (by email, by phone) and new ones.
* Side by side, same data, same run: the naive resolver the guide sketches (one ORM query
  per hint on the profile's columns, first match wins) against ours (every hint in one
  query) for the same existing people given email and phone.
* Over HTTP: ``POST /api/v1/customers/resolve`` with 1 and 8 load clients against gunicorn
  (``harness.API_SERVER``), each measured ``REPEATS`` times (median and spread), after a
  warm-up and a ``VACUUM ANALYZE`` of the tables it reads; the queries one request makes are
  counted through Django's test client.
* ``--ladder``: the in-process resolve and the 8-client HTTP figure also on tenants of 100k
  and 300k profiles (their own tenants, in the same database, each with its own server).
"""

from __future__ import annotations

import json
import logging
import os
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

from . import http_profile
from .harness import (
    API_SERVER,
    Server,
    http_load,
    load_runs,
    summary_ms,
    wrk_available,
    wrk_load,
)

TARGETS = {
    "resolve_existing_median_ms": 1.0,
    "http_single_p99_ms": 25.0,
    "http_8_clients_rps": 1200.0,
    "http_8_clients_p99_ms": 25.0,
}
REPEATS = 3
LADDER = (100_000, 300_000, 1_000_000)
# The profile column the guide's resolver reads for each hint, in its order of precedence.
NAIVE_FIELDS = ("auth_user_id", "scl_member_id", "email", "teetime_player_id", "phone")


def ladder_sizes(profiles: int, ladder: bool) -> list[int]:
    """The sizes a suite measures, smallest first: ``profiles`` alone, or with ``--ladder``
    the sizes of ``LADDER`` below it as well (``profiles`` is always the last)."""
    return [*(size for size in LADDER if size < profiles), profiles] if ladder else [profiles]


def ladder_tenant(size: int, top: int):
    """The tenant a suite measures at ``size`` profiles: ``bench`` at the run's full size
    (``top``), ``bench-100k`` and the like below it. The suites share them, each grown to its
    size once: a suite that grew one tenant through the sizes measured its smaller rungs at
    whatever size an earlier suite of the run had left that tenant (1M)."""
    slug = "bench" if size == top else f"bench-{size // 1000}k"
    name = "Bench Golf Club" if size == top else f"Bench Golf Club {slug}"
    return tenant_create(slug=slug, name=name, region=Region.ZA)[0]


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


def _naive_resolve(tenant, hints: IdentityHints):
    """The guide's resolver, for comparison only: one ORM query per hint on the profile's own
    columns, the first match wins (no conflict check, no merge suggestion)."""
    for field in NAIVE_FIELDS:
        value = getattr(hints, field)
        if value:
            match = CustomerProfile.objects.filter(tenant=tenant, **{field: value}).first()
            if match is not None:
                return match
    return None


def _people(tenant, size: int) -> list[IdentityHints]:
    """Existing people with both an email and a phone (their hints as an event carries them)."""
    table = CustomerProfile._meta.db_table
    where = "WHERE tenant_id = %s AND email <> '' AND phone <> ''"
    with connection.cursor() as cursor:
        # As in _sample: TABLESAMPLE on a million rows, a plain scan when it comes back short.
        for source in (f"{table} TABLESAMPLE SYSTEM (2)", table):
            cursor.execute(
                f"SELECT email, phone FROM {source} {where} LIMIT %s",  # noqa: S608
                [tenant.pk, size],
            )
            rows = cursor.fetchall()
            if len(rows) >= min(size, 100):
                break
    return [IdentityHints(email=email, phone=phone) for email, phone in rows]


def _side_by_side(tenant, people: list[IdentityHints], log) -> dict:
    for hints in people[:50]:  # warm-up
        _naive_resolve(tenant, hints)
        identity_resolve(tenant=tenant, hints=hints)
    with CaptureQueriesContext(connection) as naive_queries:
        _naive_resolve(tenant, IdentityHints(email="nobody@example.com", phone=people[0].phone))
    naive = []
    for hints in people:
        t0 = time.perf_counter()
        _naive_resolve(tenant, hints)
        naive.append(time.perf_counter() - t0)
    ours = _time_resolves(tenant, people)
    naive_ms, ours_ms = summary_ms(naive), summary_ms(ours)
    log(f"side by side (email + phone): naive {naive_ms}, ours {ours_ms}")
    return {
        "hints": "email and phone of an existing person",
        "naive": {**naive_ms, "queries_per_call_at_most": len(naive_queries)},
        "ours": ours_ms,
        "ratio_median": round(naive_ms["median_ms"] / ours_ms["median_ms"], 2),
    }


def _queries_per_request(tenant, key: str, email: str) -> int:
    """The queries one ``POST /customers/resolve`` of a known person makes (after a warm-up
    request: the credential cache, the key's ``last_used_at`` stamp)."""
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Api-Key {key}")
    body = json.dumps({"email": email})
    path = "/api/v1/customers/resolve"
    client.post(path, body, content_type="application/json")
    with CaptureQueriesContext(connection) as queries:
        response = client.post(path, body, content_type="application/json")
    assert response.status_code == 200, response.content
    return len(queries)


def _http(server: Server, headers: dict, bodies: list[dict], quick: bool, log) -> dict:
    """Each figure ``REPEATS`` times from the Python load clients and, when it is installed,
    from wrk (the same closed loop: each connection sends its next request when the answer is
    read), back to back in each repetition."""
    load = dict(port=server.port, path="/api/v1/customers/resolve", headers=headers, bodies=bodies)
    http_load(**load, clients=8, requests_per_client=100, seconds=10)  # warm-up
    use_wrk = wrk_available()
    runs: dict[str, list[dict]] = {"single": [], "eight": [], "wrk_single": [], "wrk_eight": []}
    for _ in range(REPEATS):
        runs["single"].append(
            http_load(
                **load,
                clients=1,
                requests_per_client=400 if quick else 3000,
                seconds=30,
                server=server,
            )
        )
        runs["eight"].append(
            http_load(
                **load,
                clients=8,
                requests_per_client=100 if quick else 1500,
                seconds=30,
                server=server,
            )
        )
        if use_wrk:
            seconds = 3 if quick else 10
            runs["wrk_single"].append(wrk_load(**load, clients=1, seconds=seconds, server=server))
            runs["wrk_eight"].append(wrk_load(**load, clients=8, seconds=seconds, server=server))
        log(f"http: { ({name: measured[-1] for name, measured in runs.items() if measured}) }")
    return {name: load_runs(measured) for name, measured in runs.items() if measured}


def _http_served(
    env: dict[str, str], key: str, emails: list[str], quick: bool, log
) -> tuple[dict, dict]:
    """The HTTP figures (``_http``) against a gunicorn of its own, resolving ``emails`` with
    API key ``key``; also the server's configuration."""
    headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
    server = Server(env, **API_SERVER)
    try:
        server.wait()
        return _http(server, headers, [{"email": e} for e in emails], quick, log), server.config
    finally:
        server.stop()


def _profile(tenant, key: str, emails: list[str], quick: bool, log) -> dict:
    """The two hot endpoints profiled in-process (benchmarks.http_profile)."""
    from django.test import Client

    from .events import _timeline_customer

    client = Client(HTTP_AUTHORIZATION=f"Api-Key {key}")
    customer = _timeline_customer(tenant, log)
    timeline = f"/api/v1/customers/{customer.pk}/timeline"

    def resolve(i: int) -> None:
        body = json.dumps({"email": emails[i % len(emails)]})
        response = client.post("/api/v1/customers/resolve", body, content_type="application/json")
        assert response.status_code == 200, response.content

    def first_page(i: int) -> None:
        assert client.get(timeline).status_code == 200

    count = 200 if quick else 1000
    # As under gunicorn (LOG_LEVEL=WARNING): no per-request log line written to the terminal.
    logging.disable(logging.INFO)
    try:
        result = {
            "resolve": http_profile.profile_requests(resolve, count),
            "timeline_first_page": http_profile.profile_requests(first_page, count // 2),
        }
    finally:
        logging.disable(logging.NOTSET)
    log(f"profile: {result}")
    return result


def _growth_row(total: int, by_email: dict, http: dict) -> dict:
    eight = http.get("wrk_eight", http["eight"])
    return {
        "profiles": total,
        "resolve_median_ms": by_email["median_ms"],
        "resolve_p99_ms": by_email["p99_ms"],
        "http_8_clients_rps": eight["requests_per_s"]["median"],
        "http_8_clients_p99_ms": eight["p99_ms"]["median"],
        "generator": eight["generator"],
    }


def _rung(size: int, top: int, env: dict[str, str], quick: bool, log) -> dict:
    """A smaller tenant of the ladder: the in-process resolve and the HTTP figures only."""
    tenant = ladder_tenant(size, top)
    total = _ensure_profiles(tenant, size, log)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE customers_customerprofile, customers_identityalias")
    emails = _sample(tenant, AliasKind.EMAIL, 300 if quick else 3000)
    _time_resolves(tenant, [IdentityHints(email=e) for e in emails[:50]])  # warm-up
    by_email = summary_ms(_time_resolves(tenant, [IdentityHints(email=e) for e in emails]))
    key = api_key_create(tenant=tenant, name="benchmark").raw_key
    http, _ = _http_served(env, key, emails, quick, log)
    log(f"ladder {total:,} profiles: in-process {by_email}")
    return _growth_row(total, by_email, http)


def run(*, profiles: int, quick: bool, env: dict[str, str], log, ladder: bool = False) -> dict:
    load_before = os.getloadavg()[0]
    smaller = ladder_sizes(profiles, ladder)[:-1]
    growth = [_rung(size, profiles, env, quick, log) for size in smaller]
    tenant = ladder_tenant(profiles, profiles)
    total = _ensure_profiles(tenant, profiles, log)
    aliases = IdentityAlias.objects.for_tenant(tenant).count()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE customers_customerprofile, customers_identityalias")
    samples = 300 if quick else 3000
    emails = _sample(tenant, AliasKind.EMAIL, samples)
    phones = _sample(tenant, AliasKind.PHONE, samples)

    # Warm up connections and caches before measuring.
    _time_resolves(tenant, [IdentityHints(email=e) for e in emails[:50]])
    with CaptureQueriesContext(connection) as queries:
        identity_resolve(tenant=tenant, hints=IdentityHints(email=emails[0]))
    # Counted now: the capture reads Django's query log lazily, and every request through the
    # test client below (queries per request, the profile) resets that log.
    queries_per_call = len(queries)
    by_email = summary_ms(_time_resolves(tenant, [IdentityHints(email=e) for e in emails]))
    by_phone = summary_ms(_time_resolves(tenant, [IdentityHints(phone=p) for p in phones]))
    new_people = [
        IdentityHints(email=f"bench-{uuid.uuid4().hex}@example.com") for _ in range(samples // 3)
    ]
    new = summary_ms(_time_resolves(tenant, new_people))
    log(f"in-process: email {by_email}, phone {by_phone}, new {new}")
    side_by_side = _side_by_side(tenant, _people(tenant, samples), log)

    key = api_key_create(tenant=tenant, name="benchmark").raw_key
    per_request = _queries_per_request(tenant, key, emails[0])
    http, server_config = _http_served(env, key, emails, quick, log)
    single, eight = http["single"], http["eight"]
    # The targets are read from wrk when it ran: the Python clients take several times its
    # CPU from the server on the same 2 cores (both are recorded, with CPU per request).
    measured_single = http.get("wrk_single", single)
    measured_eight = http.get("wrk_eight", eight)
    profile = _profile(tenant, key, emails, quick, log)
    return {
        "data": {
            "profiles": total,
            "aliases": aliases,
            "repeats": REPEATS,
            # Other work on the machine (the HTTP figures are CPU-bound on 2 cores).
            "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        },
        "server": server_config,
        "resolve_existing_by_email": {**by_email, "queries_per_call": queries_per_call},
        "resolve_existing_by_phone": by_phone,
        "resolve_new": new,
        "naive_side_by_side": side_by_side,
        "http_queries_per_request": per_request,
        "profile": profile,
        "profile_before": http_profile.before(),
        "http_single_client": single,
        "http_8_clients": eight,
        **(
            {"http_wrk_single_client": http["wrk_single"], "http_wrk_8_clients": http["wrk_eight"]}
            if "wrk_eight" in http
            else {}
        ),
        "load_generator": measured_eight["generator"],
        "growth": [*growth, _growth_row(total, by_email, http)],
        "checks": {
            "resolve_existing_median_ms": by_email["median_ms"],
            "http_single_p99_ms": measured_single["p99_ms"]["median"],
            "http_8_clients_rps": measured_eight["requests_per_s"]["median"],
            "http_8_clients_p99_ms": measured_eight["p99_ms"]["median"],
        },
        "targets": TARGETS,
    }
