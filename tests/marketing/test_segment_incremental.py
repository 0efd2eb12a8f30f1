"""Incremental segment refresh: after a change, a refresh that checks only the people who
changed (and those a relative day's move puts at the boundary) gives exactly the members
and the entered/left history a full refresh gives; writes another session has not yet
committed are picked up by the next refresh; tenants stay apart; rules that read other
tables refresh in full.

These tests commit (``transaction=True``): the refresh tells what changed by which
transactions its previous snapshot could see, so every step must be its own transaction.
"""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from customers.models import CustomerProfile, ProfileStatus
from marketing.models import ChangeKind, SegmentChange, SegmentMembership
from marketing.segments import segment_create, segment_refresh, segment_update
from tests.factories import TenantFactory
from tests.worker import subprocess_database_url

pytestmark = pytest.mark.django_db(transaction=True)

STAGES = ["MEMBER", "LAPSED", "VISITOR", "PROSPECT"]
RULES = {
    "enum": {"field": "lifecycle_stage", "operator": "in", "value": ["MEMBER", "LAPSED"]},
    "boolean": {"field": "email_opt_in", "operator": "eq", "value": True},
    "number": {"field": "handicap_index", "operator": "lt", "value": 18},
    "tags": {"field": "tags", "operator": "contains", "value": "juniors"},
    "null": {"field": "date_of_birth", "operator": "isNull"},
    "relative_datetime": {
        "field": "last_activity_at",
        "operator": "gte",
        "value": {"days_ago": 30},
    },
    "relative_date": {
        "field": "membership_renewal_on",
        "operator": "lte",
        "value": {"days_from_now": 14},
    },
}
CRITERIA = {
    "and": {
        "combinator": "AND",
        "rules": [RULES["boolean"], RULES["enum"], RULES["relative_datetime"]],
    },
    "or": {
        "combinator": "OR",
        "rules": [
            RULES["tags"],
            {"combinator": "AND", "rules": [RULES["number"], RULES["null"]]},
            RULES["relative_date"],
        ],
    },
    "number": {"combinator": "AND", "rules": [RULES["number"]]},
}


def _random_fields(rng: random.Random, now) -> dict:
    return {
        "lifecycle_stage": rng.choice(STAGES),
        "email_opt_in": rng.random() < 0.6,
        "handicap_index": Decimal(rng.randrange(0, 360)) / 10,
        "tags": ["juniors"] if rng.random() < 0.2 else [],
        "date_of_birth": None if rng.random() < 0.5 else (now - timedelta(days=9000)).date(),
        "last_activity_at": now - timedelta(hours=rng.randrange(0, 24 * 60)),
        "membership_renewal_on": (now + timedelta(days=rng.randrange(-10, 40))).date(),
    }


def _population(tenant, count: int, seed: int) -> list[CustomerProfile]:
    rng = random.Random(seed)
    now = timezone.now()
    return CustomerProfile.objects.bulk_create(
        CustomerProfile(tenant=tenant, email=f"p{seed}-{i}@example.com", **_random_fields(rng, now))
        for i in range(count)
    )


def _members(segment) -> set:
    return set(
        SegmentMembership.objects.filter(segment=segment).values_list("customer_id", flat=True)
    )


def _history(segment, after: int = 0) -> set:
    return set(
        SegmentChange.objects.filter(segment=segment, id__gt=after).values_list(
            "customer_id", "kind"
        )
    )


def _last_change_id() -> int:
    return SegmentChange.objects.order_by("-id").values_list("id", flat=True).first() or 0


def _pair(tenant, criteria, name: str):
    """The segment refreshed incrementally, and a twin refreshed in full every time."""
    incremental = segment_create(tenant=tenant, data={"name": name, "criteria": criteria})
    full = segment_create(tenant=tenant, data={"name": f"{name} (full)", "criteria": criteria})
    return incremental, full


