"""A batch does not wait for another transaction that is creating the same new person: that
person's events are handed back (pending, attempt uncounted) and queued again with ``defer``
off; the rest of the batch is processed. The second time, they are applied."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection

from customers import ingest as ingest_module
from customers.ingest import NEW_PERSON_LOCK_CLASS, events_process
from customers.models import Activity, CustomerProfile, IdentityAlias, SyncLogEntry, SyncStatus
from tests.customers.helpers import person

from .helpers import event, ingest

pytestmark = pytest.mark.django_db(transaction=True)


def _other_transaction():
    """Another connection, as another worker's batch would be."""
    settings = connection.settings_dict
    return psycopg.connect(
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        dbname=settings["NAME"],
    )


def _hold_new_person(other, tenant, kind: str, value: str) -> None:
    """What a batch creating this person holds until its commit."""
    other.execute(
        "SELECT pg_advisory_xact_lock(%s::int4, hashtext(%s::text || '/' || %s || '/' || %s))",
        [NEW_PERSON_LOCK_CLASS, str(tenant.pk), kind, value],
    )


def _round(tenant, identity: dict, event_id: str) -> dict:
    return event(tenant, "teetime.round.completed", identity, {"roundId": event_id}, id=event_id)


def _entries(tenant):
    return {e.event_id: e for e in SyncLogEntry.objects.filter(tenant=tenant)}


def test_a_new_person_being_created_elsewhere_is_deferred_then_applied(tenant_a, monkeypatch):
    queued: list[tuple[list[int], bool]] = []
    monkeypatch.setattr(
        ingest_module, "_queue_deferred", lambda tenant, ids: queued.append((list(ids), False))
    )
    result = ingest(
        tenant_a,
        _round(tenant_a, {"email": "busy@example.com"}, "busy-1"),
        _round(tenant_a, {"email": "free@example.com"}, "free-1"),
        _round(tenant_a, {"email": "busy@example.com"}, "busy-2"),
    )
    with _other_transaction() as other:
        _hold_new_person(other, tenant_a, "email", "busy@example.com")
        first = events_process(tenant=tenant_a, entry_ids=result.entry_ids)
        other.rollback()
    assert (first.processed, first.deferred, first.skipped) == (1, 2, 0)
    rows = _entries(tenant_a)
    assert rows["free-1"].status == SyncStatus.PROCESSED
    for event_id in ("busy-1", "busy-2"):  # handed back: pending, not counted, queued
        assert rows[event_id].status == SyncStatus.PENDING
        assert rows[event_id].attempts == 0
        assert rows[event_id].queued_at is not None
    assert queued == [(sorted([rows["busy-1"].pk, rows["busy-2"].pk]), False)]
    assert not IdentityAlias.objects.filter(tenant=tenant_a, value="busy@example.com").exists()
    assert Activity.objects.filter(tenant=tenant_a).count() == 1

    second = events_process(tenant=tenant_a, entry_ids=queued[0][0], defer=False)
    assert (second.processed, second.deferred) == (2, 0)
    rows = _entries(tenant_a)
    assert {rows[e].status for e in ("busy-1", "busy-2")} == {SyncStatus.PROCESSED}
    assert {rows[e].attempts for e in ("busy-1", "busy-2")} == {1}
    busy = IdentityAlias.objects.get(tenant=tenant_a, value="busy@example.com").profile_id
    assert rows["busy-1"].profile_id == rows["busy-2"].profile_id == busy
    assert CustomerProfile.objects.filter(tenant=tenant_a).count() == 2
    assert Activity.objects.filter(tenant=tenant_a, customer_id=busy).count() == 2


def test_without_defer_the_batch_does_not_hand_back(tenant_a, monkeypatch):
    """Rows deferred once are not deferred again: a lock held elsewhere does not stop them
    (here the other transaction inserts nothing, so nothing waits)."""
    monkeypatch.setattr(
        ingest_module, "_queue_deferred", lambda tenant, ids: pytest.fail("deferred twice")
    )
    result = ingest(
        tenant_a,
        _round(tenant_a, {"email": "busy@example.com"}, "busy-1"),
    )
    with _other_transaction() as other:
        _hold_new_person(other, tenant_a, "email", "busy@example.com")
        outcome = events_process(tenant=tenant_a, entry_ids=result.entry_ids, defer=False)
        other.rollback()
    assert (outcome.processed, outcome.deferred) == (1, 0)
    assert IdentityAlias.objects.filter(tenant=tenant_a, value="busy@example.com").exists()


