"""The write-heavy tables carry no index another index already gives: each costs every
inserted row (an event's new person, an imported member, a timeline row) an entry."""

from __future__ import annotations

import pytest
from django.db import connection

from customers.models import CustomerProfile
from customers.services import profile_merge

from .helpers import person

pytestmark = pytest.mark.django_db

WRITE_HEAVY = [
    "customers_customerprofile",
    "customers_identityalias",
    "customers_synclogentry",
    "customers_activity",
    "marketing_message",
    "automation_enrollment",
]

# Pairs (shorter, longer) of plain indexes of one table whose columns start the same way:
# the shorter one finds nothing the longer one does not.
_REPEATED_LEADS = """
    WITH idx AS (
        SELECT i.indrelid::regclass::text AS tbl, c.relname AS name,
               string_to_array(i.indkey::text, ' ') AS keys
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid::regclass::text = ANY(%s)
          AND i.indpred IS NULL AND i.indexprs IS NULL
    )
    SELECT a.tbl, a.name, b.name
    FROM idx a JOIN idx b ON a.tbl = b.tbl AND a.name <> b.name
    WHERE cardinality(a.keys) < cardinality(b.keys)
      AND b.keys[1:cardinality(a.keys)] = a.keys
    ORDER BY 1, 2, 3
"""


def test_no_index_of_the_write_heavy_tables_repeats_the_lead_of_another():
    with connection.cursor() as cursor:
        cursor.execute(_REPEATED_LEADS, [WRITE_HEAVY])
        repeated = cursor.fetchall()
    assert repeated == []


def _plan(queryset) -> str:
    with connection.cursor() as cursor:
        sql, params = queryset.order_by().query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_a_survivors_merged_profiles_and_a_clubs_members_are_found_by_an_index(tenant_a, club_a):
    survivor = person(tenant_a, email="ann@example.com")
    merged = person(tenant_a, email="ann.other@example.com")
    member = person(tenant_a, email="bob@example.com")
    CustomerProfile.objects.filter(pk=member.pk).update(home_club=club_a)
    profile_merge(tenant=tenant_a, winner=survivor, loser=merged, actor="staff@example.com")
    # A tenant of some size, with fresh statistics: on a handful of rows any plan is as good,
    # and the planner may read them through whichever index leads with the tenant.
    CustomerProfile.objects.bulk_create(
        CustomerProfile(tenant=tenant_a, first_name=f"P{n}") for n in range(3_000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE customers_customerprofile")

    followers = CustomerProfile.objects.for_tenant(tenant_a).filter(merged_into=survivor)
    assert list(followers.values_list("pk", flat=True)) == [merged.pk]
    assert "profile_merged_into_idx" in _plan(followers)

    members = CustomerProfile.objects.for_tenant(tenant_a).filter(home_club=club_a)
    assert list(members.values_list("pk", flat=True)) == [member.pk]
    assert "customers_customerprofile_home_club_id" in _plan(members)