def _refresh_both(incremental, full, now):
    mark = _last_change_id()
    fast = segment_refresh(segment=incremental, now=now)
    slow = segment_refresh(segment=full, now=now, full=True)
    assert _members(incremental) == _members(full)
    assert _history(incremental, mark) == _history(full, mark)
    assert (fast.members, fast.entered, fast.left) == (slow.members, slow.entered, slow.left)
    return fast, slow


@pytest.mark.parametrize("kind", sorted(CRITERIA))
def test_a_refresh_after_a_small_change_matches_a_full_refresh(kind):
    tenant = TenantFactory(slug=f"incr-{kind}")
    people = _population(tenant, 300, seed=1)
    incremental, full = _pair(tenant, CRITERIA[kind], "Incremental")
    now = timezone.now()
    first, _ = _refresh_both(incremental, full, now)
    assert not first.incremental and first.members > 0

    # About 10% change: new random values (some enter, some leave, most stay), one is
    # merged away, one deleted, and two new people arrive.
    rng = random.Random(2)
    changed = rng.sample(people, 30)
    for profile in changed[:26]:
        CustomerProfile.objects.filter(pk=profile.pk).update(**_random_fields(rng, now))
    members = list(_members(incremental))
    CustomerProfile.objects.filter(pk=members[0]).update(status=ProfileStatus.MERGED)
    CustomerProfile.objects.filter(pk=members[1]).update(deleted_at=now)
    with connection.cursor() as cursor:  # a raw set-wise writer counts too
        cursor.execute(
            "UPDATE customers_customerprofile SET email_opt_in = NOT email_opt_in, "
            "tags = '{}' WHERE id = ANY(%s)",
            [[p.pk for p in changed[26:]]],
        )
    _population(tenant, 2, seed=3)

    second, _ = _refresh_both(incremental, full, now + timedelta(minutes=5))
    assert second.incremental
    written = {p.pk for p in changed} | {members[0], members[1]}
    assert second.checked == len(written) + 2  # + the 2 new people; nobody else
    assert second.left >= 2  # at least the merged and the deleted member
    assert members[0] not in _members(incremental) and members[1] not in _members(incremental)
    left = {c for c, k in _history(incremental) if k == ChangeKind.LEFT}
    assert {members[0], members[1]} <= left

    # Nothing written since: nothing checked, nothing recorded.
    third, _ = _refresh_both(incremental, full, now + timedelta(minutes=6))
    assert third.incremental and (third.checked, third.entered, third.left) == (0, 0, 0)


def test_relative_days_move_with_the_clock_without_any_write():
    tenant = TenantFactory(slug="incr-clock")
    _population(tenant, 400, seed=4)
    criteria = {"combinator": "OR", "rules": [RULES["relative_datetime"], RULES["relative_date"]]}
    incremental, full = _pair(tenant, criteria, "Clock")
    now = timezone.now()
    _refresh_both(incremental, full, now)
    # Three days on, nobody written: people drop out of "active in the last 30 days" and
    # come into "renewal within 14 days" by the calendar alone.
    later, _ = _refresh_both(incremental, full, now + timedelta(days=3))
    assert later.incremental and later.entered > 0 and later.left > 0
    # Only the people at the moved boundaries were checked, not the tenant.
    assert 0 < later.checked < 200
    # And back within the same day: no band, nothing checked.
    again, _ = _refresh_both(incremental, full, now + timedelta(days=3, minutes=1))
    assert (again.checked, again.entered, again.left) == (0, 0, 0)


