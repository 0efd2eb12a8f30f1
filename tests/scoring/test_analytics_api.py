"""/api/v1/analytics: what a caller sees after nightly runs, scoped to its tenant, with the
analytics:read scope, bad parameters answered 400 with field errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rest_framework.test import APIClient

from crm.services import api_key_create
from customers.models import SyncLogEntry
from scoring.models import RunKind
from scoring.nightly import tenant_score

from .helpers import profile, run_of, sent

pytestmark = pytest.mark.django_db
NIGHT = datetime(2026, 11, 24, 0, 30, tzinfo=UTC)  # 02:30 in Johannesburg
DAY = timedelta(days=1)


def _nights(tenant, n=2):
    for i in range(n):
        tenant_score(tenant=tenant, kind=RunKind.NIGHTLY, now=NIGHT - (n - 1 - i) * DAY)


@pytest.fixture
def busy_a(tenant_a):
    yesterday = NIGHT - DAY  # 23 November, local
    member = profile(
        tenant_a, lifecycle_stage="MEMBER", last_activity_at=yesterday, activity_count_30d=0
    )
    profile(tenant_a, lifecycle_stage="SUBSCRIBER")
    profile(
        tenant_a,
        lifecycle_stage="LAPSED",
        membership_status="LAPSED",
        membership_updated_at=yesterday,
    )
    run = run_of(tenant_a, yesterday)
    sent(tenant_a, member, run=run, at=yesterday, opens=2, clicks=1)
    for i, source in enumerate(["teetime", "teetime", "scl"]):
        SyncLogEntry.objects.create(
            tenant=tenant_a,
            source=source,
            event_id=f"e{i}",
            type="x.y.z",
            occurred_at=yesterday,
            status="PROCESSED",
        )
    SyncLogEntry.objects.filter(tenant=tenant_a).update(created_at=yesterday)
    return member


def test_overview_and_distributions(api_a, busy_a, tenant_a):
    _nights(tenant_a)
    overview = api_a.get("/api/v1/analytics/overview").json()
    assert overview["as_of"] == "2026-11-23"
    assert overview["members_by_lifecycle"] == {"MEMBER": 1, "SUBSCRIBER": 1, "LAPSED": 1}
    assert overview["active_30d"] == 1
    assert overview["lapsed_30d"] == 1
    scores = api_a.get("/api/v1/analytics/scores").json()
    assert sum(scores["engagement"]) == sum(scores["churn_risk"]) == 3
    assert scores["buckets"][0] == "0-9" and scores["buckets"][9] == "90-100"
    assert sum(scores["bands"].values()) == 3


def test_series_of_trends_campaigns_and_events(api_a, busy_a, tenant_a):
    _nights(tenant_a, n=3)
    trends = api_a.get("/api/v1/analytics/trends?days=2").json()["results"]
    assert [row["day"] for row in trends] == ["2026-11-22", "2026-11-23"]
    campaigns = api_a.get("/api/v1/analytics/campaigns").json()["results"]
    assert campaigns[-1] == {"day": "2026-11-23", "sent": 1, "opened": 1, "clicked": 1}
    assert campaigns[-2]["sent"] == 0
    events = api_a.get("/api/v1/analytics/events").json()["results"]
    assert events[-1] == {"day": "2026-11-23", "total": 3, "by_source": {"teetime": 2, "scl": 1}}


@pytest.mark.parametrize("days", ["0", "367", "many"])
def test_bad_days_is_a_400_with_the_field(api_a, days):
    response = api_a.get(f"/api/v1/analytics/trends?days={days}")
    assert response.status_code == 400
    assert "days" in str(response.json())


def test_another_tenant_sees_only_its_own(api_b, busy_a, tenant_a, tenant_b):
    _nights(tenant_a)
    overview = api_b.get("/api/v1/analytics/overview").json()
    assert overview["members_by_lifecycle"] == {} and overview["as_of"] is None
    assert api_b.get("/api/v1/analytics/events").json()["results"] == []


def test_needs_the_analytics_scope(tenant_a):
    client = APIClient()
    issued = api_key_create(tenant=tenant_a, name="narrow", scopes=["marketing:read"])
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {issued.raw_key}")
    response = client.get("/api/v1/analytics/overview")
    assert response.status_code == 403
    assert "analytics:read" in response.json()["error"]["message"]
