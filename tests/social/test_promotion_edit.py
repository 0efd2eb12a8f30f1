"""Editing a promotion before it goes (service and API), and the optional cancellation
notice: what has not gone follows the edit, what has gone is a 409 and nothing changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client

from marketing.models import Campaign, CampaignStatus, MessageTemplate, Segment
from social.models import (
    ClubSocialSettings,
    Platform,
    Promotion,
    PromotionReminder,
    Publication,
    PublicationStatus,
    ReminderStatus,
)
from social.promotion import competition_event_handle, promotion_cancel, promotion_edit
from tests.factories import ClubFactory

from .helpers import make_connection

NOW = datetime(2027, 3, 1, 10, 0, tzinfo=UTC)
PUBLISHED = "teetime.competition.published"


@pytest.fixture(autouse=True)
def _frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def club(tenant_a):
    club = ClubFactory(tenant=tenant_a, name="Royal Test", timezone="Europe/London")
    ClubSocialSettings.objects.create(
        tenant=tenant_a,
        club=club,
        auto_promote=True,
        channels=["email", "sms", "social"],
        send_hour=9,
    )
    make_connection(tenant_a, club, platform=Platform.X, account_id="x1")
    return club


@pytest.fixture
def promotion(tenant_a, club):
    return competition_event_handle(
        tenant=tenant_a,
        type=PUBLISHED,
        payload={
            "competitionId": "C-77",
            "name": "Spring Medal",
            "startsAt": "2027-04-02T08:00:00Z",
            "clubId": str(club.pk),
            "url": "https://teetime.example/c/77",
        },
        now=NOW,
    )


def _reminders(promotion):
    return {
        r.days_before: (r.send_at, r.status, r.campaign.status, r.campaign.scheduled_at)
        for r in PromotionReminder.objects.filter(promotion=promotion).select_related("campaign")
    }


def _publications(promotion):
    return [
        (p.status, p.scheduled_at, p.post.content)
        for p in Publication.objects.filter(post__promotion=promotion).select_related("post")
    ]


def _send(campaign: Campaign) -> None:
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.COMPLETED)


def test_an_edit_before_anything_goes_moves_everything_pending(promotion):
    later = NOW + timedelta(days=2)
    edited = promotion_edit(
        promotion=promotion,
        data={
            "announce_at": later,
            "send_hour": 18,
            "reminder_days": [3, 1],
            "channels": ["email", "social"],
            "social_text": "Enter now: {name} ({url})",
        },
        now=NOW,
    )

    announcement = Campaign.objects.get(pk=edited.campaign_id)
    assert (announcement.status, announcement.scheduled_at, announcement.channels) == (
        CampaignStatus.SCHEDULED,
        later,
        ["email"],
    )
    reminders = _reminders(edited)
    # 18:00 London time, BST from 28 March: 17:00 UTC; the 7-day reminder is taken out.
    assert reminders[3][:3] == (
        datetime(2027, 3, 30, 17, 0, tzinfo=UTC),
        ReminderStatus.PENDING,
        CampaignStatus.SCHEDULED,
    )
    assert reminders[1][0] == datetime(2027, 4, 1, 17, 0, tzinfo=UTC)
    assert (reminders[7][1], reminders[7][2]) == (
        ReminderStatus.CANCELLED,
        CampaignStatus.CANCELLED,
    )
    for days in (3, 1):
        campaign = PromotionReminder.objects.get(promotion=edited, days_before=days).campaign
        assert campaign.channels == ["email"]
        assert campaign.scheduled_at == reminders[days][0]
    assert _publications(edited) == [
        (
            PublicationStatus.SCHEDULED,
            later,
            "Enter now: Spring Medal (https://teetime.example/c/77)",
        )
    ]


def test_turning_social_off_cancels_the_unpublished_post(promotion):
    promotion_edit(promotion=promotion, data={"channels": ["email", "sms"]}, now=NOW)
    assert [p[0] for p in _publications(promotion)] == [PublicationStatus.CANCELLED]


def test_a_chosen_segment_and_template_reach_the_pending_campaigns(tenant_a, club, promotion):
    segment = Segment.objects.create(tenant=tenant_a, club=club, name="Seniors")
    template = MessageTemplate.objects.create(
        tenant=tenant_a, club=club, name="Mine", channel="email", subject="S", text_body="T"
    )
    promotion_edit(
        promotion=promotion, data={"segment": segment, "email_template": template}, now=NOW
    )
    promotion.refresh_from_db()
    assert promotion.campaign.segment == segment
    assert promotion.campaign.email_template == template
    reminder = PromotionReminder.objects.get(promotion=promotion, days_before=3).campaign
    assert reminder.email_template == template
    # Reminders go to the new audience minus the entrants.
    assert reminder.segment.name == "Not entered yet: Spring Medal"
    assert str(segment.pk) in str(reminder.segment.criteria)


def test_edits_of_what_has_gone_are_refused_and_change_nothing(promotion):
    _send(promotion.campaign)
    Publication.objects.filter(post__promotion=promotion).update(status=PublicationStatus.PUBLISHED)
    reminder_7 = PromotionReminder.objects.get(promotion=promotion, days_before=7)
    _send(reminder_7.campaign)
    before = (_reminders(promotion), _publications(promotion))

    for data, field in (
        ({"announce_at": NOW + timedelta(days=1)}, "announce_at"),
        ({"social_text": "Changed"}, "social_text"),
        ({"reminder_days": [3, 1]}, "reminder_days"),
    ):
        with pytest.raises(Exception) as refused:
            promotion_edit(promotion=promotion, data={**data, "send_hour": 7}, now=NOW)
        assert getattr(refused.value, "status_code", None) == 409
        assert field in refused.value.message_dict
    assert (_reminders(promotion), _publications(promotion)) == before
    assert Promotion.objects.get(pk=promotion.pk).send_hour is None

    # What has not gone still follows: the send hour moves the pending reminders.
    promotion_edit(promotion=promotion, data={"send_hour": 7}, now=NOW)
    reminders = _reminders(promotion)
    assert reminders[3][0] == datetime(2027, 3, 30, 6, 0, tzinfo=UTC)
    assert reminders[7][0] == before[0][7][0]  # the sent one stays where it was


def test_a_cancelled_promotion_cannot_be_edited(promotion):
    promotion_cancel(promotion=promotion, now=NOW)
    with pytest.raises(Exception) as refused:
        promotion_edit(promotion=promotion, data={"send_hour": 7}, now=NOW)
    assert refused.value.status_code == 409


def test_cancellation_notice_goes_only_when_on_and_people_were_told(tenant_a, club, promotion):
    ClubSocialSettings.objects.filter(club=club).update(notify_on_cancel=True)
    _send(promotion.campaign)
    cancelled = promotion_cancel(promotion=promotion, now=NOW)
    notice = cancelled.cancel_campaign
    assert (notice.status, notice.scheduled_at, notice.channels) == (
        CampaignStatus.SCHEDULED,
        NOW,
        ["email", "sms"],
    )
    assert "is cancelled" in notice.sms_template.body
    assert notice.segment.name == "Members of Royal Test"


def test_no_cancellation_notice_when_nothing_went_or_the_setting_is_off(tenant_a, club, promotion):
    ClubSocialSettings.objects.filter(club=club).update(notify_on_cancel=True)
    assert promotion_cancel(promotion=promotion, now=NOW).cancel_campaign is None

    other = competition_event_handle(
        tenant=tenant_a,
        type=PUBLISHED,
        payload={
            "competitionId": "C-78",
            "name": "Autumn Cup",
            "startsAt": "2027-04-02T08:00:00Z",
            "clubId": str(club.pk),
        },
        now=NOW,
    )
    ClubSocialSettings.objects.filter(club=club).update(notify_on_cancel=False)
    _send(other.campaign)
    assert promotion_cancel(promotion=other, now=NOW).cancel_campaign is None


# --- API ------------------------------------------------------------------------------------


def test_patch_edits_and_answers_the_promotion(api_a, promotion):
    response = api_a.patch(
        f"/api/v1/social/promotions/{promotion.pk}",
        {"send_hour": 18, "reminder_days": [1]},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["send_hour"] == 18
    pending = [r for r in body["reminders"] if r["status"] == "PENDING"]
    assert [(r["days_before"], r["send_at"]) for r in pending] == [(1, "2027-04-01T17:00:00Z")]


def test_patch_refuses_bad_input_with_field_errors(api_a, tenant_b, promotion):
    theirs = Segment.objects.create(tenant=tenant_b, club=ClubFactory(tenant=tenant_b), name="B")
    before = _reminders(promotion)
    response = api_a.patch(
        f"/api/v1/social/promotions/{promotion.pk}",
        {"send_hour": 25, "channels": ["fax"], "segment": str(theirs.pk)},
        format="json",
    )
    assert response.status_code == 400
    assert {"send_hour", "channels", "segment"} <= set(response.json()["error"]["fields"])
    assert _reminders(promotion) == before


def test_patch_of_what_has_gone_is_a_409(api_a, promotion):
    _send(promotion.campaign)
    response = api_a.patch(
        f"/api/v1/social/promotions/{promotion.pk}",
        {"announce_at": "2027-03-05T10:00:00Z"},
        format="json",
    )
    assert response.status_code == 409
    assert "announce_at" in response.json()["error"]["fields"]


def test_another_tenant_s_promotion_is_404(api_b, promotion):
    response = api_b.patch(
        f"/api/v1/social/promotions/{promotion.pk}", {"send_hour": 7}, format="json"
    )
    assert response.status_code == 404
    assert Promotion.objects.get(pk=promotion.pk).send_hour is None


# --- admin ----------------------------------------------------------------------------------


def _admin_form(promotion, **changes):
    local = promotion.announce_at.astimezone(UTC)
    form = {
        "announce_at_0": local.strftime("%Y-%m-%d"),
        "announce_at_1": local.strftime("%H:%M:%S"),
        "channels": "null",
        "segment": "",
        "email_template": "",
        "sms_template": "",
        "social_text": "",
        "send_hour": "",
        "reminder_days": "null",
        "reminders-TOTAL_FORMS": "3",
        "reminders-INITIAL_FORMS": "3",
        "reminders-MIN_NUM_FORMS": "0",
        "reminders-MAX_NUM_FORMS": "1000",
    }
    for i, reminder in enumerate(PromotionReminder.objects.filter(promotion=promotion)):
        form[f"reminders-{i}-id"] = str(reminder.pk)
        form[f"reminders-{i}-promotion"] = str(promotion.pk)
    form.update(changes)
    return form


@pytest.fixture
def admin_client(staff_a):
    client = Client()
    client.force_login(staff_a)
    return client


def test_the_admin_edits_a_promotion_and_moves_its_reminders(admin_client, promotion):
    url = f"/admin/social/promotion/{promotion.pk}/change/"
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, _admin_form(promotion, send_hour="18"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert _reminders(promotion)[3][0] == datetime(2027, 3, 30, 17, 0, tzinfo=UTC)


def test_the_admin_shows_a_refused_edit_and_changes_nothing(admin_client, promotion):
    _send(promotion.campaign)
    url = f"/admin/social/promotion/{promotion.pk}/change/"
    response = admin_client.post(
        url, _admin_form(promotion, announce_at_0="2027-03-05", send_hour="18")
    )
    assert response.status_code == 200
    assert "The announcement has gone out." in response.content.decode()
    assert _reminders(promotion)[3][0] == datetime(2027, 3, 30, 8, 0, tzinfo=UTC)
