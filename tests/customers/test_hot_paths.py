"""The API's hot paths (resolve, the timeline's first page): how many queries they make, and
that their hand-built responses are exactly what the serializers they replace would give."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from crm import services
from crm.api import redis_fast, throttling
from crm.models import ApiKey
from customers import timeline
from customers.api.serializers import (
    ActivitySerializer,
    HintsSerializer,
    ResolveOutputSerializer,
    plain_hints,
)
from customers.models import Activity, CustomerProfile
from customers.services import profile_merge
from customers.timeline import timeline_page, timeline_rows_of_live_customer

from .helpers import person, resolve

pytestmark = pytest.mark.django_db

RESOLVE = "/api/v1/customers/resolve"
CLOSED_PORT_CACHE = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
}


def _json(data) -> object:
    return json.loads(JSONRenderer().render(data))


def _activities(tenant, customer, count: int) -> None:
    start = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    Activity.objects.bulk_create(
        Activity(
            tenant=tenant,
            customer=customer,
            type="teetime.round.completed" if i % 3 else "pos.purchase.completed",
            category="golf" if i % 3 else "commerce",
            title=f"Round {i}",
            metadata={"score": 70 + i, "course": "Old", "nested": {"holes": [1, 2]}},
            source_service="teetime",
            source_id=f"r{i}",
            source_event_id=f"evt-{customer.pk}-{i}",
            # Pairs share a time, so the id decides their order.
            occurred_at=start - timedelta(hours=i // 2),
        )
        for i in range(count)
    )


# ----------------------------------------------------------------------------- query counts


def test_resolving_a_known_person_is_one_query(api_a, tenant_a):
    person(tenant_a, email="jo@example.com", phone="082 123 4567")
    api_a.post(RESOLVE, {"email": "jo@example.com"}, format="json")  # warm the key cache

    with CaptureQueriesContext(connection) as queries:
        response = api_a.post(RESOLVE, {"email": "jo@example.com"}, format="json")

    assert response.status_code == 200
    assert len(queries) == 1, [q["sql"] for q in queries.captured_queries]
    assert "customers_identityalias" in queries.captured_queries[0]["sql"]


def test_resolving_with_every_hint_known_is_still_one_query(api_a, tenant_a):
    person(tenant_a, email="jo@example.com", phone="082 123 4567", scl_member_id="S1")
    api_a.post(RESOLVE, {"email": "jo@example.com"}, format="json")
    body = {"email": "jo@example.com", "phone": "+27821234567", "scl_member_id": "S1"}

    with CaptureQueriesContext(connection) as queries:
        response = api_a.post(RESOLVE, body, format="json")

    assert response.status_code == 200
    assert len(queries) == 1


def test_the_timeline_first_page_is_one_query(api_a, tenant_a):
    golfer = person(tenant_a, email="jo@example.com")
    _activities(tenant_a, golfer, 120)
    url = f"/api/v1/customers/{golfer.pk}/timeline"
    api_a.get(url)

    for params in ({}, {"category": "commerce"}, {"page_size": 5}):
        with CaptureQueriesContext(connection) as queries:
            response = api_a.get(url, params)
        assert response.status_code == 200
        assert len(queries) == 1, (params, [q["sql"] for q in queries.captured_queries])


def test_without_redis_the_key_is_checked_in_the_database_every_time(api_a, tenant_a, monkeypatch):
    person(tenant_a, email="jo@example.com")
    api_a.post(RESOLVE, {"email": "jo@example.com"}, format="json")
    # The rate limiter pauses after a Redis failure; restored afterwards for later tests.
    monkeypatch.setattr(throttling, "_redis_down_until", 0.0)

    with override_settings(CACHES=CLOSED_PORT_CACHE), CaptureQueriesContext(connection) as queries:
        response = api_a.post(RESOLVE, {"email": "jo@example.com"}, format="json")

    assert response.status_code == 200
    assert len(queries) == 2  # the key, then the person
    assert "crm_apikey" in queries.captured_queries[0]["sql"]


# ----------------------------------------------------------------------------- the key cache


def test_a_key_revoked_in_another_process_is_refused_on_the_next_request(api_a, api_key_a):
    assert api_a.get("/api/v1/tenant").status_code == 200  # verified and cached here
    # Another process revokes it: the row changes (no signal here) and, once committed,
    # the credentials generation moves on.
    ApiKey.objects.filter(pk=api_key_a.api_key.pk).update(revoked_at=datetime.now(UTC))
    assert api_a.get("/api/v1/tenant").status_code == 200  # the generation has not moved yet
    redis_fast.counter_incr(services.CREDENTIALS_GENERATION_KEY, timeout=60)

    assert api_a.get("/api/v1/tenant").status_code == 401


def test_a_cached_key_is_checked_again_after_the_cache_lifetime(api_a, api_key_a, monkeypatch):
    assert api_a.get("/api/v1/tenant").status_code == 200
    ApiKey.objects.filter(pk=api_key_a.api_key.pk).update(revoked_at=datetime.now(UTC))
    monkeypatch.setattr(services, "API_KEY_CACHE_SECONDS", 0.0)  # the bump was lost

    assert api_a.get("/api/v1/tenant").status_code == 401


def test_a_wrong_secret_never_hits_the_cache(api_a, api_key_a):
    assert api_a.get("/api/v1/tenant").status_code == 200
    raw = api_key_a.raw_key
    wrong = raw[:-1] + ("A" if raw[-1] != "A" else "B")

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {wrong}")
    assert client.get("/api/v1/tenant").status_code == 401


def test_a_scope_change_applies_to_the_next_request(api_a, api_key_a):
    assert api_a.get("/api/v1/tenant").status_code == 200
    key = ApiKey.objects.get(pk=api_key_a.api_key.pk)
    key.scopes = ["events:write"]
    key.save()  # as the admin does

    assert api_a.get("/api/v1/customers").status_code == 403


# ----------------------------------------------------------------------------- same output


def test_resolve_answers_what_the_output_serializer_gives(api_a, tenant_a):
    known = person(tenant_a, email="jo@example.com", scl_member_id="S1")
    CustomerProfile.objects.filter(pk=known.pk).update(
        first_name="Jo",
        tags=["vip", "junior"],
        date_of_birth=datetime(1990, 2, 3).date(),
        email_opt_in=True,
        email_consent_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        handicap_index="12.4",
    )
    person(tenant_a, email="other@example.com", phone="082 123 4567")
    body = {"email": "Jo@Example.com ", "phone": "082 123 4567", "scl_member_id": "S1"}

    response = api_a.post(RESOLVE, body, format="json")

    resolution = resolve(tenant_a, **body)  # the same again: nothing new to attach
    expected = ResolveOutputSerializer(
        {
            "profile": CustomerProfile.objects.get(pk=known.pk),
            "is_new": False,
            "matched_by": resolution.matched_by,
            "confidence": resolution.confidence,
            "merge_suggested_with": response.json()["merge_suggested_with"],
        }
    ).data
    assert response.status_code == 200
    assert response.json() == _json(expected)
    assert response.json()["merge_suggested_with"]  # the phone belongs to someone else


def test_a_known_person_is_answered_from_the_loaded_columns_as_the_serializer_would(
    api_a, tenant_a
):
    known = person(tenant_a, email="jo@example.com", scl_member_id="S1")
    CustomerProfile.objects.filter(pk=known.pk).update(
        first_name="Jo",
        last_name="Ndlovu",
        tags=["vip", "junior"],
        external_ids={"pos": "P-9"},
        date_of_birth=datetime(1990, 2, 3).date(),
        email_opt_in=True,
        email_consent_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        handicap_index="12.4",
    )
    body = {"email": "Jo@Example.com ", "scl_member_id": "S1"}

    resolution = resolve(tenant_a, **body)
    response = api_a.post(RESOLVE, body, format="json")

    assert resolution.values is not None  # the fast path: no model instance was built
    stored = CustomerProfile.objects.get(pk=known.pk)
    expected = ResolveOutputSerializer(
        {
            "profile": stored,
            "is_new": False,
            "matched_by": ["email", "scl_member_id"],
            "confidence": resolution.confidence,
            "merge_suggested_with": [],
        }
    ).data
    assert response.status_code == 200
    assert response.json() == _json(expected)
    # The instance built on demand from the same columns is the stored profile.
    built = resolution.profile
    assert built is not None
    assert {
        f.attname: getattr(built, f.attname) for f in CustomerProfile._meta.concrete_fields
    } == {f.attname: getattr(stored, f.attname) for f in CustomerProfile._meta.concrete_fields}
    assert built._state.adding is False and built._state.db == "default"


def test_the_timeline_answers_what_the_activity_serializer_gives(api_a, tenant_a):
    golfer = person(tenant_a, email="jo@example.com")
    _activities(tenant_a, golfer, 30)
    url = f"/api/v1/customers/{golfer.pk}/timeline"

    for params in ({}, {"page_size": 7}, {"category": "commerce", "page_size": 4}):
        response = api_a.get(url, params)
        page = timeline_page(
            tenant=tenant_a,
            customer=golfer,
            categories=[params["category"]] if "category" in params else (),
            page_size=params.get("page_size", 50),
        )
        assert response.json() == _json(
            {
                "results": ActivitySerializer(page.activities, many=True).data,
                "next_cursor": page.next_cursor,
            }
        )
        cursor = response.json()["next_cursor"]
        if cursor:  # the next page too
            second = api_a.get(url, {**params, "cursor": cursor}).json()
            page = timeline_page(
                tenant=tenant_a,
                customer=golfer,
                categories=[params["category"]] if "category" in params else (),
                page_size=params.get("page_size", 50),
                cursor=cursor,
            )
            assert second["results"] == _json(ActivitySerializer(page.activities, many=True).data)


def _timeline_ids(rows) -> list[int]:
    return [row[0] for row in rows.rows] if rows is not None else []


TIMELINE_SHAPES = (
    {},
    {"categories": ["commerce"]},
    {"categories": ["golf", "commerce", "golf"]},  # a repeated value, as the ORM drops it
    {"types": ["pos.purchase.completed"]},
    {"since": datetime(2026, 4, 25, tzinfo=UTC), "until": datetime(2026, 4, 30, tzinfo=UTC)},
    {"page_size": 4},
)


def test_the_timeline_statement_is_compiled_once_per_shape_and_checked(tenant_a, tenant_b):
    golfer, other = person(tenant_a, email="jo@example.com"), person(tenant_a, email="al@x.com")
    _activities(tenant_a, golfer, 30)
    _activities(tenant_a, other, 12)
    timeline._TIMELINE_SQL.clear()

    for shape in TIMELINE_SHAPES:
        for customer in (golfer, other, golfer):  # the second and third from the stored statement
            size = shape.get("page_size", 50)
            filters = {k: v for k, v in shape.items() if k != "page_size"}
            rows = timeline_rows_of_live_customer(
                tenant=tenant_a, customer_id=str(customer.pk), page_size=size, **filters
            )
            page = timeline_page(tenant=tenant_a, customer=customer, page_size=size, **filters)
            assert _timeline_ids(rows) == [a.pk for a in page.activities], shape
            assert rows is not None and rows.next_cursor == page.next_cursor
            if page.next_cursor:
                kwargs = {**filters, "cursor": page.next_cursor}
                rows = timeline_rows_of_live_customer(
                    tenant=tenant_a, customer_id=customer.pk, page_size=size, **kwargs
                )
                page = timeline_page(tenant=tenant_a, customer=customer, page_size=size, **kwargs)
                assert _timeline_ids(rows) == [a.pk for a in page.activities], shape

    # Every shape's parameters matched the ORM's, so each statement is reused.
    assert timeline._TIMELINE_SQL and all(timeline._TIMELINE_SQL.values())
    # The stored statements still check the tenant and the live profile.
    assert timeline_rows_of_live_customer(tenant=tenant_b, customer_id=golfer.pk) is None
    CustomerProfile.objects.filter(pk=other.pk).update(deleted_at=datetime.now(UTC))
    assert timeline_rows_of_live_customer(tenant=tenant_a, customer_id=other.pk) is None


def test_a_timeline_shape_whose_parameters_differ_from_the_orms_is_compiled_every_time(
    tenant_a, monkeypatch
):
    golfer = person(tenant_a, email="jo@example.com")
    _activities(tenant_a, golfer, 10)
    timeline._TIMELINE_SQL.clear()
    right = timeline._timeline_params
    # As if the ORM's order had changed: the check fails and the statement is not reused.
    monkeypatch.setattr(timeline, "_timeline_params", lambda **kw: right(**kw)[::-1])

    for _ in range(2):
        rows = timeline_rows_of_live_customer(tenant=tenant_a, customer_id=golfer.pk)
        page = timeline_page(tenant=tenant_a, customer=golfer)
        assert _timeline_ids(rows) == [a.pk for a in page.activities]

    assert list(timeline._TIMELINE_SQL.values()) == [None]


def test_the_timeline_of_a_customer_without_activities_is_an_empty_page(api_a, tenant_a):
    golfer = person(tenant_a, email="jo@example.com")
    response = api_a.get(f"/api/v1/customers/{golfer.pk}/timeline")
    assert response.status_code == 200
    assert response.json() == {"results": [], "next_cursor": None}


def test_the_timeline_404s_are_the_detail_routes_404s(api_a, api_b, tenant_a):
    winner = person(tenant_a, email="w@example.com")
    loser = person(tenant_a, email="l@example.com")
    profile_merge(tenant=tenant_a, winner=winner, loser=loser, actor="test")

    for client, pk in (
        (api_a, loser.pk),  # merged
        (api_a, "1b4e28ba-2fa1-11d2-883f-0016d3cca427"),  # nobody
        (api_a, "not-a-uuid"),
        (api_b, winner.pk),  # another tenant's
    ):
        timeline = client.get(f"/api/v1/customers/{pk}/timeline")
        detail = client.get(f"/api/v1/customers/{pk}")
        assert timeline.status_code == detail.status_code == 404
        assert timeline.json() == detail.json()


@pytest.mark.parametrize(
    "body",
    [
        {"email": "jo@example.com"},
        {"email": "  Jo@Example.COM  ", "phone": "082 123 4567"},
        {"phone": "+27821234567", "scl_member_id": " S1 ", "unknown": "ignored"},
        {"auth_user_id": "u-1", "teetime_player_id": "p", "messaging_contact_id": "m"},
        {"email": "", "phone": "082 123 4567"},
        {},
        {"email": ""},
        {"email": "   "},
        {"email": "not-an-email"},
        {"phone": "12"},
        {"email": None},
        {"email": 5},
        {"scl_member_id": 12345},
        {"scl_member_id": True},
        {"email": ["jo@example.com"]},
        {"email": "jo\x00@example.com"},
        {"email": "jö@example.com"},
        {"scl_member_id": "x" * 64},
        {"scl_member_id": "x" * 65},
        {"scl_member_id": " " + "x" * 64},
        {"external_ids": {"golfrsa": "123"}},
        {"external_ids": ["x"]},
        ["jo@example.com"],
    ],
)
def test_the_plain_hint_path_accepts_only_what_the_serializer_accepts_the_same_way(body, tenant_a):
    serializer = HintsSerializer(data=body, context={"tenant": tenant_a})
    valid = serializer.is_valid()

    fast = plain_hints(body, phone_region=tenant_a.default_phone_region)

    if fast is not None:
        assert valid
        assert fast == serializer.validated_data["hints"]
    if not valid:
        assert fast is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"phone": "12"}, "phone"),
        ({"email": "x" * 255}, "email"),
        ({"email": None}, "email"),
        ({"email": "jo\x00@example.com"}, "email"),
        ({}, "non_field_errors"),
    ],
)
def test_bad_hints_get_the_serializers_error_body(api_a, tenant_a, body, field):
    response = api_a.post(RESOLVE, body, format="json")
    serializer = HintsSerializer(data=body, context={"tenant": tenant_a})
    assert not serializer.is_valid()

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == _json(serializer.errors)
    assert field in response.json()["error"]["fields"]


# ----------------------------------------------------------------------------- prepared


def test_the_identity_lookup_is_prepared_once_on_the_connection(api_a, tenant_a, settings):
    """Straight to PostgreSQL the lookup is prepared once; behind PgBouncer in transaction
    mode (``make test-pgbouncer``, DATABASE_PREPARED_STATEMENTS off) nothing is, and the
    same resolves still answer."""
    person(tenant_a, email="jo@example.com")
    for _ in range(3):
        assert api_a.post(RESOLVE, {"email": "jo@example.com"}, format="json").status_code == 200

    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]

    if not settings.DATABASE_PREPARED_STATEMENTS:
        assert prepared == []
        return
    lookups = [sql for sql in prepared if "customers_identityalias" in sql]
    assert len(lookups) == 1, prepared
    assert all("crm_apikey" not in sql for sql in prepared)  # nothing else is prepared
