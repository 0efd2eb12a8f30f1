"""`updated_since` through `ProfileUpdate`: the profile table has no index on `updated_at`
(so a change of profile data can be a HOT update); statement triggers append each profile's
new `updated_at` to the `ProfileUpdate` log, whatever the writer, and the nightly prune
leaves exactly each profile's current one."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from crm.models import Tenant
from customers.models import CustomerProfile, ProfileUpdate
from customers.retention import profile_updates_prune, profile_updates_retention
from tests.events.helpers import event, run

from .helpers import person

pytestmark = pytest.mark.django_db


def _log_rows():
    return set(ProfileUpdate.objects.values_list("tenant_id", "customer_id", "updated_at"))


def _index_rows():
    """The log once pruned: one row per profile, if every writer appended its current time
    (the prune only deletes rows, so a writer that appended nothing leaves a profile out)."""
    for tenant in Tenant.objects.all():
        profile_updates_prune(tenant=tenant)
    return _log_rows()


def _profile_rows():
    return set(CustomerProfile.objects.values_list("tenant_id", "id", "updated_at"))


def _ids(client, **params):
    response = client.get("/api/v1/customers", params)
    assert response.status_code == 200, response.json()
    return {row["id"] for row in response.json()["results"]}


def test_updated_since_lists_data_changes_not_metrics_only_updates(api_a, tenant_a):
    jo, sam = person(tenant_a, email="jo@example.com"), person(tenant_a, email="sam@example.com")
    long_ago = timezone.now() - timedelta(days=10)
    CustomerProfile.objects.filter(pk__in=[jo.pk, sam.pk]).update(updated_at=long_ago)
    since = timezone.now() - timedelta(hours=1)

    run(
        tenant_a,
        event(
            tenant_a, "contactPreference.updated", {"email": "jo@example.com"}, {"smsOptIn": True}
        ),
        event(tenant_a, "teetime.round.completed", {"email": "sam@example.com"}, {"roundId": "R1"}),
    )

    assert _ids(api_a, updated_since=since.isoformat()) == {str(jo.pk)}
    assert _ids(api_a, updated_since=(long_ago - timedelta(seconds=1)).isoformat()) == {
        str(jo.pk),
        str(sam.pk),
    }
    assert _index_rows() == _profile_rows()


def test_every_writer_keeps_the_index_in_step(tenant_a, tenant_b):
    jo = person(tenant_a, email="jo@example.com")  # the ORM's INSERT
    gone = person(tenant_a, email="gone@example.com")
    person(tenant_b, email="jo@example.com")
    run(
        tenant_a,
        event(tenant_a, "teetime.round.completed", {"email": "new@example.com"}, {"roundId": "R9"}),
    )
    jo.first_name = "Jo"
    jo.save()  # the ORM's UPDATE
    CustomerProfile.objects.filter(tenant=tenant_b).update(
        updated_at=timezone.now() - timedelta(days=3)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE customers_customerprofile SET updated_at = updated_at - interval '1 day' "
            "WHERE id = %s",
            [jo.pk],
        )
    CustomerProfile.objects.filter(pk=gone.pk).delete()

    assert CustomerProfile.objects.count() == 3  # jo, new (from the event), tenant B's jo
    assert _index_rows() == _profile_rows()


def test_no_index_of_the_profile_table_reads_updated_at():
    """An index on ``updated_at`` would make every change of profile data a non-HOT update
    (a new entry in each of the profile's indexes): ``ProfileUpdate`` is that index."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT i.indexrelid::regclass::text FROM pg_index i
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attname = 'updated_at'
            WHERE i.indrelid = 'customers_customerprofile'::regclass
              AND (a.attnum = ANY(i.indkey)
                   OR pg_get_expr(i.indexprs, i.indrelid) LIKE '%%updated_at%%'
                   OR pg_get_expr(i.indpred, i.indrelid) LIKE '%%updated_at%%')
            """
        )
        assert cursor.fetchall() == []


def test_a_batch_that_changes_profile_data_updates_the_profile_in_place(tenant_a):
    jo = person(tenant_a, email="jo@example.com")

    def updates():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables "
                "WHERE relname = 'customers_customerprofile'"
            )
            return cursor.fetchone()

    before = updates()
    run(
        tenant_a,
        event(
            tenant_a, "contactPreference.updated", {"email": "jo@example.com"}, {"smsOptIn": True}
        ),
        event(
            tenant_a,
            "teetime.handicap.updated",
            {"email": "jo@example.com"},
            {"handicapIndex": "12.4"},
        ),
    )
    after = updates()

    jo.refresh_from_db()
    assert jo.sms_opt_in is True and jo.updated_at > jo.created_at
    assert after[0] - before[0] >= 1
    assert after[0] - before[0] == after[1] - before[1]  # every one of them HOT


def test_a_large_update_after_an_empty_one_stays_linear(tenant_a):
    """The update trigger's join of its transition tables is planned once per session: after
    an UPDATE of no profile, an UPDATE of many must not compare every new row with every old
    one (a nested loop: 20,000 profiles took minutes; a hash join takes well under a second)."""
    now = timezone.now()
    CustomerProfile.objects.bulk_create(
        [CustomerProfile(tenant=tenant_a, first_name=f"P{i}") for i in range(20_000)],
        batch_size=5000,
    )
    with connection.cursor() as cursor:
        cursor.execute("UPDATE customers_customerprofile SET updated_at = %s WHERE false", [now])
        cursor.execute("UPDATE customers_customerprofile SET updated_at = %s WHERE false", [now])
        cursor.execute("SET LOCAL statement_timeout = '15s'")
        cursor.execute(
            "UPDATE customers_customerprofile SET updated_at = %s WHERE tenant_id = %s",
            [now, tenant_a.pk],
        )
        assert cursor.rowcount == 20_000
        cursor.execute("SET LOCAL statement_timeout = 0")
    assert ProfileUpdate.objects.filter(tenant=tenant_a, updated_at=now).count() == 20_000


def test_the_log_appends_and_superseded_rows_never_show_a_profile(api_a, tenant_a):
    """Each change appends a row; until the prune a profile has several, and a superseded
    row (even one later than the profile's time, when ``updated_at`` moved back) does not
    make ``updated_since`` list a profile whose own ``updated_at`` is earlier."""
    jo = person(tenant_a, email="jo@example.com")
    gone = person(tenant_a, email="gone@example.com")
    now = timezone.now()
    earlier, later = now - timedelta(days=5), now - timedelta(days=1)
    CustomerProfile.objects.filter(pk=jo.pk).update(updated_at=later)
    CustomerProfile.objects.filter(pk=jo.pk).update(updated_at=earlier)  # moved back
    CustomerProfile.objects.filter(pk=gone.pk).update(updated_at=later)
    CustomerProfile.objects.filter(pk=gone.pk).delete()

    logged = {at for _, pk, at in _log_rows() if pk == jo.pk}
    assert {later, earlier} <= logged and len(logged) == 3  # created, later, earlier
    assert _ids(api_a, updated_since=(later - timedelta(seconds=1)).isoformat()) == set()
    assert _ids(api_a, updated_since=(earlier - timedelta(seconds=1)).isoformat()) == {str(jo.pk)}

    assert profile_updates_prune(tenant=tenant_a) >= 3  # jo's two old rows, gone's created
    assert _log_rows() == {(tenant_a.pk, jo.pk, earlier)} == _profile_rows()
    assert profile_updates_prune(tenant=tenant_a) == 0


def test_the_nightly_step_prunes_every_tenant(tenant_a, tenant_b):
    jo, sam = person(tenant_a, email="jo@example.com"), person(tenant_b, email="sam@example.com")
    for profile in (jo, sam):
        profile.first_name = "Changed"
        profile.save()

    assert len(_log_rows()) == 4
    pruned, finished = profile_updates_retention(now=timezone.now(), deadline=time.monotonic() + 60)

    assert (pruned, finished) == (2, True)
    assert _log_rows() == _profile_rows()