def test_a_write_not_yet_committed_at_the_refresh_is_checked_by_the_next_one():
    tenant = TenantFactory(slug="incr-inflight")
    people = _population(tenant, 50, seed=5)
    criteria = {"combinator": "AND", "rules": [RULES["number"]]}
    incremental, full = _pair(tenant, criteria, "In flight")
    now = timezone.now()
    _refresh_both(incremental, full, now)
    outsider = next(p for p in people if p.pk not in _members(incremental))
    with psycopg.connect(subprocess_database_url()) as other:
        # Another session writes the profile and holds its transaction open across a
        # refresh: that refresh cannot see it, the next one must.
        other.execute(
            "UPDATE customers_customerprofile SET handicap_index = 3 WHERE id = %s",
            [outsider.pk],
        )
        # A later transaction commits first, so the refresh's snapshot lists the open one
        # as running below its horizon (a plain "newer than the last refresh" watermark
        # would skip it forever).
        bystander = next(p for p in people if p.pk != outsider.pk)
        CustomerProfile.objects.filter(pk=bystander.pk).update(first_name="Later")
        during = segment_refresh(segment=incremental, now=now + timedelta(minutes=1))
        assert during.incremental and outsider.pk not in _members(incremental)
        other.commit()
    after = segment_refresh(segment=incremental, now=now + timedelta(minutes=2))
    assert after.incremental and after.entered == 1
    assert outsider.pk in _members(incremental)
    assert (outsider.pk, ChangeKind.ENTERED) in _history(incremental)


def test_other_tenants_writes_are_neither_checked_nor_members():
    mine, theirs = TenantFactory(slug="incr-mine"), TenantFactory(slug="incr-theirs")
    _population(mine, 40, seed=6)
    others = _population(theirs, 40, seed=6)
    criteria = {"combinator": "AND", "rules": [RULES["number"]]}
    segment = segment_create(tenant=mine, data={"name": "Mine", "criteria": criteria})
    segment_refresh(segment=segment)
    CustomerProfile.objects.filter(pk__in=[p.pk for p in others]).update(handicap_index=1)
    result = segment_refresh(segment=segment)
    assert result.incremental and (result.checked, result.entered) == (0, 0)
    assert not _members(segment) & {p.pk for p in others}


def test_rules_on_other_tables_and_changed_rules_refresh_in_full():
    tenant = TenantFactory(slug="incr-full")
    people = _population(tenant, 30, seed=7)
    other = segment_create(
        tenant=tenant,
        data={"name": "Low", "criteria": {"combinator": "AND", "rules": [RULES["number"]]}},
    )
    segment_refresh(segment=other)
    activity = {
        "field": "activity_count",
        "operator": "gte",
        "value": 1,
        "params": {"days": 30},
    }
    for rule in (activity, {"field": "segment", "operator": "eq", "value": str(other.pk)}):
        segment = segment_create(
            tenant=tenant,
            data={
                "name": f"Reads {rule['field']}",
                "criteria": {"combinator": "AND", "rules": [rule]},
            },
        )
        segment_refresh(segment=segment)
        assert not segment_refresh(segment=segment).incremental
    # A rule change: the next refresh starts over, in full.
    segment = segment_create(
        tenant=tenant,
        data={"name": "Stage", "criteria": {"combinator": "AND", "rules": [RULES["enum"]]}},
    )
    segment_refresh(segment=segment)
    assert segment_refresh(segment=segment).incremental
    segment_update(
        segment=segment, data={"criteria": {"combinator": "AND", "rules": [RULES["number"]]}}
    )
    redone = segment_refresh(segment=segment)
    assert not redone.incremental
    expected = {p.pk for p in people if p.handicap_index < 18}
    assert _members(segment) == expected


def test_a_state_from_another_cluster_starts_over_in_full():
    tenant = TenantFactory(slug="incr-restored")
    people = _population(tenant, 30, seed=8)
    criteria = {"combinator": "AND", "rules": [RULES["number"]]}
    segment = segment_create(tenant=tenant, data={"name": "Restored", "criteria": criteria})
    segment_refresh(segment=segment)
    # As after a dump restored into a new cluster: the saved transaction ids are ahead.
    segment.refresh_from_db()
    state = segment.refresh_state
    far = 10**12
    segment.refresh_state = {**state, "xid": far, "xmin": far, "snapshot": f"{far}:{far}:"}
    segment.save(update_fields=["refresh_state"])
    CustomerProfile.objects.filter(pk=people[0].pk).update(handicap_index=1)
    redone = segment_refresh(segment=segment)
    assert not redone.incremental
    assert people[0].pk in _members(segment)
