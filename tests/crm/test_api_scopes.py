"""Scopes: every API route declares the scope it needs, and a credential without it is a 403
that changes nothing. Platform JWTs must name this API (aud), the platform's issuer (iss),
and live at most JWT_MAX_LIFETIME seconds."""

from __future__ import annotations

import time
from io import StringIO

import jwt
import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from crm.models import ApiKey, Club
from crm.scopes import (
    ANY_CREDENTIAL,
    CUSTOMERS_READ,
    CUSTOMERS_WRITE,
    DEFAULT_API_KEY_SCOPES,
    EVENTS_WRITE,
    MARKETING_READ,
    PRIVACY_ERASE,
    SCOPES,
    TENANT_ADMIN,
    TENANT_READ,
    UndeclaredScope,
    required_scope,
)
from crm.services import api_key_create
from customers.models import CustomerProfile, ProfileStatus
from tests.customers.helpers import person

pytestmark = pytest.mark.django_db

# Routes under /api/v1/ that are not DRF views and authenticate on their own.
OWN_AUTHENTICATION = {"messaging-webhook"}  # signed with MESSAGING_WEBHOOK_SECRET
# Routes any valid credential of the tenant may call.
OPEN_TO_ANY_CREDENTIAL = {"tenant-current"}


def _api_patterns(patterns=None, prefix=""):
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _api_patterns(entry.url_patterns, route)
        elif isinstance(entry, URLPattern) and route.startswith("api/v1/"):
            yield route, entry


def _method_actions(callback):
    """(HTTP method, viewset action or None) pairs the route answers."""
    if getattr(callback, "actions", None):
        return [*callback.actions.items(), ("options", None)]
    return [(m, None) for m in callback.cls.http_method_names if hasattr(callback.cls, m)]


def test_every_api_route_declares_a_known_scope_for_every_method():
    checked, undeclared, open_routes, own_auth = 0, [], set(), set()
    for route, pattern in _api_patterns():
        callback = pattern.callback
        if not hasattr(callback, "cls"):
            own_auth.add(pattern.name)
            continue
        for method, action in _method_actions(callback):
            view = callback.cls(**getattr(callback, "initkwargs", {}))
            view.action = action
            try:
                scope = required_scope(view, method)
            except UndeclaredScope:
                undeclared.append(f"{method.upper()} {route} ({callback.cls.__name__})")
                continue
            checked += 1
            if scope is ANY_CREDENTIAL:
                open_routes.add(pattern.name)
            else:
                assert scope in SCOPES, f"{method.upper()} {route}: unknown scope {scope!r}"

    assert undeclared == []
    assert open_routes == OPEN_TO_ANY_CREDENTIAL
    assert own_auth == OWN_AUTHENTICATION
    assert checked > 50  # the walk really saw the API


def test_a_view_without_a_declaration_is_refused():
    class Undeclared:
        action = None

    with pytest.raises(UndeclaredScope):
        required_scope(Undeclared(), "GET")


def _client(tenant, *scopes) -> APIClient:
    client = APIClient()
    issued = api_key_create(tenant=tenant, name="scoped", scopes=list(scopes))
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {issued.raw_key}")
    return client


def _assert_lacks(response, scope):
    assert response.status_code == 403
    assert response.json() == {
        "error": {
            "status": 403,
            "code": "permission_denied",
            "message": f"This credential lacks the {scope!r} scope.",
        }
    }


def test_an_events_key_cannot_read_change_or_erase_customers(tenant_a):
    erin = person(tenant_a, email="erin@example.com")
    CustomerProfile.objects.filter(pk=erin.pk).update(first_name="Erin")
    events_only = _client(tenant_a, EVENTS_WRITE)

    _assert_lacks(events_only.get("/api/v1/customers"), CUSTOMERS_READ)
    _assert_lacks(events_only.get(f"/api/v1/customers/{erin.pk}"), CUSTOMERS_READ)
    _assert_lacks(
        events_only.patch(f"/api/v1/customers/{erin.pk}", {"first_name": "X"}, format="json"),
        CUSTOMERS_WRITE,
    )
    _assert_lacks(events_only.post(f"/api/v1/customers/{erin.pk}/erase"), PRIVACY_ERASE)
    _assert_lacks(events_only.get("/api/v1/segments"), MARKETING_READ)
    _assert_lacks(events_only.post("/api/v1/clubs", {"name": "X"}, format="json"), TENANT_ADMIN)

    erin.refresh_from_db()
    assert (erin.status, erin.first_name) == (ProfileStatus.ACTIVE, "Erin")
    assert not Club.objects.filter(name="X").exists()
    accepted = events_only.post("/api/v1/events", [], format="json")
    assert accepted.status_code == 400  # past the scope check: an empty batch is invalid


