"""Property: for random criteria and random profiles, the SQL compilation and the Python
evaluation choose exactly the same people."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm import rules
from customers.models import CustomerProfile, LifecycleStage

NOW = datetime(2026, 11, 24, 6, 30, tzinfo=UTC)
TZS = [ZoneInfo("Africa/Johannesburg"), ZoneInfo("Europe/London")]

# Small domains, so rules and profiles meet often (empty values included).
TEXT = {
    "first_name": ["", "Ann", "ann", "Anne", "Bob"],
    "last_name": ["", "Botha", "van der Merwe", "Smith"],
    "membership_type": ["", "Full", "Weekday"],
}
NUMBERS = {
    "handicap_index": [None, Decimal("-2.0"), Decimal("0.0"), Decimal("12.4"), Decimal("24.0")],
    "activity_count_30d": [0, 1, 3, 5],
}
MONEY = [0, 90_000, 250_000]  # minor units
DATES = [None, date(1989, 12, 31), date(1990, 1, 1), date(1990, 1, 2)]
# Includes local midnights exactly: 22:00 UTC is midnight in Johannesburg, 00:00 UTC in London.
MOMENTS = [None] + [
    NOW + timedelta(hours=h) for h in (-32.5, -30.5, -24, -8.5, -7, -6.5, -5, -1, 0, 2)
]
TAGS = ["a", "b", "c"]
STAGES = list(LifecycleStage.values)


def profile_values():
    return st.fixed_dictionaries(
        {
            **{name: st.sampled_from(values) for name, values in TEXT.items()},
            **{name: st.sampled_from(values) for name, values in NUMBERS.items()},
            "lifetime_value_minor": st.sampled_from(MONEY),
            "date_of_birth": st.sampled_from(DATES),
            "last_activity_at": st.sampled_from(MOMENTS),
            "email_consent_at": st.sampled_from(MOMENTS),
            "email_opt_in": st.booleans(),
            "sms_opt_in": st.booleans(),
            "lifecycle_stage": st.sampled_from(STAGES),
            "tags": st.lists(st.sampled_from(TAGS), unique=True, max_size=3),
        }
    )


def _moment_value():
    absolute = st.sampled_from([m for m in MOMENTS if m]).map(lambda m: m.isoformat())
    relative = st.builds(
        lambda key, n: {key: n}, st.sampled_from(["days_ago", "days_from_now"]), st.integers(0, 3)
    )
    day = st.sampled_from(["2026-11-22", "2026-11-23", "2026-11-24"])
    return st.one_of(absolute, relative, day)


def _date_value():
    fixed = st.sampled_from([d for d in DATES if d]).map(date.isoformat)
    relative = st.builds(lambda n: {"days_ago": n}, st.sampled_from([13476, 13477, 13478]))
    return st.one_of(fixed, relative)


def _leaf():
    text_rules = st.sampled_from(list(TEXT)).flatmap(
        lambda name: st.one_of(
            st.builds(
                lambda op, v: {"field": name, "operator": op, "value": v},
                st.sampled_from(["eq", "neq", "contains"]),
                st.sampled_from([v for v in TEXT[name] if v] + ["AN", "er"]),
            ),
            st.builds(
                lambda vs: {"field": name, "operator": "in", "value": vs},
                st.lists(st.sampled_from([v for v in TEXT[name] if v]), min_size=1, max_size=2),
            ),
        )
    )
    number_rules = st.sampled_from(list(NUMBERS)).flatmap(
        lambda name: st.builds(
            lambda op, v: {"field": name, "operator": op, "value": v},
            st.sampled_from(["eq", "neq", "gt", "gte", "lt", "lte"]),
            st.sampled_from(
                [str(v) for v in NUMBERS[name] if v is not None]
                + (["1.5"] if name == "handicap_index" else ["2"])
            ),
        )
    )
    money_rules = st.builds(
        lambda op, v: {"field": "lifetime_value", "operator": op, "value": v},
        st.sampled_from(["eq", "neq", "gt", "gte", "lt", "lte"]),
        st.sampled_from([0, 900, 2500, "899.99"]),
    )
    moment_rules = st.builds(
        lambda name, op, v: {"field": name, "operator": op, "value": v},
        st.sampled_from(["last_activity_at", "email_consent_at"]),
        st.sampled_from(["eq", "neq", "gt", "gte", "lt", "lte"]),
        _moment_value(),
    )
    date_rules = st.builds(
        lambda op, v: {"field": "date_of_birth", "operator": op, "value": v},
        st.sampled_from(["eq", "neq", "gt", "gte", "lt", "lte"]),
        _date_value(),
    )
    bool_rules = st.builds(
        lambda name, op, v: {"field": name, "operator": op, "value": v},
        st.sampled_from(["email_opt_in", "sms_opt_in"]),
        st.sampled_from(["eq", "neq"]),
        st.booleans(),
    )
    enum_rules = st.one_of(
        st.builds(
            lambda op, v: {"field": "lifecycle_stage", "operator": op, "value": v},
            st.sampled_from(["eq", "neq"]),
            st.sampled_from(STAGES),
        ),
        st.builds(
            lambda vs: {"field": "lifecycle_stage", "operator": "in", "value": vs},
            st.lists(st.sampled_from(STAGES), min_size=1, max_size=3),
        ),
    )
    tag_rules = st.one_of(
        st.builds(
            lambda v: {"field": "tags", "operator": "contains", "value": v}, st.sampled_from(TAGS)
        ),
        st.builds(
            lambda vs: {"field": "tags", "operator": "in", "value": vs},
            st.lists(st.sampled_from(TAGS), min_size=1, max_size=2),
        ),
    )
    null_rules = st.builds(
        lambda name, op: {"field": name, "operator": op},
        st.sampled_from(
            [
                "first_name",
                "handicap_index",
                "date_of_birth",
                "last_activity_at",
                "tags",
                "membership_type",
                "email_consent_at",
            ]
        ),
        st.sampled_from(["isNull", "isNotNull"]),
    )
    return st.one_of(
        text_rules,
        number_rules,
        money_rules,
        moment_rules,
        date_rules,
        bool_rules,
        enum_rules,
        tag_rules,
        null_rules,
    )


criteria_strategy = st.recursive(
    st.builds(
        lambda c, rs: {"combinator": c, "rules": rs},
        st.sampled_from(["AND", "OR"]),
        st.lists(_leaf(), min_size=1, max_size=3),
    ),
    lambda children: st.builds(
        lambda c, rs: {"combinator": c, "rules": rs},
        st.sampled_from(["AND", "OR"]),
        st.lists(st.one_of(_leaf(), children), min_size=1, max_size=3),
    ),
    max_leaves=8,
)


@pytest.mark.django_db
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    criteria=criteria_strategy,
    profiles=st.lists(profile_values(), min_size=1, max_size=8),
    tz=st.sampled_from(TZS),
    hours=st.sampled_from([0, 15, 17.5, 21.9, 22.1]),
)
def test_sql_and_python_choose_the_same_people(tenant_a, criteria, profiles, tz, hours):
    context = rules.Context(tz=tz, now=NOW + timedelta(hours=hours), tenant=tenant_a)
    group = rules.parse(criteria)
    with transaction.atomic():
        CustomerProfile.objects.bulk_create(
            CustomerProfile(tenant=tenant_a, email=f"p{i}@example.com", **values)
            for i, values in enumerate(profiles)
        )
        stored = list(CustomerProfile.objects.for_tenant(tenant_a))
        by_sql = set(
            CustomerProfile.objects.for_tenant(tenant_a)
            .filter(rules.to_q(group, context))
            .values_list("pk", flat=True)
        )
        by_python = {p.pk for p in stored if rules.evaluate(group, p, context)}
        transaction.set_rollback(True)
    assert by_sql == by_python
