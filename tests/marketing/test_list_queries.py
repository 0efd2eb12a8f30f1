"""List endpoints cost the same number of queries for 2 rows as for 12 (no N+1)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from marketing.segments import segment_create
from tests.customers.helpers import person
from tests.factories import MessageTemplateFactory
from tests.marketing.builders import make_campaign

pytestmark = pytest.mark.django_db


def _count(client, url) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    body = response.json()
    return len(queries), len(body["results"] if isinstance(body, dict) else body)


@pytest.mark.parametrize("kind", ["segments", "templates", "campaigns", "notes"])
def test_list_query_count_does_not_grow_with_rows(api_a, tenant_a, club_a, kind):
    member = person(tenant_a, email="notes@example.com")

    def make(n: int) -> None:
        for _ in range(n):
            if kind == "segments":
                segment_create(
                    tenant=tenant_a,
                    data={
                        "name": f"s{make.i}",
                        "club": club_a,
                        "criteria": {
                            "combinator": "AND",
                            "rules": [{"field": "email", "operator": "isNotNull"}],
                        },
                    },
                )
            elif kind == "templates":
                MessageTemplateFactory(tenant=tenant_a, club=club_a)
            elif kind == "campaigns":
                make_campaign(tenant_a, club=club_a)
            else:
                api_a.post(
                    f"/api/v1/customers/{member.pk}/notes", {"body": f"n{make.i}"}, format="json"
                )
            make.i += 1

    make.i = 0
    url = f"/api/v1/customers/{member.pk}/notes" if kind == "notes" else f"/api/v1/{kind}"
    api_a.get(url)  # warm the credential cache
    make(2)
    few, rows_few = _count(api_a, url)
    make(10)
    many, rows_many = _count(api_a, url)
    assert (rows_few, rows_many) == (2, 12)
    assert few == many, (kind, few, many)
