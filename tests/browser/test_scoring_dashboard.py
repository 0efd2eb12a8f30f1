"""The admin home's scoring dashboard in a real browser: KPI cards and the charts drawn by
the chart library unfold bundles (no network), then members at risk."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from scoring.models import RunKind
from scoring.nightly import tenant_score
from tests.factories import (
    PASSWORD,
    ClubFactory,
    StaffMembershipFactory,
    TenantFactory,
    UserFactory,
)
from tests.scoring.helpers import profile

from .helpers import login

SCREENSHOT = Path(__file__).resolve().parents[2] / "var" / "screenshots" / "scoring-dashboard.png"


@pytest.fixture
def tenant(transactional_db):
    tenant = TenantFactory(slug="links-a", name="Links A Golf")
    club = ClubFactory(tenant=tenant, name="Links A Country Club")
    StaffMembershipFactory(tenant=tenant, user=UserFactory(username="anna"))
    soon = (timezone.now() + timedelta(days=10)).date()
    for i in range(6):
        profile(
            tenant,
            lifecycle_stage="MEMBER",
            home_club=club,
            membership_renewal_on=soon,
            last_activity_at=timezone.now() - timedelta(days=i * 20),
            activity_count_30d=i,
        )
    for night in range(3):
        tenant_score(tenant=tenant, kind=RunKind.MANUAL, now=timezone.now() - timedelta(days=night))
    return tenant


def test_dashboard_cards_charts_and_at_risk_list(page, live_server, tenant):
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    login(page, live_server.url, "anna", PASSWORD)
    page.goto(f"{live_server.url}/admin/")
    dashboard = page.locator("#scoring-dashboard")
    expect(dashboard.locator(".scoring-kpi")).to_have_count(4)
    expect(dashboard.locator(".scoring-kpi").first).to_have_text("6")
    expect(dashboard.locator("canvas.chart")).to_have_count(3)
    # Chart.js drew into the canvases (it sets their pixel size when it renders).
    page.wait_for_function(
        "Array.from(document.querySelectorAll('#scoring-dashboard canvas.chart'))"
        ".every(c => window.Chart && Chart.getChart(c))"
    )
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert all(url.startswith(live_server.url) for url in requests), "no CDN or outside request"
    page.click("text=Members at risk →")
    page.goto(f"{live_server.url}/admin/scoring/score/?risk=all")
    expect(page.locator("#result_list tbody tr")).to_have_count(6)