@pytest.mark.parametrize(
    ("scopes", "allowed"),
    [
        ((CUSTOMERS_READ,), {"list": 200, "patch": 403, "erase": 403}),
        ((CUSTOMERS_READ, CUSTOMERS_WRITE), {"list": 200, "patch": 200, "erase": 403}),
        ((PRIVACY_ERASE,), {"list": 403, "patch": 403, "erase": 200}),
    ],
    ids=["read", "read-write", "erase-only"],
)
def test_each_customer_route_needs_its_own_scope(tenant_a, scopes, allowed):
    client = _client(tenant_a, *scopes)
    erin = person(tenant_a, email="erin@example.com")

    seen = {
        "list": client.get("/api/v1/customers").status_code,
        "patch": client.patch(
            f"/api/v1/customers/{erin.pk}", {"first_name": "Erin"}, format="json"
        ).status_code,
        "erase": client.post(f"/api/v1/customers/{erin.pk}/erase").status_code,
    }

    assert seen == allowed


def test_the_tenant_route_answers_any_credential(tenant_a):
    assert _client(tenant_a).get("/api/v1/tenant").json()["slug"] == tenant_a.slug
    clubs = _client(tenant_a, TENANT_READ)
    assert clubs.get("/api/v1/clubs").status_code == 200
    _assert_lacks(clubs.post("/api/v1/clubs", {"name": "X"}, format="json"), TENANT_ADMIN)


def test_jwt_scopes_are_enforced(make_jwt, tenant_a):
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {make_jwt(tenant_id=tenant_a.slug, scope=EVENTS_WRITE)}"
    )

    _assert_lacks(client.get("/api/v1/customers"), CUSTOMERS_READ)

    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {make_jwt(tenant_id=tenant_a.slug, scope=CUSTOMERS_READ)}"
    )
    assert client.get("/api/v1/customers").status_code == 200


def _token(tenant, **changes) -> str:
    now = int(time.time())
    claims = {
        "sub": "svc",
        "tenant_id": tenant.slug,
        "scope": CUSTOMERS_READ,
        "iat": now,
        "exp": now + 300,
        "aud": settings.JWT_AUDIENCE,
        "iss": settings.JWT_ISSUER,
    }
    claims.update(changes)
    return jwt.encode(
        {k: v for k, v in claims.items() if v is not None}, settings.JWT_SECRET, "HS256"
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"aud": None}, "Token lacks the 'aud' claim."),
        ({"aud": "another-api"}, "Token is not meant for this API."),
        ({"iss": None}, "Token lacks the 'iss' claim."),
        ({"iss": "someone-else"}, "Token has an unknown issuer."),
        ({"iat": None}, "Token lacks the 'iat' claim."),
        ({"exp": int(time.time()) + 365 * 86400}, "Token lifetime exceeds 3600 seconds."),
        ({"iat": int(time.time()) + 3600}, "Invalid token."),
    ],
    ids=["no-aud", "wrong-aud", "no-iss", "wrong-iss", "no-iat", "too-long", "iat-ahead"],
)
def test_jwt_needs_audience_issuer_and_a_bounded_lifetime(tenant_a, changes, message):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {_token(tenant_a, **changes)}")

    response = client.get("/api/v1/customers")

    assert response.status_code == 401
    assert response.json()["error"]["message"] == message


def test_jwt_of_exactly_the_maximum_lifetime_is_accepted(tenant_a):
    now = int(time.time())
    token = _token(tenant_a, iat=now, exp=now + settings.JWT_MAX_LIFETIME)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    assert client.get("/api/v1/customers").status_code == 200


def test_api_keys_get_the_default_scopes_unless_told(tenant_a):
    default = api_key_create(tenant=tenant_a, name="default").api_key
    chosen = api_key_create(tenant=tenant_a, name="erase", scopes=[PRIVACY_ERASE]).api_key

    assert sorted(default.scopes) == sorted(DEFAULT_API_KEY_SCOPES)
    assert chosen.scopes == [PRIVACY_ERASE]
    with pytest.raises(ValidationError, match="Unknown scope"):
        api_key_create(tenant=tenant_a, name="bad", scopes=["customers:*"])
    assert not ApiKey.objects.filter(name="bad").exists()


def test_create_api_key_command_takes_scopes(tenant_a):
    out = StringIO()
    call_command(
        "create_api_key",
        "--tenant",
        tenant_a.slug,
        "--name",
        "eraser",
        "--scope",
        PRIVACY_ERASE,
        "--scope",
        CUSTOMERS_READ,
        stdout=out,
    )

    assert ApiKey.objects.get(name="eraser").scopes == sorted([PRIVACY_ERASE, CUSTOMERS_READ])


def test_admin_issues_a_key_with_the_scopes_ticked(client, staff_a, tenant_a):
    client.force_login(staff_a)
    form = client.get("/admin/crm/apikey/add/").content.decode()
    client.post(
        "/admin/crm/apikey/add/",
        {"tenant": str(tenant_a.pk), "name": "Marketing", "scopes": [MARKETING_READ]},
    )

    assert f'value="{PRIVACY_ERASE}"' in form
    assert ApiKey.objects.get(name="Marketing").scopes == [MARKETING_READ]


def test_customer_fixture_is_untouched_by_a_refused_erase(tenant_a):
    erin = person(tenant_a, email="erin@example.com")

    _client(tenant_a, CUSTOMERS_READ, CUSTOMERS_WRITE).post(f"/api/v1/customers/{erin.pk}/erase")

    assert CustomerProfile.objects.get(pk=erin.pk).email == "erin@example.com"
