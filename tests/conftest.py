"""Fixtures of the whole suite. Tests run on the real PostgreSQL and Redis named by
DATABASE_URL / REDIS_URL (make test starts embedded ones when they are not set)."""

from __future__ import annotations

import os
import time
from datetime import datetime

import jwt
import pytest
import time_machine
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient

from crm.models import StaffRole
from crm.scopes import ALL_SCOPES
from crm.services import api_key_create

from .factories import ClubFactory, StaffMembershipFactory, TenantFactory, UserFactory

# Playwright's sync API runs an event loop in the test thread; the ORM calls of the same
# tests are still synchronous, so allow them.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def pytest_configure(config):
    """``CRM_TEST_CLOCK=2027-03-28T00:30:00+00:00`` runs the session with Python's clock
    moved to that time (and ticking), to show date-dependent tests pass on any day of the
    year (``make test-dates``). The database's clock stays where it is, which is the point:
    services must not read it (docs/architecture.md, "One clock")."""
    clock = os.environ.get("CRM_TEST_CLOCK")
    if clock:
        time_machine.travel(datetime.fromisoformat(clock), tick=True).start()


def _without_test_database(item: pytest.Item) -> bool:
    fixtures = getattr(item, "fixturenames", ())
    return not item.get_closest_marker("django_db") and not {
        "db",
        "transactional_db",
        "live_server",
    } & set(fixtures)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """The long tests first, so that under pytest-xdist (which hands tests out one at a time:
    ``--maxschedchunk 1`` in the Makefile) they run side by side with the short ones
    instead of queueing at the end: those that start a real worker or server process
    (``worker``), the longest of them (the benchmark, load-test and ``make run`` smoke runs,
    which have no test database) first; then the rest in pytest-django's order. A
    transactional test empties the database after itself, which is why Django runs them
    last; nothing here relies on data the migrations or an earlier test left (no migration
    seeds rows), so the long transactional ones may go first."""

    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("worker") is None:
            return 2
        return 0 if _without_test_database(item) else 1

    items.sort(key=rank)  # stable: pytest-django's order within each rank


@pytest.fixture(autouse=True)
def _clean_cache():
    """Throttle counters and other cached state never leak between tests."""
    cache.clear()
    yield


@pytest.fixture(autouse=True)
def _clean_log_context():
    """No test inherits another's request id or tenant on its log lines or on the tasks it
    queues (a test that drives the middleware by hand can leave them set in this process)."""
    from crm.observability import request_id_var, tenant_var

    request_id_var.set(None)
    tenant_var.set(None)
    yield


@pytest.fixture
def tenant_a(db):
    return TenantFactory(slug="links-a", name="Links A Golf")


@pytest.fixture
def tenant_b(db):
    return TenantFactory(slug="parkland-b", name="Parkland B Golf", uk=True)


@pytest.fixture
def club_a(tenant_a):
    return ClubFactory(tenant=tenant_a, name="Links A Country Club")


@pytest.fixture
def club_b(tenant_b):
    return ClubFactory(tenant=tenant_b, name="Parkland B Golf Club")


@pytest.fixture
def staff_a(tenant_a):
    """A tenant-A admin (the owner)."""
    return StaffMembershipFactory(tenant=tenant_a, user=UserFactory(username="anna")).user


@pytest.fixture
def marketer_a(tenant_a):
    """A tenant-A marketer (the colleague with a lower role): sees tenant A's rows, writes the
    marketing screens and customer profiles, but not the admin-only ones (API keys, staff,
    clubs, erasure)."""
    return StaffMembershipFactory(
        tenant=tenant_a, user=UserFactory(username="mark"), role=StaffRole.MARKETER
    ).user


@pytest.fixture
def staff_b(tenant_b):
    """A tenant-B admin (the outsider, seen from tenant A)."""
    return StaffMembershipFactory(tenant=tenant_b, user=UserFactory(username="ben")).user


@pytest.fixture
def make_jwt():
    """Signs a platform JWT; pass ``tenant_id=None`` to leave the claim out."""

    def sign(
        *,
        tenant_id: str | None,
        sub: str = "svc-teetime",
        exp_in: int = 300,
        secret: str | None = None,
        scope: str = "customers:read",
    ) -> str:
        now = int(time.time())
        claims: dict = {
            "sub": sub,
            "scope": scope,
            "iat": now,
            "exp": now + exp_in,
            "aud": settings.JWT_AUDIENCE,
            "iss": settings.JWT_ISSUER,
        }
        if tenant_id is not None:
            claims["tenant_id"] = tenant_id
        return jwt.encode(claims, secret or settings.JWT_SECRET, algorithm="HS256")

    return sign


@pytest.fixture
def api_key_a(tenant_a):
    """A tenant-A key with every scope (the tests of scopes themselves make narrower ones)."""
    return api_key_create(tenant=tenant_a, name="TeeTime service", scopes=ALL_SCOPES)


@pytest.fixture
def api_a(api_key_a):
    """An API client authenticated with a tenant-A API key."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_a.raw_key}")
    return client


@pytest.fixture
def api_b(tenant_b):
    client = APIClient()
    issued = api_key_create(tenant=tenant_b, name="SCL service", scopes=ALL_SCOPES)
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {issued.raw_key}")
    return client
