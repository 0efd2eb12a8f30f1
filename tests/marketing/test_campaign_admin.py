"""Campaign, template and suppression screens of the staff console."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from marketing.models import Campaign, CampaignStatus, MessageTemplate, Suppression
from marketing.segments import segment_refresh
from tests.marketing.builders import NOON_JHB, make_campaign, make_member, run_to_completion

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _midday():
    with time_machine.travel(NOON_JHB - timedelta(minutes=10), tick=True):
        yield


@pytest.fixture
def console(client, staff_a):
    client.force_login(staff_a)
    return client


def test_the_editor_shows_who_would_get_it_before_scheduling(console, tenant_a):
    make_member(tenant_a, "yes@example.com", email_opt_in=True)
    make_member(tenant_a, "no@example.com", email_opt_in=False)
    make_member(tenant_a, "gone@example.com", email_opt_in=True)
    Suppression.objects.create(
        tenant=tenant_a, channel="email", address="gone@example.com", reason="unsubscribed"
    )
    campaign = make_campaign(tenant_a, scheduled_at=timezone.now() + timedelta(hours=1))
    segment_refresh(segment=campaign.segment)
    page = console.get(f"/admin/marketing/campaign/{campaign.pk}/change/")
    assert page.context["audience"] == {
        "email": {"reachable": 1, "no_address": 0, "no_consent": 1, "suppressed": 1}
    }
    response = console.post(f"/admin/marketing/campaign/{campaign.pk}/do/schedule/", follow=True)
    assert "now Scheduled" in response.content.decode()
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SCHEDULED
    response = console.post(f"/admin/marketing/campaign/{campaign.pk}/do/resume/", follow=True)
    assert "Cannot resume a campaign that is scheduled" in response.content.decode()


def test_stats_page_shows_the_funnel_and_skip_reasons(console, tenant_a):
    make_member(tenant_a, "a@example.com", email_opt_in=True)
    make_member(tenant_a, "b@example.com", email_opt_in=False)
    campaign = make_campaign(tenant_a)
    run_to_completion(campaign)
    page = console.get(f"/admin/marketing/campaign/{campaign.pk}/stats/")
    funnel = {step["label"]: step["value"] for step in page.context["funnel"]}
    assert funnel == {"Targeted": 2, "Sent": 1, "Delivered": 0, "Opened": 0, "Clicked": 0}
    assert page.context["skip_reasons"] == [("No consent", 1)]


def test_template_form_validates_and_previews(console, tenant_a):
    bad = {
        "tenant": str(tenant_a.pk),
        "name": "Bad",
        "channel": "email",
        "subject": "",
        "html_body": "{% if %}",
        "text_body": "",
        "body": "",
    }
    response = console.post("/admin/marketing/messagetemplate/add/", bad)
    errors = response.context["adminform"].form.errors
    assert "subject" in errors and "html_body" in errors
    template = MessageTemplate.objects.create(
        tenant=tenant_a, name="SMS", channel="sms", body="See you, {{ first_name }}"
    )
    page = console.get(f"/admin/marketing/messagetemplate/{template.pk}/change/")
    assert page.context["preview"].body == "See you, Thabo"


def test_another_tenants_campaign_is_out_of_reach(console, tenant_b):
    theirs = make_campaign(tenant_b)
    assert console.post(f"/admin/marketing/campaign/{theirs.pk}/do/cancel/").status_code == 403
    assert console.get(f"/admin/marketing/campaign/{theirs.pk}/stats/").status_code == 403
    assert Campaign.objects.get(pk=theirs.pk).status == CampaignStatus.DRAFT
