"""API credentials: tenant API keys and platform JWTs."""

from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from crm.models import ApiKey
from crm.services import api_key_create, api_key_revoke

pytestmark = pytest.mark.django_db


def _get(client: APIClient, auth: str | None, path: str = "/api/v1/tenant"):
    if auth is not None:
        client.credentials(HTTP_AUTHORIZATION=auth)
    return client.get(path)


def test_api_key_authenticates_as_its_tenant(api_key_a, tenant_a):
    response = _get(APIClient(), f"Api-Key {api_key_a.raw_key}")

    assert response.status_code == 200
    assert response.json()["slug"] == tenant_a.slug
    api_key_a.api_key.refresh_from_db()
    assert api_key_a.api_key.last_used_at is not None


def test_api_key_is_stored_hashed_with_a_visible_prefix(api_key_a):
    stored = ApiKey.objects.get(pk=api_key_a.api_key.pk)

    assert api_key_a.raw_key not in (stored.key_hash, stored.prefix)
    assert stored.prefix in api_key_a.raw_key
    assert len(stored.key_hash) == 64


def test_revoked_api_key_is_401(api_key_a):
    api_key_revoke(api_key=api_key_a.api_key)

    response = _get(APIClient(), f"Api-Key {api_key_a.raw_key}")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert response.json()["error"]["message"] == "Invalid or revoked API key."


def test_revoking_twice_keeps_the_first_time(api_key_a):
    first = api_key_revoke(api_key=api_key_a.api_key).revoked_at
    second = api_key_revoke(api_key=api_key_a.api_key).revoked_at
    assert first == second


@pytest.mark.parametrize(
    "mangle",
    [
        lambda key: key[:-1] + ("A" if key[-1] != "A" else "B"),  # right prefix, wrong secret
        lambda key: "crm_000000000000_" + key.split("_", 2)[2],  # unknown prefix
        lambda key: "not-a-key",
    ],
)
def test_wrong_api_key_is_401(api_key_a, mangle):
    response = _get(APIClient(), f"Api-Key {mangle(api_key_a.raw_key)}")
    assert response.status_code == 401


def test_key_of_an_inactive_tenant_is_401(api_key_a, tenant_a):
    tenant_a.is_active = False
    tenant_a.save()
    assert _get(APIClient(), f"Api-Key {api_key_a.raw_key}").status_code == 401


def test_no_credentials_is_401_with_a_challenge():
    response = _get(APIClient(), None)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Api-Key")


def test_malformed_authorization_header_is_401(api_key_a):
    response = _get(APIClient(), f"Api-Key {api_key_a.raw_key} trailing")
    assert response.status_code == 401


def test_valid_jwt_authenticates_by_tenant_slug_or_id(make_jwt, tenant_a):
    for reference in (tenant_a.slug, str(tenant_a.pk)):
        response = _get(APIClient(), f"Bearer {make_jwt(tenant_id=reference)}")
        assert response.status_code == 200
        assert response.json()["id"] == str(tenant_a.pk)


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"secret": "another-secret-of-at-least-thirty-two-bytes!"}, "Invalid token."),
        ({"exp_in": -120}, "Token expired."),
        ({"tenant_id": None}, "Token lacks the 'tenant_id' claim."),
        ({"tenant_id": "no-such-tenant"}, "Token names an unknown tenant."),
    ],
    ids=["bad-signature", "expired", "no-tenant-claim", "unknown-tenant"],
)
def test_bad_jwt_is_401(make_jwt, tenant_a, claims, message):
    kwargs = {"tenant_id": tenant_a.slug, **claims}
    response = _get(APIClient(), f"Bearer {make_jwt(**kwargs)}")

    assert response.status_code == 401
    assert response.json()["error"]["message"] == message


def test_jwt_with_a_none_algorithm_is_rejected(tenant_a):
    import jwt

    token = jwt.encode(
        {"sub": "x", "tenant_id": tenant_a.slug, "exp": int(timezone.now().timestamp()) + 60},
        key=None,
        algorithm="none",
    )
    assert _get(APIClient(), f"Bearer {token}").status_code == 401


def test_tenant_in_the_body_cannot_override_the_credential(api_a, tenant_a, tenant_b):
    response = api_a.post(
        "/api/v1/clubs", {"name": "Sneaky", "tenant": str(tenant_b.pk)}, format="json"
    )

    assert response.status_code == 201
    from crm.models import Club

    assert Club.objects.get(pk=response.json()["id"]).tenant_id == tenant_a.pk


def test_requests_are_throttled_per_credential(api_key_a, tenant_a, settings):
    from crm.api.throttling import CredentialRateThrottle

    CredentialRateThrottle.THROTTLE_RATES = {"credential": "3/min"}
    try:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_a.raw_key}")
        statuses = [client.get("/api/v1/tenant").status_code for _ in range(4)]
        other = api_key_create(tenant=tenant_a, name="another service")
        other_client = APIClient()
        other_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {other.raw_key}")
        other_status = other_client.get("/api/v1/tenant").status_code
    finally:
        CredentialRateThrottle.THROTTLE_RATES = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]

    assert statuses == [200, 200, 200, 429]
    assert other_status == 200
