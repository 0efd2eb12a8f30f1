"""Interactions: the signed webhook (tampered body, old timestamp, replayed id change
nothing), one-click unsubscribe, open pixel and click redirect, stats, consent that stays
cleared."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.utils import timezone

from customers.models import Activity
from marketing.campaigns import campaign_stats
from marketing.common import message_identity
from marketing.interactions import message_by_identity
from marketing.models import Interaction, Message, MessageStatus, Suppression
from tests.factories import MessageTemplateFactory
from tests.marketing.builders import (
    WEBHOOK_URL,
    make_campaign,
    make_member,
    post_webhook,
    run_to_completion,
    webhook_event,
)

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("at_ten_to_noon", "fresh_messaging_backend"),
]


def test_signed_events_become_interactions_activities_and_stats(client, sent):
    ann, campaign, message = sent
    response = post_webhook(
        client,
        [
            webhook_event(message, "delivered", "d1"),
            webhook_event(message, "opened", "o1"),
            webhook_event(message, "clicked", "c1", data={"url": "https://x.test"}),
        ],
    )
    assert response.status_code == 200
    assert response.json() == {"recorded": 3, "duplicates": 0, "rejected": []}
    stats = campaign_stats(campaign=campaign)
    assert (stats["sent"], stats["delivered"], stats["opened"], stats["clicked"]) == (1, 1, 1, 1)
    types = set(Activity.objects.filter(customer=ann).values_list("type", flat=True))
    assert {"email.delivered", "email.opened", "email.clicked"} <= types
    ann.refresh_from_db()
    assert ann.last_activity_type in ("email.opened", "email.clicked")


@pytest.mark.parametrize("problem", ["tampered", "old", "wrong-secret", "missing"])
def test_bad_signatures_change_nothing(client, sent, problem):
    _ann, _campaign, message = sent
    events = [webhook_event(message, "opened", "o-bad")]
    if problem == "tampered":
        response = post_webhook(client, events, tamper=True)
    elif problem == "old":
        response = post_webhook(client, events, timestamp=time.time() - 301)
    elif problem == "wrong-secret":
        response = post_webhook(client, events, secret="not-the-secret")
    else:
        response = client.post(WEBHOOK_URL, {"events": events}, content_type="application/json")
    assert response.status_code == 401
    assert response.json()["error"]["status"] == 401
    assert not Interaction.objects.exists()


def test_a_replayed_event_id_is_acknowledged_and_not_applied_again(client, sent):
    _ann, campaign, message = sent
    assert post_webhook(client, [webhook_event(message, "opened", "o1")]).json()["recorded"] == 1
    again = post_webhook(client, [webhook_event(message, "opened", "o1")])
    assert again.status_code == 200 and again.json()["duplicates"] == 1
    assert Interaction.objects.count() == 1
    assert campaign_stats(campaign=campaign)["opened"] == 1


def test_unknown_messages_and_malformed_events_are_reported(client, sent):
    _ann, _campaign, message = sent
    forged = f"crm-{message.pk}-{'0' * 24}"
    response = post_webhook(
        client,
        [
            {
                "id": "x1",
                "type": "opened",
                "messageId": forged,
                "timestamp": timezone.now().isoformat(),
            },
            {
                "id": "x2",
                "type": "teleported",
                "messageId": message_identity(message),
                "timestamp": "yesterday",
            },
        ],
    )
    assert response.status_code == 200
    rejected = {r["id"]: r["errors"] for r in response.json()["rejected"]}
    assert rejected["x1"] == {"messageId": ["Unknown message."]}
    assert set(rejected["x2"]) == {"type", "timestamp"}
    assert not Interaction.objects.exists()
    assert message_by_identity(forged) is None


def test_unsubscribe_and_complaint_clear_consent_and_suppress_at_once(client, sent, tenant_a):
    ann, _campaign, message = sent
    post_webhook(client, [webhook_event(message, "complained", "spam1")])
    ann.refresh_from_db()
    assert ann.email_opt_in is False and ann.email_consent_source == "complained"
    assert Suppression.objects.filter(
        tenant=tenant_a, channel="email", address="ann@example.com", reason="complained"
    ).exists()
    # A later "delivered" or "opened" does not undo it; nor does an older opt-in event.
    post_webhook(
        client, [webhook_event(message, "delivered", "d2"), webhook_event(message, "opened", "o2")]
    )
    from tests.events.helpers import event, run

    run(
        tenant_a,
        event(
            tenant_a,
            "contactPreference.updated",
            {"email": "ann@example.com"},
            {"emailOptIn": True},
            timestamp=(timezone.now() - timedelta(hours=1)).isoformat(),
        ),
    )
    ann.refresh_from_db()
    assert ann.email_opt_in is False


def test_a_soft_bounce_does_not_suppress_a_hard_one_does(client, sent, tenant_a):
    ann, _campaign, message = sent
    post_webhook(client, [webhook_event(message, "bounced", "b1", data={"bounce": "soft"})])
    ann.refresh_from_db()
    assert ann.email_opt_in is True and not Suppression.objects.exists()
    post_webhook(client, [webhook_event(message, "bounced", "b2", data={"bounce": "hard"})])
    assert Suppression.objects.filter(reason="bounced").exists()


def test_one_click_unsubscribe_page_and_post(client, sent, tenant_a):
    ann, campaign, _message = sent
    [email] = mail.outbox
    link = re.search(r"<(http://[^>]+/u/[^>]+)>", email.extra_headers["List-Unsubscribe"])[1]
    path = link.replace(settings.PUBLIC_BASE_URL, "")
    page = client.get(path)
    assert page.status_code == 200 and b"Unsubscribe?" in page.content
    ann.refresh_from_db()
    assert ann.email_opt_in is True  # a GET (a link scanner) changes nothing
    done = client.post(path, {"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and b"You are unsubscribed" in done.content
    ann.refresh_from_db()
    assert ann.email_opt_in is False
    assert campaign_stats(campaign=campaign)["unsubscribed"] == 1
    from customers.models import ConsentRecord

    record = ConsentRecord.objects.get(customer=ann)
    assert (record.channel, record.opt_in, record.source) == ("email", False, "unsubscribed")
    assert record.evidence["campaign_id"] == str(campaign.pk)
    assert client.post(path).status_code == 200  # again: harmless
    assert Interaction.objects.filter(kind="UNSUBSCRIBED").count() == 1
    assert client.get("/u/forged-token").status_code == 404


def test_open_pixel_and_click_redirect(client, sent):
    _ann, campaign, message = sent
    html = mail.outbox[0].alternatives[0].content
    pixel = re.search(r'<img src="http://127\.0\.0\.1:8000(/t/o/[^"]+)"', html)[1]
    assert client.get(pixel)["Content-Type"] == "image/gif"
    assert client.get(pixel).status_code == 200
    click = re.search(r'href="http://127\.0\.0\.1:8000(/t/c/[^"]+)"', html)
    assert click is None  # the template has no links
    from marketing.interactions import click_url

    target = click_url(message, "https://club.example/book")
    response = client.get(target.replace(settings.PUBLIC_BASE_URL, ""))
    assert response.status_code == 302 and response.url == "https://club.example/book"
    stats = campaign_stats(campaign=campaign)
    assert (stats["opened"], stats["clicked"]) == (1, 1)
    assert client.get("/t/c/forged").status_code == 404


def test_links_in_html_go_through_the_click_redirect(tenant_a):
    from marketing.templating import render, sample_context

    make_member(tenant_a, "links@example.com", email_opt_in=True)
    template = MessageTemplateFactory(
        tenant=tenant_a, html_body='<a href="https://club.example/?a=1&b=2">Book</a>'
    )
    campaign = make_campaign(
        tenant_a, email_template=template, scheduled_at=timezone.now() + timedelta(minutes=1)
    )
    run_to_completion(campaign, now=timezone.now())
    html = mail.outbox[0].alternatives[0].content
    assert "https://club.example" not in html.split("Unsubscribe")[0]
    assert "/t/c/" in html
    assert render(template, sample_context(tenant_a)).html  # renders without tracking too


def test_an_unsubscribe_link_still_works_a_month_later(client, sent):
    ann, _campaign, message = sent
    from marketing.delivery import unsubscribe_url

    path = unsubscribe_url(message).replace(settings.PUBLIC_BASE_URL, "")
    with time_machine.travel(timezone.now() + timedelta(days=31)):
        assert client.post(path).status_code == 200
    ann.refresh_from_db()
    assert ann.email_opt_in is False
    tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    response = client.post(tampered)
    assert response.status_code == 404 and b"not valid" in response.content
    assert b"ann@example.com" not in response.content


def test_an_sms_stop_clears_sms_only(client, tenant_a):
    from marketing.models import MessageTemplate

    bob = make_member(
        tenant_a, "bob@example.com", email_opt_in=True, sms_opt_in=True, phone="+27825550404"
    )
    sms = MessageTemplate.objects.create(
        tenant=tenant_a, name="SMS", channel="sms", body="Tee times open, {{ first_name }}"
    )
    campaign = make_campaign(
        tenant_a,
        channels=["sms"],
        email_template=None,
        sms_template=sms,
        scheduled_at=timezone.now() + timedelta(minutes=1),
    )
    campaign.email_template = None
    campaign.save()
    run = run_to_completion(campaign, now=timezone.now())
    message = Message.objects.get(run=run, channel="sms")
    assert message.status == MessageStatus.SENT
    post_webhook(
        client, [webhook_event(message, "unsubscribed", "stop-1", data={"keyword": "STOP"})]
    )
    bob.refresh_from_db()
    assert (bob.sms_opt_in, bob.email_opt_in) == (False, True)
    assert Suppression.objects.filter(channel="sms", address="+27825550404").exists()
    assert not Suppression.objects.filter(channel="email").exists()
