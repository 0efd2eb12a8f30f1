"""The ProfileChange log the incremental segment refresh reads: every write of a profile
appends ``(tenant, transaction, customer)``, and the rows no refresh can need any more are
pruned (after each refresh and nightly), never one a later refresh still has to see.

These tests commit (``transaction=True``): the log is keyed by the writing transaction.
"""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from customers.models import CustomerProfile
from marketing.models import ProfileChange, SegmentMembership
from marketing.segments import (
    profile_changes_prune,
    profile_changes_retention,
    segment_create,
    segment_refresh,
)
from tests.factories import TenantFactory
from tests.worker import subprocess_database_url

pytestmark = pytest.mark.django_db(transaction=True)

LOW_HANDICAP = {
    "combinator": "AND",
    "rules": [{"field": "handicap_index", "operator": "lt", "value": 18}],
}


def _people(tenant, count: int) -> list[CustomerProfile]:
    return CustomerProfile.objects.bulk_create(
        CustomerProfile(tenant=tenant, email=f"log-{i}@example.com", handicap_index=30)
        for i in range(count)
    )


def _log(tenant) -> list[tuple[int, object]]:
    return list(ProfileChange.objects.filter(tenant=tenant).values_list("xid", "customer_id"))


def _xid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_xact_id()::text::bigint")
        return cursor.fetchone()[0]


def _oldest_running() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        return cursor.fetchone()[0]


def test_each_write_is_a_row_of_its_transaction():
    tenant = TenantFactory(slug="log-rows")
    people = _people(tenant, 3)
    CustomerProfile.objects.filter(pk=people[0].pk).update(handicap_index=10)
    CustomerProfile.objects.filter(pk=people[0].pk).update(handicap_index=11)
    rows = [row for row in _log(tenant) if row[1] == people[0].pk]
    # The insert and the two updates: three transactions, three rows (a log, not an upsert).
    assert len(rows) == 3 and len({xid for xid, _ in rows}) == 3


def test_a_refresh_prunes_what_no_segment_needs_and_keeps_what_a_lagging_one_does():
    tenant = TenantFactory(slug="log-prune")
    people = _people(tenant, 20)
    lagging = segment_create(tenant=tenant, data={"name": "Lagging", "criteria": LOW_HANDICAP})
    current = segment_create(tenant=tenant, data={"name": "Current", "criteria": LOW_HANDICAP})
    now = timezone.now()
    before_first = _oldest_running()
    segment_refresh(segment=lagging, now=now)
    lagging.refresh_from_db()
    # The people's inserts are older than the lagging segment's snapshot: pruned.
    assert all(xid >= min(before_first, lagging.refresh_state["xmin"]) for xid, _ in _log(tenant))

    CustomerProfile.objects.filter(pk=people[0].pk).update(handicap_index=1)
    segment_refresh(segment=current, now=now)
    # The lagging segment has not seen that write: its row stays.
    assert people[0].pk in {customer for _, customer in _log(tenant)}

    caught = segment_refresh(segment=lagging, now=now)
    assert caught.incremental and caught.checked == 1 and caught.entered == 1
    assert people[0].pk in set(
        SegmentMembership.objects.filter(segment=lagging).values_list("customer_id", flat=True)
    )
    # Both segments have seen it now: the next prune may drop it (unless a transaction of
    # the cluster that started before it is still running).


def test_no_prune_while_a_refresh_of_the_tenant_holds_its_segment():
    tenant = TenantFactory(slug="log-busy")
    _people(tenant, 5)
    segment = segment_create(tenant=tenant, data={"name": "Busy", "criteria": LOW_HANDICAP})
    before = _log(tenant)
    with psycopg.connect(subprocess_database_url()) as other:
        # As a refresh does between taking its snapshot and saving it.
        other.execute("SELECT 1 FROM marketing_segment WHERE id = %s FOR UPDATE", [segment.pk])
        assert profile_changes_prune(tenant=tenant) is None
        other.rollback()
    assert _log(tenant) == before
    assert profile_changes_prune(tenant=tenant) is not None


def test_the_nightly_step_prunes_tenants_whose_segments_never_refresh():
    tenant = TenantFactory(slug="log-nightly")
    people = _people(tenant, 10)
    written = _xid()  # a later transaction than the inserts
    assert len(_log(tenant)) == len(people)
    oldest = _oldest_running()  # the prune's horizon is at least this
    pruned, finished = profile_changes_retention(now=timezone.now(), deadline=time.monotonic() + 60)
    assert finished
    assert all(xid >= oldest for xid, _ in _log(tenant))
    if oldest > written:  # nothing older than the inserts was still running
        assert pruned >= len(people) and _log(tenant) == []
