"""The staff console: the home dashboard's KPI cards and charts, members at risk (by club,
exported to CSV or a static segment), backtests; each staff user sees their tenants only."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from marketing.models import Segment, SegmentMembership
from scoring.models import RunKind, Score
from scoring.nightly import tenant_score

from .helpers import profile

pytestmark = pytest.mark.django_db
AT_RISK = "/admin/scoring/score/"


@pytest.fixture
def console(client, staff_a):
    client.force_login(staff_a)
    return client


@pytest.fixture
def scored(tenant_a, tenant_b, club_a, club_b):
    """Tenant A: two idle members at club A (NO_RECENT_ROUNDS + renewal soon = 35), one
    elsewhere; tenant B: one of its own. Scored by the last night's run."""
    soon = (timezone.now() + timedelta(days=10)).date()
    risky = [
        profile(
            tenant_a,
            lifecycle_stage="MEMBER",
            home_club=club_a,
            first_name=n,
            membership_renewal_on=soon,
            handicap_updated_at=timezone.now() - timedelta(400),
        )
        for n in ("Ann", "Bea")
    ]
    profile(tenant_a, lifecycle_stage="MEMBER", first_name="Cas")
    profile(
        tenant_b,
        lifecycle_stage="MEMBER",
        home_club=club_b,
        first_name="Outsider",
        membership_renewal_on=soon,
        handicap_updated_at=timezone.now() - timedelta(400),
    )
    for tenant in (tenant_a, tenant_b):
        tenant_score(tenant=tenant, kind=RunKind.MANUAL, now=timezone.now() + timedelta(days=1))
    return risky


def test_home_shows_kpis_and_charts_of_my_tenant_only(console, scored):
    page = console.get("/admin/").content.decode()
    assert 'id="scoring-dashboard"' in page
    # Profiles, members, active, at risk (risk 45 each for Ann and Bea: >= 60 is at risk)
    assert page.count('class="scoring-kpi"') == 4
    assert '<span class="scoring-kpi">3</span>' in page  # 3 profiles and 3 members, not 4
    assert '<span class="scoring-kpi">4</span>' not in page
    assert 'data-type="line"' in page and 'data-type="bar"' in page
    assert "unfold/js/chart/chart.js" in page  # the bundled chart library, no CDN
    # No script or stylesheet from another origin (a random CSRF token may spell "cdn").
    assert not re.search(r'<(script|link)[^>]+(src|href)="(https?:)?//', page)


def test_members_at_risk_by_club_with_reasons(console, scored, club_a):
    page = console.get(f"{AT_RISK}?risk=all&club={club_a.pk}").content.decode()
    # Ann and Bea (club A), not Cas (no club) nor tenant B's member.
    assert page.count("RENEWAL_NEAR_INACTIVE (20)") == 2
    assert "NO_RECENT_ROUNDS (15)" in page
    assert "Outsider" not in page
    everyone = console.get(f"{AT_RISK}?risk=all").content.decode()
    assert "Outsider" not in everyone


def _ids(tenant):
    return [str(pk) for pk in Score.objects.for_tenant(tenant).values_list("pk", flat=True)]


def test_export_selected_to_csv(console, scored, tenant_a):
    response = console.post(
        f"{AT_RISK}?risk=all", {"action": "export_csv", "_selected_action": _ids(tenant_a)}
    )
    assert response["Content-Type"] == "text/csv"
    lines = response.content.decode().splitlines()
    assert lines[0].startswith("customer_id,email,first_name")
    assert len(lines) == 4
    assert "Outsider" not in response.content.decode()


def test_selected_become_a_static_segment(console, scored, tenant_a):
    response = console.post(
        f"{AT_RISK}?risk=all",
        {"action": "to_static_segment", "_selected_action": _ids(tenant_a)[:2]},
        follow=True,
    )
    assert response.status_code == 200
    segment = Segment.objects.for_tenant(tenant_a).get()
    assert segment.type == "STATIC" and segment.name.startswith("At risk")
    assert SegmentMembership.objects.filter(segment=segment).count() == 2


def test_backtests_and_runs_are_listed(console, scored):
    assert console.get("/admin/scoring/backtest/").status_code == 200
    runs = console.get("/admin/scoring/scoringrun/").content.decode()
    assert "On demand" in runs
