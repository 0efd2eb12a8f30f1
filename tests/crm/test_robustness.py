"""Odd input anywhere in the API is a 4xx in the one error shape, never a 500; and the API
keeps accepting events while Redis is down."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

import pytest
from django.test import override_settings

from crm.api import throttling
from crm.models import Club
from customers.models import SyncLogEntry
from tests.factories import ClubFactory

pytestmark = pytest.mark.django_db
EVENTS = "/api/v1/events"


def _event(i: int, pad: int = 0) -> dict:
    return {
        "id": f"evt-{i}",
        "type": "teetime.round.completed",
        "tenantId": "links-a",
        "timestamp": "2026-01-01T08:00:00+02:00",
        "identity": {"email": f"p{i}@example.com"},
        "payload": {"roundId": f"R{i}", "note": "x" * pad},
    }


def _post_raw(client, url: str, body: str):
    return client.generic("POST", url, body, content_type="application/json")


def test_a_full_batch_over_django_s_default_body_limit_is_accepted(api_a, tenant_a):
    body = json.dumps([_event(i, pad=3_000) for i in range(1_000)])
    assert 2.5 * 1024 * 1024 < len(body) < 10 * 1024 * 1024
    response = _post_raw(api_a, EVENTS, body)
    assert response.status_code == 202
    assert len(response.json()["accepted"]) == 1_000


@pytest.mark.parametrize("url", [EVENTS, "/api/v1/clubs"])
def test_a_body_over_the_limit_is_413_and_changes_nothing(api_a, tenant_a, url):
    body = json.dumps([_event(i, pad=12_000) for i in range(1_000)])
    assert len(body) > 10 * 1024 * 1024
    response = _post_raw(api_a, url, body)
    assert response.status_code == 413
    error = response.json()["error"]
    assert (error["status"], error["code"]) == (413, "too_large")
    assert "10,485,760 bytes" in error["message"]
    assert not SyncLogEntry.objects.exists() and not Club.objects.exists()


@pytest.mark.parametrize("depth", [65, 100_000])
def test_deeply_nested_json_is_400(api_a, tenant_a, depth):
    response = _post_raw(api_a, EVENTS, "[" * depth + "]" * depth)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    assert "nested deeper than 64 levels" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "query",
    ["q=a%00b", "status=%00", "page_size=1%00", "x%00y=1", "cursor=%00"],
)
def test_a_nul_in_a_query_parameter_is_400(api_a, tenant_a, query):
    response = api_a.get(f"/api/v1/customers?{query}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert list(error["fields"].values()) == [["NUL characters (\\u0000) are not allowed."]]


@pytest.mark.parametrize("size", ["abc", "0", "-1", "501", "1.5"])
def test_an_invalid_page_size_is_400(api_a, tenant_a, size):
    response = api_a.get(f"/api/v1/clubs?page_size={size}")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "page_size": ["Expected a whole number from 1 to 500."]
    }


def _cursor(**tokens: str) -> str:
    return base64.b64encode(urlencode(tokens).encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        _cursor(p="9999999999999999999999"),
        _cursor(p="0000-00-00 00:00"),
        _cursor(p="0001-01-01 00:00:00+14:00"),
        _cursor(p="9999-12-31 23:59:59-10:00"),
        _cursor(p="2026-01-01 00:00:00+20:00"),
        _cursor(p="2026-01-01 00:00:00"),
    ],
)
def test_a_garbage_or_extreme_cursor_is_400(api_a, club_a, cursor):
    response = api_a.get("/api/v1/clubs", {"cursor": cursor})
    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["fields"]) == ["cursor"]


def test_a_cursor_the_api_made_still_pages(api_a, tenant_a, club_a):
    ClubFactory.create_batch(3, tenant=tenant_a)
    first = api_a.get("/api/v1/clubs?page_size=2").json()
    second = api_a.get(first["next"])
    assert second.status_code == 200
    assert len(second.json()["results"]) == 2


CLOSED_PORT_CACHE = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
}


@pytest.fixture
def tight_limit(monkeypatch):
    """Three requests a minute; the limiter's pause after a Redis failure starts cleared and
    is restored afterwards, so later tests are throttled normally."""
    monkeypatch.setattr(throttling, "_redis_down_until", 0.0)
    monkeypatch.setattr(
        throttling.CredentialRateThrottle, "THROTTLE_RATES", {"credential": "3/min"}
    )


def test_events_are_accepted_while_redis_is_down(api_a, tenant_a, tight_limit, caplog):
    with override_settings(CACHES=CLOSED_PORT_CACHE):
        for i in range(5):  # over the limit of 3: the limiter fails open
            response = api_a.post(EVENTS, _event(i), format="json")
            assert response.status_code == 202, response.content
            assert response.json()["accepted"] == [f"evt-{i}"]
    assert SyncLogEntry.objects.count() == 5
    warnings = [r for r in caplog.records if "rate limit not applied" in r.getMessage()]
    assert len(warnings) == 1  # once per pause, not once per request


def test_the_limiter_counts_again_once_redis_is_back(api_a, tenant_a, tight_limit):
    with override_settings(CACHES=CLOSED_PORT_CACHE):
        assert api_a.get("/api/v1/tenant").status_code == 200
    throttling._redis_down_until = 0.0  # the pause is over (monkeypatch restores it)
    statuses = [api_a.get("/api/v1/tenant").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
