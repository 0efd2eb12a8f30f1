"""Failed API authentications are limited per client address (API_AUTH_FAILURE_RATE): key
and token guessing gets a 429 quickly, and a Redis outage does not lock anyone out."""

from __future__ import annotations

import pytest
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from crm.api.auth_failures import auth_failures_check, auth_failures_record

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _three_a_minute(settings):
    settings.API_AUTH_FAILURE_RATE = "3/min"


def _get(auth: str, address: str = "203.0.113.7", **headers):
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_AUTHORIZATION=auth, **headers)
    return client.get("/api/v1/tenant")


def test_guessing_keys_is_throttled_per_address(api_key_a):
    guesses = [_get(f"Api-Key crm_000000000000_guess{i}").status_code for i in range(4)]
    genuine_same_address = _get(f"Api-Key {api_key_a.raw_key}")
    genuine_elsewhere = _get(f"Api-Key {api_key_a.raw_key}", address="198.51.100.9")

    assert guesses == [401, 401, 401, 429]
    assert genuine_same_address.status_code == 429
    assert genuine_same_address.json()["error"]["code"] == "throttled"
    assert int(genuine_same_address["Retry-After"]) > 0
    assert genuine_elsewhere.status_code == 200


def test_bad_tokens_count_too_and_forwarded_for_does_not_dodge(make_jwt, tenant_a):
    bad = make_jwt(tenant_id=tenant_a.slug, secret="another-secret-of-at-least-thirty-two-bytes!")

    statuses = [
        _get(f"Bearer {bad}", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}").status_code for i in range(4)
    ]

    assert statuses == [401, 401, 401, 429]


def test_successful_requests_do_not_count(api_key_a):
    statuses = [_get(f"Api-Key {api_key_a.raw_key}").status_code for _ in range(5)]

    assert statuses == [200] * 5


def test_the_limit_fails_open_when_redis_is_down(settings):
    # Nothing listens on port 9 of this machine: every cache call fails to connect.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    request = Request(APIRequestFactory().get("/api/v1/tenant", REMOTE_ADDR="203.0.113.7"))

    for _ in range(5):
        auth_failures_record(request=request)
        auth_failures_check(request=request)  # no exception: let in
