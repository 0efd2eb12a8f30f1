"""The rule engine: validation with paths, every operator of every type (SQL and Python
agree, and give the expected people), nested groups, relative dates around midnight."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from crm import rules
from customers.models import Activity, CustomerProfile
from tests.customers.helpers import person

pytestmark = pytest.mark.django_db
JHB = ZoneInfo("Africa/Johannesburg")
LDN = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def ctx(tz=JHB, now=NOW, tenant=None):
    return rules.Context(tz=tz, now=now, tenant=tenant)


def both(tenant, criteria, context=None):
    """The people the criteria choose, by SQL and by Python; asserts they agree."""
    context = context or ctx(tenant=tenant)
    group = rules.parse(criteria)
    people = list(CustomerProfile.objects.for_tenant(tenant))
    by_sql = set(
        CustomerProfile.objects.for_tenant(tenant)
        .filter(rules.to_q(group, context))
        .values_list("email", flat=True)
    )
    by_python = {p.email for p in people if rules.evaluate(group, p, context)}
    assert by_sql == by_python, (criteria, by_sql, by_python)
    return by_sql


def rule(field, operator, value=None, **extra):
    item = {"field": field, "operator": operator, **extra}
    if value is not None:
        item["value"] = value
    return {"combinator": "AND", "rules": [item]}


@pytest.fixture
def people(tenant_a):
    def make(email, **fields):
        profile = person(tenant_a, email=email)
        CustomerProfile.objects.filter(pk=profile.pk).update(**fields)
        return profile

    make(
        "ann@example.com",
        first_name="Ann",
        last_name="Botha",
        lifecycle_stage="MEMBER",
        tags=["competitions", "ladies"],
        email_opt_in=True,
        handicap_index=Decimal("12.4"),
        lifetime_value_minor=250_000,
        date_of_birth=date(1960, 5, 1),
        last_activity_at=datetime(2026, 11, 23, 21, 30, tzinfo=UTC),  # 23:30 on the 23rd, JHB
        activity_count_30d=4,
    )
    make(
        "bob@example.com",
        first_name="Bob",
        last_name="van der Merwe",
        lifecycle_stage="LAPSED",
        tags=["seniors"],
        email_opt_in=False,
        handicap_index=Decimal("24.0"),
        lifetime_value_minor=90_000,
        date_of_birth=date(1990, 1, 15),
        last_activity_at=datetime(2026, 9, 1, 8, 0, tzinfo=UTC),
        activity_count_30d=0,
        membership_type="Weekday",
    )
    make("cat@example.com", first_name="", lifecycle_stage="VISITOR", tags=[])
    return tenant_a


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("criteria", "path", "message"),
    [
        ({"rules": []}, "rules", "at least one rule"),
        (
            {"combinator": "XOR", "rules": [{"field": "email", "operator": "isNull"}]},
            "combinator",
            "AND or OR",
        ),
        (rule("password", "eq", "x"), "rules[0].field", "Unknown field"),
        (rule("merged_into__email", "eq", "x"), "rules[0].field", "Unknown field"),
        (rule("email", "gt", "x"), "rules[0].operator", "does not apply"),
        (rule("tags", "eq", "x"), "rules[0].operator", "does not apply"),
        (rule("handicap_index", "gt", "low"), "rules[0].value", "number"),
        (rule("handicap_index", "gt", True), "rules[0].value", "number"),
        (rule("activity_count_30d", "eq", 1.5), "rules[0].value", "whole number"),
        (rule("email_opt_in", "eq", "yes"), "rules[0].value", "true or false"),
        (rule("lifecycle_stage", "eq", "VIP"), "rules[0].value", "one of"),
        (rule("lifecycle_stage", "in", []), "rules[0].value", "non-empty list"),
        (rule("date_of_birth", "lt", "01/02/1990"), "rules[0].value", "YYYY-MM-DD"),
        (rule("last_activity_at", "lt", {"weeks_ago": 2}), "rules[0].value", "days_ago"),
        (rule("last_activity_at", "lt", {"days_ago": -1}), "rules[0].value", "whole number"),
        (rule("last_activity_at", "lt", "2026-11-01T10:00:00"), "rules[0].value", "UTC offset"),
        (rule("email", "eq"), "rules[0].value", "required"),
        (rule("email", "isNull", "x"), "rules[0].value", "takes no value"),
        (rule("activity_count", "gte", 1), "rules[0].params", "days"),
        (
            rule("activity_count", "gte", 1, params={"days": 7, "category": "sport"}),
            "rules[0].params",
            "category",
        ),
        (rule("home_club", "eq", "not-a-uuid"), "rules[0].value", "UUID"),
        (
            {
                "combinator": "AND",
                "rules": [
                    {
                        "combinator": "OR",
                        "rules": [
                            {"field": "email", "operator": "isNull"},
                            {"field": "nope", "operator": "eq"},
                        ],
                    }
                ],
            },
            "rules[0].rules[1].field",
            "Unknown field",
        ),
    ],
)
def test_invalid_criteria_name_the_offending_rule(criteria, path, message):
    with pytest.raises(rules.RuleError) as caught:
        rules.parse(criteria)
    errors = caught.value.message_dict
    assert path in errors, errors
    assert any(message in m for m in errors[path]), errors


def test_nesting_is_bounded():
    criteria = {"field": "email", "operator": "isNull"}
    for _ in range(rules.MAX_DEPTH + 1):
        criteria = {"combinator": "AND", "rules": [criteria]}
    with pytest.raises(rules.RuleError, match="nest at most"):
        rules.parse(criteria)


def test_the_registry_describes_fields_for_editors():
    described = {f["field"]: f for f in rules.registry("customer").describe()}
    assert described["lifecycle_stage"]["choices"][:2] == ["SUBSCRIBER", "LEAD"]
    assert "contains" in described["tags"]["operators"]
    assert "gt" not in described["email"]["operators"]
    assert "segment" in described  # added by the marketing app


# ----------------------------------------------------------------------------- operators


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        # string
        (rule("first_name", "eq", "Ann"), {"ann"}),
        (rule("first_name", "neq", "Ann"), {"bob", "cat"}),
        (rule("last_name", "contains", "MERWE"), {"bob"}),
        (rule("first_name", "in", ["Ann", "Bob"]), {"ann", "bob"}),
        (rule("first_name", "isNull"), {"cat"}),  # "" counts as not known
        (rule("first_name", "isNotNull"), {"ann", "bob"}),
        (rule("membership_type", "neq", "Weekday"), {"ann", "cat"}),
        # number
        (rule("handicap_index", "eq", 12.4), {"ann"}),
        (rule("handicap_index", "neq", "12.4"), {"bob", "cat"}),  # empty counts as different
        (rule("handicap_index", "gt", 12.4), {"bob"}),
        (rule("handicap_index", "gte", 12.4), {"ann", "bob"}),
        (rule("handicap_index", "lt", 24), {"ann"}),
        (rule("handicap_index", "lte", 24), {"ann", "bob"}),
        (rule("handicap_index", "in", [24, 1]), {"bob"}),
        (rule("handicap_index", "isNull"), {"cat"}),
        (rule("activity_count_30d", "gt", 0), {"ann"}),
        # money (major units in, minor units stored)
        (rule("lifetime_value", "gte", 2500), {"ann"}),
        (rule("lifetime_value", "lt", "900.01"), {"bob", "cat"}),
        (rule("lifetime_value", "eq", 900), {"bob"}),
        # boolean
        (rule("email_opt_in", "eq", True), {"ann"}),
        (rule("email_opt_in", "neq", True), {"bob", "cat"}),
        # enum
        (rule("lifecycle_stage", "eq", "LAPSED"), {"bob"}),
        (rule("lifecycle_stage", "in", ["MEMBER", "VISITOR"]), {"ann", "cat"}),
        (rule("lifecycle_stage", "neq", "MEMBER"), {"bob", "cat"}),
        # tags
        (rule("tags", "contains", "ladies"), {"ann"}),
        (rule("tags", "in", ["seniors", "ladies"]), {"ann", "bob"}),
        (rule("tags", "isNull"), {"cat"}),
        (rule("tags", "isNotNull"), {"ann", "bob"}),
        # date
        (rule("date_of_birth", "lt", "1970-01-01"), {"ann"}),
        (rule("date_of_birth", "eq", "1990-01-15"), {"bob"}),
        (rule("date_of_birth", "gte", {"days_ago": 365 * 50}), {"bob"}),
        (rule("date_of_birth", "isNull"), {"cat"}),
        # date-time, absolute and by day
        (rule("last_activity_at", "gt", "2026-10-01T00:00:00Z"), {"ann"}),
        (rule("last_activity_at", "lt", {"days_ago": 30}), {"bob"}),
        (rule("last_activity_at", "neq", "2026-11-23"), {"bob", "cat"}),
        (rule("last_activity_at", "isNull"), {"cat"}),
    ],
)
def test_every_operator_of_every_type(people, criteria, expected):
    chosen = both(people, criteria)
    assert chosen == {f"{name}@example.com" for name in expected}


def test_nested_groups(people):
    criteria = {
        "combinator": "OR",
        "rules": [
            {"field": "lifecycle_stage", "operator": "eq", "value": "VISITOR"},
            {
                "combinator": "AND",
                "rules": [
                    {"field": "tags", "operator": "contains", "value": "seniors"},
                    {"field": "last_activity_at", "operator": "lt", "value": {"days_ago": 30}},
                ],
            },
        ],
    }
    assert both(people, criteria) == {"cat@example.com", "bob@example.com"}


def test_a_date_time_day_is_the_tenants_calendar_day(people):
    # Ann's last activity is 21:30 UTC on the 23rd: 23:30 in Johannesburg (the 23rd) but
    # already... also the 23rd in London (21:30 GMT). A day later in JHB it is "1 day ago".
    day_before = rule("last_activity_at", "eq", {"days_ago": 1})
    assert both(people, day_before, ctx(JHB)) == {"ann@example.com"}
    assert both(people, day_before, ctx(LDN)) == {"ann@example.com"}


@pytest.mark.parametrize(
    ("tz", "moment", "expected_day"),
    [
        # 22:30 UTC is 00:30 the next day in Johannesburg (UTC+2) but 22:30 in London (winter).
        (JHB, datetime(2026, 11, 23, 22, 30, tzinfo=UTC), "today"),
        (LDN, datetime(2026, 11, 23, 22, 30, tzinfo=UTC), "yesterday"),
        # Summer: London is UTC+1, so 23:30 UTC on 30 June is 00:30 on 1 July there.
        (LDN, datetime(2026, 6, 30, 23, 30, tzinfo=UTC), "today"),
        (JHB, datetime(2026, 6, 30, 21, 59, tzinfo=UTC), "yesterday"),
    ],
)
def test_relative_days_around_midnight_in_za_and_uk(tenant_a, tz, moment, expected_day):
    profile = person(tenant_a, email="night@example.com")
    CustomerProfile.objects.filter(pk=profile.pk).update(last_activity_at=moment)
    # "now" is the next local morning, 08:00, of the day after ``moment``'s UTC date.
    local_morning = datetime.combine(moment.date() + timedelta(days=1), datetime.min.time(), tz)
    now = (local_morning + timedelta(hours=8)).astimezone(UTC)
    context = ctx(tz, now)
    today = both(tenant_a, rule("last_activity_at", "eq", {"days_ago": 0}), context)
    yesterday = both(tenant_a, rule("last_activity_at", "eq", {"days_ago": 1}), context)
    assert (today if expected_day == "today" else yesterday) == {"night@example.com"}
    assert (yesterday if expected_day == "today" else today) == set()
    # "Before today" and "on or after today" split at the local midnight.
    before = both(tenant_a, rule("last_activity_at", "lt", {"days_ago": 0}), context)
    assert bool(before) == (expected_day == "yesterday")


def test_activity_count_in_the_last_days(people, tenant_a):
    ann = CustomerProfile.objects.get(email="ann@example.com")
    for days, type_ in (
        (2, "teetime.round.completed"),
        (5, "teetime.round.completed"),
        (40, "teetime.round.completed"),
        (1, "teetime.booking.paid"),
    ):
        Activity.objects.create(
            tenant=tenant_a,
            customer=ann,
            type=type_,
            category="golf",
            title="x",
            source_service="teetime",
            source_event_id=f"{type_}-{days}",
            occurred_at=NOW - timedelta(days=days),
        )
    rounds = {"days": 30, "type": "teetime.round.completed"}
    assert both(people, rule("activity_count", "gte", 2, params=rounds)) == {"ann@example.com"}
    assert both(people, rule("activity_count", "gte", 3, params=rounds)) == set()
    assert both(people, rule("activity_count", "eq", 0, params={"days": 30})) == {
        "bob@example.com",
        "cat@example.com",
    }
    assert both(people, rule("activity_count", "neq", 0, params={"days": 3})) == {"ann@example.com"}
    golf = {"days": 365, "category": "golf"}
    assert both(people, rule("activity_count", "gt", 3, params=golf)) == {"ann@example.com"}


@pytest.mark.parametrize("tz", [JHB, LDN])
def test_a_moment_exactly_at_local_midnight_belongs_to_the_new_day(tenant_a, tz):
    midnight = datetime(2026, 11, 24, 0, 0, tzinfo=tz)
    profile = person(tenant_a, email="midnight@example.com")
    CustomerProfile.objects.filter(pk=profile.pk).update(last_activity_at=midnight)
    context = ctx(tz, now=midnight + timedelta(hours=9))
    chosen = {"midnight@example.com"}
    for op, days, expected in (
        ("eq", 0, chosen),
        ("gte", 0, chosen),
        ("lt", 0, set()),
        ("lte", 1, set()),
        ("gt", 1, chosen),
        ("eq", 1, set()),
    ):
        got = both(tenant_a, rule("last_activity_at", op, {"days_ago": days}), context)
        assert got == expected, (op, days)


@pytest.mark.parametrize(
    ("criteria", "message"),
    [
        (rule("last_activity_at", "eq", "9999-12-31"), "from 1000-01-01 to 9998-12-31"),
        (rule("last_activity_at", "lt", "0001-01-01"), "from 1000-01-01 to 9998-12-31"),
        (rule("date_of_birth", "gt", "9999-12-31"), "from 1000-01-01 to 9998-12-31"),
        (rule("date_of_birth", "gt", "0000-01-01"), "YYYY-MM-DD"),
        (rule("date_of_birth", "gt", "10000-01-01"), "YYYY-MM-DD"),
        (rule("last_activity_at", "lt", "0001-01-01T00:00:00+14:00"), "from 1000-01-01"),
        (rule("last_activity_at", "lt", "9999-12-31T23:59:59-10:00"), "from 1000-01-01"),
        (rule("last_activity_at", "lt", "2026-01-01T00:00:00+20:00"), "UTC offset"),
        (rule("last_activity_at", "lt", {"days_ago": 10**30}), "whole number"),
        (rule("last_activity_at", "lt", {"days_from_now": 36_501}), "whole number"),
        (rule("email", "eq", "a\u0000b"), "NUL"),
    ],
)
def test_extreme_dates_and_nul_are_refused_with_the_rule_path(criteria, message):
    with pytest.raises(rules.RuleError) as caught:
        rules.parse(criteria)
    errors = caught.value.message_dict
    assert any(message in m for m in errors["rules[0].value"]), errors


def test_the_latest_allowed_day_still_compiles_and_runs(tenant_a):
    # The day after it, which a date-time day needs as its end, is still in the calendar.
    assert both(tenant_a, rule("last_activity_at", "lte", "9998-12-31")) == set()


def test_an_extreme_date_in_a_segment_preview_is_400(api_a, tenant_a):
    body = {"criteria": rule("last_activity_at", "eq", "9999-12-31")}
    response = api_a.post("/api/v1/segments/preview", body, format="json")
    assert response.status_code == 400
    assert "rules[0].value" in json.dumps(response.json()["error"]["fields"])