def test_a_lock_in_another_tenant_defers_nothing(tenant_a, tenant_b, monkeypatch):
    monkeypatch.setattr(
        ingest_module, "_queue_deferred", lambda tenant, ids: pytest.fail("deferred")
    )
    result = ingest(
        tenant_a,
        _round(tenant_a, {"email": "same@example.com"}, "s-1"),
    )
    with _other_transaction() as other:
        _hold_new_person(other, tenant_b, "email", "same@example.com")
        outcome = events_process(tenant=tenant_a, entry_ids=result.entry_ids)
        other.rollback()
    assert (outcome.processed, outcome.deferred) == (1, 0)


def test_a_known_person_whose_profile_another_batch_holds_is_deferred(tenant_a, monkeypatch):
    queued: list[list[int]] = []
    monkeypatch.setattr(ingest_module, "_queue_deferred", lambda tenant, ids: queued.append(ids))
    busy, free = person(tenant_a, email="busy@example.com"), person(tenant_a, email="f@example.com")
    result = ingest(
        tenant_a,
        _round(tenant_a, {"email": "busy@example.com"}, "busy-1"),
        _round(tenant_a, {"email": "f@example.com"}, "free-1"),
    )
    with _other_transaction() as other:  # another batch between its profile lock and commit
        other.execute(
            f'SELECT 1 FROM "{CustomerProfile._meta.db_table}" WHERE id = %s FOR NO KEY UPDATE',  # noqa: S608
            [busy.pk],
        )
        first = events_process(tenant=tenant_a, entry_ids=result.entry_ids)
        other.rollback()
    assert (first.processed, first.deferred) == (1, 1)
    rows = _entries(tenant_a)
    assert (rows["free-1"].status, rows["free-1"].profile_id) == (SyncStatus.PROCESSED, free.pk)
    assert (rows["busy-1"].status, rows["busy-1"].attempts) == (SyncStatus.PENDING, 0)
    assert queued == [[rows["busy-1"].pk]]
    assert not Activity.objects.filter(customer=busy).exists()

    second = events_process(tenant=tenant_a, entry_ids=queued[0], defer=False)
    assert (second.processed, second.deferred) == (1, 0)
    assert Activity.objects.filter(customer=busy).count() == 1
    busy.refresh_from_db()
    assert busy.last_activity_type == "teetime.round.completed"


def test_a_person_another_batch_created_meanwhile_is_joined_without_a_profile_of_its_own(
    tenant_a, monkeypatch
):
    """The batch read the aliases before another batch's commit gave the email to a person:
    its alias insert finds the email taken, so that group gets no profile and its event
    resolves to the other batch's person; the other new person of the batch is created.
    No profile is inserted and deleted again (a delete costs a search of every table that
    refers to profiles)."""
    existing = person(tenant_a, email="taken@example.com")
    result = ingest(
        tenant_a,
        _round(tenant_a, {"email": "taken@example.com"}, "taken-1"),
        _round(tenant_a, {"email": "fresh@example.com"}, "fresh-1"),
    )
    monkeypatch.setattr(ingest_module, "_known_aliases", lambda tenant, pairs: {})
    statements: list[str] = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        outcome = events_process(tenant=tenant_a, entry_ids=result.entry_ids)
    assert (outcome.processed, outcome.deferred) == (2, 0)
    rows = _entries(tenant_a)
    assert rows["taken-1"].profile_id == existing.pk
    fresh = IdentityAlias.objects.get(tenant=tenant_a, value="fresh@example.com").profile_id
    assert rows["fresh-1"].profile_id == fresh != existing.pk
    assert CustomerProfile.objects.filter(tenant=tenant_a).count() == 2
    assert Activity.objects.filter(tenant=tenant_a, customer_id=existing.pk).count() == 1
    assert any("INSERT INTO" in sql and IdentityAlias._meta.db_table in sql for sql in statements)
    profile_deletes = [
        sql
        for sql in statements
        if sql.lstrip().upper().startswith("DELETE") and CustomerProfile._meta.db_table in sql
    ]
    assert profile_deletes == []
