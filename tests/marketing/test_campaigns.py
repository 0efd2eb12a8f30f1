"""Campaigns: templates, state changes, schedules across DST, the snapshot with consent,
suppression, frequency cap and quiet hours, sends that never double, A/B tests, the API."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta

import pytest
import responses
from django.core import mail
from django.utils import timezone

from customers.models import CustomerProfile
from marketing import messaging
from marketing.campaigns import campaign_schedule
from marketing.common import campaign_tz, message_identity, next_occurrence
from marketing.models import (
    Campaign,
    CampaignRun,
    CampaignStatus,
    Interaction,
    Message,
    MessageStatus,
    RunStatus,
    Suppression,
)
from marketing.segments import segment_create
from marketing.sending import (
    ab_decide,
    campaigns_start_due,
    in_quiet_hours,
    run_prepare,
    run_send,
    runs_kick,
)
from marketing.templating import render, sample_context
from tests.customers.helpers import person
from tests.factories import MessageTemplateFactory
from tests.marketing.builders import (
    MEMBERS,
    NOON_JHB,
    make_campaign,
    make_member,
    prepare_run,
    run_to_completion,
)

pytestmark = [
    pytest.mark.django_db,
    # The clock shortly before noon in Johannesburg, and a fresh messaging backend.
    pytest.mark.usefixtures("at_ten_to_noon", "fresh_messaging_backend"),
]


# ----------------------------------------------------------------------------- templates


def test_rendering_sanitises_html_and_adds_the_unsubscribe_link(tenant_a):
    template = MessageTemplateFactory(
        tenant=tenant_a,
        html_body='<p onclick="steal()">Hi {{ first_name }}</p><script>x()</script>'
        '<a href="javascript:alert(1)">bad</a><a href="https://club.example">ok</a>',
    )
    context = {
        **sample_context(tenant_a),
        "first_name": "<b>Thabo</b>",
        "unsubscribe_url": "https://crm.example/u/abc",
    }
    rendered = render(template, context)
    assert rendered.subject == "Hello <b>Thabo</b>"  # subjects are plain text
    assert "&lt;b&gt;Thabo&lt;/b&gt;" in rendered.html  # autoescaped in HTML
    assert "<script" not in rendered.html and "onclick" not in rendered.html
    assert "javascript:" not in rendered.html
    assert 'href="https://club.example"' in rendered.html
    assert 'href="https://crm.example/u/abc">Unsubscribe</a>' in rendered.html
    assert rendered.text.endswith("Unsubscribe: https://crm.example/u/abc")


def test_template_api_validates_syntax_and_required_parts(api_a):
    bad = {
        "name": "Broken",
        "channel": "email",
        "subject": "Hi {% if first_name %}",
        "html_body": "<p>x</p>",
    }
    response = api_a.post("/api/v1/templates", bad, format="json")
    assert response.status_code == 400 and "subject" in response.json()["error"]["fields"]
    sms = api_a.post("/api/v1/templates", {"name": "Text", "channel": "sms"}, format="json")
    assert "body" in sms.json()["error"]["fields"]
    ok = api_a.post(
        "/api/v1/templates",
        {"name": "Text", "channel": "sms", "body": "Tee off at 7, {{ first_name }}!"},
        format="json",
    )
    assert ok.status_code == 201
    preview = api_a.post(f"/api/v1/templates/{ok.json()['id']}/preview", {}, format="json")
    assert preview.json()["body"] == "Tee off at 7, Thabo!"


# ----------------------------------------------------------------------------- schedules


@pytest.mark.parametrize(
    ("after", "expected_utc"),
    [
        # The UK clocks go forward on 28 March 2027: 09:00 local is 09:00 UTC before, 08:00 after.
        (datetime(2027, 3, 27, 10, 0, tzinfo=UTC), datetime(2027, 3, 28, 8, 0, tzinfo=UTC)),
        (datetime(2027, 3, 26, 10, 0, tzinfo=UTC), datetime(2027, 3, 27, 9, 0, tzinfo=UTC)),
        # And back on 25 October 2026: 09:00 local is 08:00 UTC before, 09:00 after.
        (datetime(2026, 10, 24, 9, 0, tzinfo=UTC), datetime(2026, 10, 25, 9, 0, tzinfo=UTC)),
    ],
)
def test_recurring_schedule_keeps_local_time_across_uk_dst(tenant_b, after, expected_utc):
    campaign = Campaign(
        tenant=tenant_b, type="RECURRING", cron="0 9 * * *", timezone="Europe/London"
    )
    assert next_occurrence(campaign, after) == expected_utc


# ----------------------------------------------------------------------------- state changes


def test_every_state_change_and_the_refused_ones(api_a, tenant_a):
    segment = segment_create(tenant=tenant_a, data={"name": "S", "criteria": MEMBERS})
    template = MessageTemplateFactory(tenant=tenant_a)
    body = {
        "name": "News",
        "segment_id": str(segment.pk),
        "channels": ["email"],
        "email_template_id": str(template.pk),
        "scheduled_at": (timezone.now() + timedelta(days=1)).isoformat(),
    }
    created = api_a.post("/api/v1/campaigns", body, format="json")
    assert created.status_code == 201 and created.json()["status"] == "DRAFT"
    url = f"/api/v1/campaigns/{created.json()['id']}"

    def act(action):
        return api_a.post(f"{url}/{action}")

    assert act("resume").status_code == 409  # a draft is not paused
    assert act("pause").status_code == 409
    scheduled = act("schedule")
    assert scheduled.status_code == 200 and scheduled.json()["status"] == "SCHEDULED"
    assert scheduled.json()["next_run_at"]
    assert act("schedule").status_code == 409
    assert act("pause").json()["status"] == "PAUSED"
    assert act("resume").json()["status"] == "SCHEDULED"
    assert act("cancel").json()["status"] == "CANCELLED"
    for action in ("schedule", "pause", "resume", "cancel"):
        response = act(action)
        assert response.status_code == 409, action
        assert response.json()["error"]["code"] == "conflict"
    assert api_a.patch(url, {"name": "x"}, format="json").status_code == 409
    assert api_a.delete(url).status_code == 204


def test_scheduling_needs_a_segment_channels_templates_and_a_time(api_a, tenant_a):
    created = api_a.post("/api/v1/campaigns", {"name": "Empty"}, format="json").json()
    response = api_a.post(f"/api/v1/campaigns/{created['id']}/schedule")
    assert response.status_code == 400
    assert {"segment", "channels", "scheduled_at"} <= set(response.json()["error"]["fields"])
    sms_template = MessageTemplateFactory(tenant=tenant_a, name="T", channel="sms", body="Hi")
    bad = api_a.post(
        "/api/v1/campaigns",
        {"name": "Wrong", "channels": ["email"], "email_template_id": str(sms_template.pk)},
        format="json",
    )
    assert bad.status_code == 400 and "email_template" in bad.json()["error"]["fields"]
    cron = api_a.post(
        "/api/v1/campaigns",
        {"name": "Often", "type": "RECURRING", "cron": "* * * * *"},
        format="json",
    )
    assert "cron" in cron.json()["error"]["fields"]


def test_another_tenants_campaign_is_404(api_b, tenant_a):
    campaign = make_campaign(tenant_a)
    for method, path in (
        ("get", ""),
        ("patch", ""),
        ("delete", ""),
        ("post", "/schedule"),
        ("post", "/cancel"),
        ("get", "/stats"),
        ("post", "/send-test"),
    ):
        response = getattr(api_b, method)(
            f"/api/v1/campaigns/{campaign.pk}{path}", {}, format="json"
        )
        assert response.status_code == 404, (method, path)


# ----------------------------------------------------------------------------- sending


def test_snapshot_applies_consent_suppression_address_and_frequency_cap(tenant_a):
    ok = make_member(tenant_a, "ok@example.com", email_opt_in=True)
    make_member(tenant_a, "no-consent@example.com", email_opt_in=False)
    make_member(tenant_a, "blocked@example.com", email_opt_in=True)
    no_email = person(tenant_a, phone="+27825550999")
    CustomerProfile.objects.filter(pk=no_email.pk).update(
        lifecycle_stage="MEMBER", email_opt_in=True
    )
    capped = make_member(tenant_a, "busy@example.com", email_opt_in=True)
    Suppression.objects.create(
        tenant=tenant_a, channel="email", address="blocked@example.com", reason="unsubscribed"
    )
    # Three marketing messages this week already.
    earlier = make_campaign(tenant_a, name="Earlier")
    run = CampaignRun.objects.create(
        tenant=tenant_a, campaign=earlier, scheduled_for=timezone.now()
    )
    for i in range(3):
        Message.objects.create(
            tenant=tenant_a,
            run=run,
            campaign=earlier,
            customer=capped,
            channel=["email", "sms", "push"][i],
            status=MessageStatus.SENT,
            sent_at=timezone.now() - timedelta(days=i + 1),
        )
    campaign = make_campaign(tenant_a)
    run = run_to_completion(campaign)
    rows = {m.customer_id: m for m in Message.objects.filter(run=run)}
    assert rows[ok.pk].status == MessageStatus.SENT
    reasons = {
        m.address or "(none)": m.skip_reason
        for m in rows.values()
        if m.status == MessageStatus.SKIPPED
    }
    assert reasons == {
        "no-consent@example.com": "no_consent",
        "blocked@example.com": "suppressed",
        "(none)": "no_address",
        "busy@example.com": "frequency_cap",
    }
    assert [m.to for m in mail.outbox] == [["ok@example.com"]]
    stats = Campaign.objects.get(pk=campaign.pk)
    assert stats.status == CampaignStatus.COMPLETED and stats.target_count == 5
    assert run.status == RunStatus.COMPLETED


def test_sent_email_carries_unsubscribe_headers_and_a_stable_message_id(tenant_a):
    make_member(tenant_a, "ann@example.com", email_opt_in=True)
    run = run_to_completion(make_campaign(tenant_a))
    [email] = mail.outbox
    assert email.subject == "Hello Ann"
    assert email.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert email.extra_headers["List-Unsubscribe"].startswith("<http://127.0.0.1:8000/u/")
    message = Message.objects.get(run=run)
    assert email.extra_headers["Message-ID"] == message.provider_id
    assert "Unsubscribe" in email.alternatives[0].content


def test_a_retried_or_resumed_send_never_sends_a_row_twice(tenant_a):
    for i in range(5):
        make_member(tenant_a, f"p{i}@example.com", email_opt_in=True)
    campaign = make_campaign(tenant_a)
    run = run_to_completion(campaign)
    assert len(mail.outbox) == 5
    # The same task delivered again, a kick from the sweep, a second prepare: nothing new.
    assert run_send(run=run, now_fn=lambda: NOON_JHB) == 0
    run_prepare(run=run, now=NOON_JHB)
    assert campaigns_start_due(now=NOON_JHB + timedelta(hours=1)) == 0
    assert len(mail.outbox) == 5
    assert Message.objects.filter(run=run).count() == 5


def test_quiet_hours_hold_messages_until_the_window_opens(tenant_a):
    make_member(tenant_a, "late@example.com", email_opt_in=True)
    night = datetime(2026, 11, 24, 20, 30, tzinfo=UTC)  # 22:30 in Johannesburg
    assert in_quiet_hours(tenant_a, night)
    campaign = make_campaign(tenant_a, scheduled_at=night)
    run = prepare_run(campaign, night)
    assert run_send(run=run, now_fn=lambda: night) == 0
    assert Message.objects.get(run=run).status == MessageStatus.QUEUED
    assert not mail.outbox
    morning = datetime(2026, 11, 25, 6, 5, tzinfo=UTC)  # 08:05 local
    assert not in_quiet_hours(tenant_a, morning)
    assert run_send(run=run, now_fn=lambda: morning) == 1
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.COMPLETED


def test_quiet_hours_and_cap_are_per_tenant(tenant_a):
    tenant_a.quiet_hours_start, tenant_a.quiet_hours_end = time(22, 0), time(6, 0)
    assert not in_quiet_hours(tenant_a, datetime(2026, 11, 24, 19, 0, tzinfo=UTC))  # 21:00
    assert in_quiet_hours(tenant_a, datetime(2026, 11, 24, 21, 0, tzinfo=UTC))  # 23:00


def test_an_unsubscribe_mid_send_excludes_the_contact_from_the_rest(tenant_a, monkeypatch):
    from marketing import sending

    for i in range(4):
        make_member(tenant_a, f"p{i}@example.com", email_opt_in=True)
    campaign = make_campaign(tenant_a)
    run = prepare_run(campaign)
    monkeypatch.setattr(sending, "CLAIM_SIZE", 2)
    original = sending._claim
    calls = []

    def claim_then_unsubscribe(run_, now):
        rows = original(run_, now)
        calls.append(len(rows))
        if len(calls) == 1:  # after the first batch is claimed, p3 unsubscribes
            Suppression.objects.create(
                tenant=tenant_a, channel="email", address="p3@example.com", reason="unsubscribed"
            )
        return rows

    monkeypatch.setattr(sending, "_claim", claim_then_unsubscribe)
    run_send(run=run, now_fn=lambda: NOON_JHB)
    assert sorted(m.to[0] for m in mail.outbox) == [
        "p0@example.com",
        "p1@example.com",
        "p2@example.com",
    ]
    p3 = Message.objects.get(run=run, address="p3@example.com")
    assert (p3.status, p3.skip_reason) == (MessageStatus.SKIPPED, "suppressed")


def test_a_paused_campaign_stops_and_resumes_where_it_was(tenant_a):
    from marketing.campaigns import campaign_pause, campaign_resume

    for i in range(3):
        make_member(tenant_a, f"p{i}@example.com", email_opt_in=True)
    campaign = make_campaign(tenant_a)
    run = prepare_run(campaign)
    campaign_pause(campaign=campaign)
    assert run_send(run=run, now_fn=lambda: NOON_JHB) == 0
    campaign_resume(campaign=campaign)
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SENDING
    assert run_send(run=run, now_fn=lambda: NOON_JHB) == 3
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.COMPLETED


def test_rows_in_doubt_are_sent_again_with_the_same_message_id(tenant_a):
    make_member(tenant_a, "doubt@example.com", email_opt_in=True)
    campaign = make_campaign(tenant_a)
    run = prepare_run(campaign)
    # A worker claimed the row, then died before it could mark it sent.
    Message.objects.filter(run=run).update(
        status=MessageStatus.SENDING, send_after=timezone.now() - timedelta(minutes=10)
    )
    assert run_status(run) == RunStatus.SENDING
    runs_kick(now=timezone.now())
    assert Message.objects.get(run=run).status == MessageStatus.QUEUED
    run_send(run=run)
    [email] = mail.outbox
    assert email.extra_headers["Message-ID"] == Message.objects.get(run=run).provider_id


def run_status(run):
    run.refresh_from_db()
    return run.status


# ----------------------------------------------------------------------------- A/B


def test_ab_split_is_deterministic_and_the_winner_gets_the_rest(tenant_a):
    for i in range(40):
        make_member(tenant_a, f"ab{i}@example.com", email_opt_in=True)
    campaign = make_campaign(
        tenant_a,
        ab_test={
            "variants": [{"subject": "Subject A"}, {"subject": "Subject B"}],
            "test_fraction": 0.5,
            "wait_minutes": 60,
            "metric": "open",
        },
    )
    run = prepare_run(campaign)
    assert run_status(run) == RunStatus.TESTING
    variants = dict(Message.objects.filter(run=run).values_list("customer_id", "variant"))
    held = Message.objects.filter(run=run, status=MessageStatus.HELD).count()
    tested = {v for v in variants.values() if v}
    assert tested == {"A", "B"} and 0 < held < 40
    run_send(run=run, now_fn=lambda: NOON_JHB)
    assert len(mail.outbox) == 40 - held
    assert {e.subject for e in mail.outbox} == {"Subject A", "Subject B"}
    # B's recipients open more.
    for message in Message.objects.filter(run=run, variant="B", status=MessageStatus.SENT):
        Interaction.objects.create(
            tenant=tenant_a,
            message=message,
            campaign=campaign,
            customer_id=message.customer_id,
            kind="OPENED",
            source="test",
            event_id=f"o{message.pk}",
            occurred_at=timezone.now(),
        )
    assert ab_decide(run=run) == "B"
    assert Campaign.objects.get(pk=campaign.pk).ab_winner == "B"
    run_send(run=run, now_fn=lambda: NOON_JHB)
    assert len(mail.outbox) == 40
    assert sum(e.subject == "Subject B" for e in mail.outbox) > sum(
        e.subject == "Subject A" for e in mail.outbox
    )
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.COMPLETED
    # The same people get the same variants in a re-prepared split (deterministic).
    assert variants == {
        cid: v
        for cid, v in Message.objects.filter(run=run).values_list("customer_id", "variant")
        if v in ("A", "B") and variants[cid]
    } | {cid: v for cid, v in variants.items() if not v}


def test_staff_can_choose_the_winner(api_a, tenant_a):
    for i in range(10):
        make_member(tenant_a, f"w{i}@example.com", email_opt_in=True)
    campaign = make_campaign(
        tenant_a,
        ab_test={
            "variants": [{"subject": "A"}, {"subject": "B"}, {"subject": "C"}],
            "test_fraction": 0.5,
            "wait_minutes": 60,
        },
    )
    prepare_run(campaign)
    url = f"/api/v1/campaigns/{campaign.pk}/ab-winner"
    assert api_a.post(url, {"variant": "D"}, format="json").status_code == 400
    assert api_a.post(url, {"variant": "C"}, format="json").json() == {"winner": "C"}
    assert api_a.post(url, {"variant": "A"}, format="json").status_code == 409
    assert not Message.objects.filter(campaign=campaign, status=MessageStatus.HELD).exists()


def test_stats_and_send_test(api_a, tenant_a):
    make_member(tenant_a, "s@example.com", email_opt_in=True)
    make_member(tenant_a, "n@example.com", email_opt_in=False)
    campaign = make_campaign(tenant_a)
    run_to_completion(campaign)
    stats = api_a.get(f"/api/v1/campaigns/{campaign.pk}/stats").json()
    assert (stats["targeted"], stats["sent"], stats["skipped"]) == (2, 1, 1)
    assert stats["skip_reasons"] == {"no_consent": 1}
    mail.outbox.clear()
    response = api_a.post(
        f"/api/v1/campaigns/{campaign.pk}/send-test",
        {"to": ["qa@example.com", "not an address"]},
        format="json",
    )
    assert response.status_code == 400 and not mail.outbox
    response = api_a.post(
        f"/api/v1/campaigns/{campaign.pk}/send-test", {"to": ["qa@example.com"]}, format="json"
    )
    assert response.json() == {"sent": 1}
    assert mail.outbox[0].subject == "[TEST] Hello Thabo"


def test_a_segment_in_use_cannot_be_deleted(api_a, tenant_a):
    campaign = make_campaign(tenant_a)
    response = api_a.delete(f"/api/v1/segments/{campaign.segment_id}")
    assert response.status_code == 409
    assert "Campaigns send to this segment" in str(response.json())


def test_templates_of_another_tenant_are_404(api_b, tenant_a):
    template = MessageTemplateFactory(tenant=tenant_a)
    assert api_b.get(f"/api/v1/templates/{template.pk}").status_code == 404
    assert (
        api_b.post(f"/api/v1/templates/{template.pk}/preview", {}, format="json").status_code == 404
    )
    assert api_b.delete(f"/api/v1/templates/{template.pk}").status_code == 404


def test_a_recurring_campaign_goes_back_to_scheduled_for_its_next_time(tenant_a):
    make_member(tenant_a, "weekly@example.com", email_opt_in=True)
    campaign = make_campaign(
        tenant_a,
        type="RECURRING",
        cron="0 9 * * 1",
        scheduled_at=None,
        timezone="Africa/Johannesburg",
    )
    campaign_schedule(campaign=campaign)
    campaign.refresh_from_db()
    first = campaign.next_run_at
    assert first.astimezone(campaign_tz(campaign)).hour == 9
    campaigns_start_due(now=first + timedelta(minutes=1))
    run = CampaignRun.objects.get(campaign=campaign)
    run_prepare(run=run, now=first)
    later = first + timedelta(hours=2)  # 11:00 local: outside quiet hours
    run_send(run=run, now_fn=lambda: later)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SCHEDULED
    assert campaign.next_run_at == first + timedelta(days=7)
    assert len(mail.outbox) == 1


@responses.activate
def test_the_http_backend_sends_batches_with_idempotency_keys(tenant_a, settings):
    settings.MESSAGING_BACKEND = "http"
    settings.MESSAGING_URL = "http://messaging.test"
    settings.MESSAGING_API_KEY = "k"
    messaging.get_backend.cache_clear()
    for i in range(3):
        make_member(tenant_a, f"h{i}@example.com", email_opt_in=True)
    campaign = make_campaign(tenant_a)
    run = prepare_run(campaign)

    def answer(request):
        sent = json.loads(request.body)["messages"]
        results = [
            {
                "idempotencyKey": m["idempotencyKey"],
                "id": f"ms-{i}",
                "status": "rejected" if m["to"] == "h2@example.com" else "accepted",
                "error": "mailbox does not exist" if m["to"] == "h2@example.com" else None,
            }
            for i, m in enumerate(sent)
        ]
        return 200, {}, json.dumps({"results": results})

    responses.add_callback(
        responses.POST, "http://messaging.test/v1/messages/batch", callback=answer
    )
    run_send(run=run, now_fn=lambda: NOON_JHB)
    rows = {m.address: m for m in Message.objects.filter(run=run)}
    assert rows["h0@example.com"].status == MessageStatus.SENT
    assert rows["h0@example.com"].provider_id.startswith("ms-")
    # The rejected one waits (1, then 2 minutes) between attempts, then FAILS with its error.
    assert rows["h2@example.com"].status == MessageStatus.QUEUED
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SENDING
    for minutes in (2, 5):
        run_send(run=run, now_fn=lambda m=minutes: NOON_JHB + timedelta(minutes=m))
    rows = {m.address: m for m in Message.objects.filter(run=run)}
    assert rows["h2@example.com"].status == MessageStatus.FAILED
    assert rows["h2@example.com"].error == "mailbox does not exist"
    bodies = [json.loads(c.request.body) for c in responses.calls]
    keys = [m["idempotencyKey"] for body in bodies for m in body["messages"]]
    assert keys.count(message_identity(rows["h0@example.com"])) == 1
    assert all(c.request.headers["Idempotency-Key"].startswith("batch:") for c in responses.calls)
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.COMPLETED
    messaging.get_backend.cache_clear()


def test_a_run_that_cannot_be_prepared_fails_the_campaign_and_sends_nothing(tenant_a):
    from marketing.models import Segment
    from marketing.tasks import prepare_run as prepare_task

    make_member(tenant_a, "f@example.com", email_opt_in=True)
    campaign = make_campaign(tenant_a)
    campaign_schedule(campaign=campaign)
    # The segment's rules went bad behind the API's back (say, a field was retired).
    Segment.objects.filter(pk=campaign.segment_id).update(
        criteria={
            "combinator": "AND",
            "rules": [{"field": "retired", "operator": "eq", "value": "x"}],
        }
    )
    campaigns_start_due(now=NOON_JHB + timedelta(minutes=1))
    run = CampaignRun.objects.get(campaign=campaign)
    assert prepare_task.run(tenant_a, run_id=run.pk) is None
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.FAILED
    assert "Unknown field 'retired'" in campaign.failure
    assert run_status(run) == RunStatus.CANCELLED
    assert not Message.objects.filter(run=run).exists() and not mail.outbox


def test_ab_test_variants_held_by_quiet_hours_are_sent_when_the_window_opens(tenant_a, monkeypatch):
    from marketing import sending

    for i in range(20):
        make_member(tenant_a, f"q{i}@example.com", email_opt_in=True)
    night = datetime(2026, 11, 24, 20, 30, tzinfo=UTC)  # 22:30 in Johannesburg
    campaign = make_campaign(
        tenant_a,
        scheduled_at=night,
        ab_test={
            "variants": [{"subject": "A"}, {"subject": "B"}],
            "test_fraction": 0.5,
            "wait_minutes": 600,
        },
    )
    run = prepare_run(campaign, night)
    assert run_send(run=run, now_fn=lambda: night) == 0  # quiet hours
    kicked = []
    monkeypatch.setattr(
        sending, "run_queue_senders", lambda run_, senders=2: kicked.append(run_.pk)
    )
    morning = datetime(2026, 11, 25, 6, 5, tzinfo=UTC)  # 08:05 local, before the A/B wait ends
    assert runs_kick(now=morning) == 1
    assert kicked == [run.pk]
