"""Templates render in a restricted engine (issue 11, item 4) and a message that cannot be
rendered, or is left in doubt, ends in a terminal state instead of wedging its campaign
(item 5)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from customers.models import CustomerProfile
from marketing import messaging
from marketing.campaigns import campaign_cancel, campaign_schedule
from marketing.common import MAX_SEND_ATTEMPTS
from marketing.delivery import deliver, send_plan
from marketing.models import (
    Campaign,
    CampaignRun,
    CampaignStatus,
    Message,
    MessageStatus,
    MessageTemplate,
    RunStatus,
)
from marketing.sending import campaigns_start_due, run_prepare, run_send, runs_kick
from marketing.templating import SMS_MAX_LENGTH, render, sample_context
from tests.factories import MessageTemplateFactory
from tests.marketing.builders import NOON_JHB, make_campaign, make_member, run_to_completion

pytestmark = [
    pytest.mark.django_db,
    # The clock shortly before noon in Johannesburg, and a fresh messaging backend.
    pytest.mark.usefixtures("at_ten_to_noon", "fresh_messaging_backend"),
]

SCRIPT = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
# What the probes of issue 11 saved: each passed validation and then emitted live script,
# ran for hours, built hundreds of megabytes, or failed only at send time.
ATTACKS = {
    "safe": "<p>{{ first_name|safe }}</p>",
    "stringformat_safe": '<p>{{ first_name|stringformat:"s"|safe }}</p>',
    "autoescape_off": "<p>{% autoescape off %}{{ first_name }}{% endautoescape %}</p>",
    "nested_loops": "{% for a in email %}{% for b in email %}{% for c in email %}"
    "{% for d in email %}x{% endfor %}{% endfor %}{% endfor %}{% endfor %}",
    "ljust": '<p>{{ first_name|ljust:"300000000" }}</p>',
    "lorem": "<p>{% lorem 5000 w %}</p>",
    "include": '{% include "admin/base.html" %}',
    "extends": '{% extends "admin/base.html" %}',
    "load": "{% load static %}<p>{% static 'x.js' %}</p>",
    "method_call": "<p>{{ first_name.upper }}</p>",
    "debug": "{% debug %}",
    "now": '{% now "Y" %}',
}


def _run(campaign):
    campaign_schedule(campaign=campaign)
    campaigns_start_due(now=NOON_JHB + timedelta(minutes=1))
    run = CampaignRun.objects.get(campaign=campaign)
    run_prepare(run=run, now=NOON_JHB)
    run.refresh_from_db()
    return run


# ----------------------------------------------------------------------------- item 4


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_the_api_refuses_each_disallowed_construct_and_saves_nothing(api_a, attack):
    body = {"name": "Probe", "channel": "email", "subject": "Hi", "html_body": ATTACKS[attack]}
    started = time.monotonic()
    response = api_a.post("/api/v1/templates", body, format="json")
    assert time.monotonic() - started < 5
    assert response.status_code == 400, response.json()
    [problem] = response.json()["error"]["fields"]["html_body"]
    assert problem.startswith("Template error:")
    assert not MessageTemplate.objects.filter(name="Probe").exists()


def test_a_disallowed_tag_is_named_in_the_error(api_a):
    body = {"name": "Probe", "channel": "sms", "body": "{% include 'x.html' %}"}
    response = api_a.post("/api/v1/templates", body, format="json")
    assert response.json()["error"]["fields"]["body"] == [
        "Template error: The {% include %} tag is not allowed (line 1); "
        "use {% if %} / {% elif %} / {% else %} / {% endif %}."
    ]


def test_a_template_update_is_refused_the_same_way(api_a, tenant_a):
    template = MessageTemplateFactory(tenant=tenant_a, name="Newsletter")
    url = f"/api/v1/templates/{template.pk}"
    response = api_a.patch(url, {"subject": "{{ first_name|safe }}"}, format="json")
    assert response.status_code == 400 and "subject" in response.json()["error"]["fields"]
    template.refresh_from_db()
    assert template.subject == "Hello {{ first_name }}"


def test_the_allowed_language_still_renders_as_before(tenant_a):
    template = MessageTemplateFactory(
        tenant=tenant_a,
        subject="{% if first_name %}Hi {{ first_name|title }}{% else %}Hello{% endif %}",
        html_body="<p>Hi {{ first_name }}, see you at {{ club }}.</p>\n"
        "{# a comment #}{% comment %}notes{% endcomment %}"
        '<p>{{ last_name|default:"friend"|upper }} {{ full_name|truncatechars:5 }}</p>\n'
        '<a href="{{ unsubscribe_url }}">Leave</a>',
    )
    context = {**sample_context(tenant_a), "unsubscribe_url": "https://crm.example/u/abc"}
    rendered = render(template, context)
    assert rendered.subject == "Hi Thabo"
    assert rendered.html == (
        f"<p>Hi Thabo, see you at {tenant_a.name}.</p>\n<p>NKOSI Thab…</p>\n"
        + '<a href="https://crm.example/u/abc" rel="noopener noreferrer">Leave</a>'
    )
    # The text part is derived from the HTML (which has no text version of the link).
    assert rendered.text == (
        f"Hi Thabo, see you at {tenant_a.name}.\nNKOSI Thab…\nLeave\n\n"
        "Unsubscribe: https://crm.example/u/abc"
    )


def test_a_customers_name_never_reaches_the_html_as_markup(tenant_a):
    ann = make_member(tenant_a, "ann@example.com", email_opt_in=True)
    CustomerProfile.objects.filter(pk=ann.pk).update(first_name=SCRIPT, last_name='"><b>x</b>')
    template = MessageTemplateFactory(
        tenant=tenant_a,
        subject="Hi {{ first_name }}",
        html_body="<p>Hi {{ first_name }} {{ last_name|linebreaksbr }}</p>"
        '<a href="https://club.example" title="{{ full_name }}">Book</a>',
    )
    run_to_completion(make_campaign(tenant_a, email_template=template))
    [email] = mail.outbox
    html = email.alternatives[0].content
    # The name is text: no live element or attribute came out of it.
    assert "<script" not in html and "<img src=x" not in html and "<b>" not in html
    assert "Hi &lt;img src=x onerror=" in html and "&lt;script&gt;alert(2)" in html
    assert 'title="&lt;img src=x onerror=&quot;alert(1)&quot;&gt;' in html
    assert email.subject == f"Hi {SCRIPT}"  # a header is plain text, never rendered as HTML


def test_the_html_is_sanitised_as_rendered_not_as_written(tenant_a):
    """What a value produces inside an attribute is cleaned too (the old engine cleaned the
    source, where ``{{ unsubscribe_url }}`` looked harmless)."""
    template = MessageTemplateFactory(
        tenant=tenant_a, html_body='<a href="{{ unsubscribe_url }}">Leave</a>'
    )
    context = {**sample_context(tenant_a), "unsubscribe_url": "javascript:alert(1)"}
    assert "javascript:" not in render(template, context, marketing=False).html


def test_the_sms_length_is_checked_on_the_rendered_body(api_a):
    body = "{{ club }}" * (SMS_MAX_LENGTH // len("{{ club }}"))  # 1,600 characters as written
    response = api_a.post(
        "/api/v1/templates", {"name": "Long", "channel": "sms", "body": body}, format="json"
    )
    assert response.status_code == 400
    [problem] = response.json()["error"]["fields"]["body"]
    assert problem.startswith("At most 1,600 characters (this one is")


def test_the_admin_form_refuses_a_disallowed_construct(client, staff_a, tenant_a):
    client.force_login(staff_a)
    form = {
        "tenant": str(tenant_a.pk),
        "name": "Probe",
        "channel": "email",
        "subject": "Hi",
        "html_body": ATTACKS["autoescape_off"],
        "text_body": "",
        "body": "",
    }
    response = client.post("/admin/marketing/messagetemplate/add/", form)
    errors = response.context["adminform"].form.errors
    assert errors["html_body"][0].startswith("Template error: The {% autoescape %} tag")
    assert not MessageTemplate.objects.filter(name="Probe").exists()


def test_a_template_saved_before_the_rules_previews_as_an_error_not_a_500(
    client, staff_a, api_a, tenant_a
):
    legacy = MessageTemplateFactory(
        tenant=tenant_a, html_body=ATTACKS["ljust"]
    )  # saved without validation
    client.force_login(staff_a)
    page = client.get(f"/admin/marketing/messagetemplate/{legacy.pk}/change/")
    assert page.status_code == 200
    assert page.context["preview_errors"] == ["html_body: Template error: Invalid filter: 'ljust'"]
    preview = api_a.post(f"/api/v1/templates/{legacy.pk}/preview", {}, format="json")
    assert preview.status_code == 400 and "html_body" in preview.json()["error"]["fields"]


def test_ab_variant_subjects_are_validated_like_template_subjects(api_a, tenant_a):
    template = MessageTemplateFactory(tenant=tenant_a)
    body = {
        "name": "AB",
        "channels": ["email"],
        "email_template_id": str(template.pk),
        "ab_test": {
            "variants": [{"subject": "Hi {{ first_name }}"}, {"subject": "{% include 'x' %}"}]
        },
    }
    response = api_a.post("/api/v1/campaigns", body, format="json")
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert list(fields) == ["ab_test.variants[1].subject"]
    assert fields["ab_test.variants[1].subject"][0].startswith("Template error: The {% include")
    assert not Campaign.objects.filter(name="AB").exists()
    body["ab_test"]["variants"][1]["subject"] = "x" * 201
    response = api_a.post("/api/v1/campaigns", body, format="json")
    assert response.json()["error"]["fields"] == {
        "ab_test.variants[1].subject": ["At most 200 characters."]
    }


def test_ab_variant_subjects_are_rendered_for_each_recipient(tenant_a):
    for name in ("ann", "bob", "cat", "dan", "eve", "fay"):
        make_member(tenant_a, f"{name}@example.com", email_opt_in=True)
    campaign = make_campaign(
        tenant_a,
        ab_test={
            "variants": [{"subject": "A for {{ first_name }}"}, {"subject": "B for {{ club }}"}],
            "test_fraction": 0.5,
            "wait_minutes": 60,
        },
    )
    run = _run(campaign)
    run_send(run=run, now_fn=lambda: NOON_JHB)
    assert mail.outbox
    for email in mail.outbox:
        first = email.to[0].split("@")[0].title()
        assert email.subject in (f"A for {first}", f"B for {tenant_a.name}")


# ----------------------------------------------------------------------------- item 5


def test_a_render_error_for_one_recipient_fails_only_that_row(tenant_a):
    """The template passes validation (with placeholder names), but one recipient's long
    name takes the SMS past its limit: that row fails, the others go, the run completes."""
    template = MessageTemplateFactory(
        tenant=tenant_a,
        channel="sms",
        subject="",
        html_body="",
        body="x" * 1_500 + " {{ full_name }}",
    )
    for i, name in enumerate(("ann", "bob", "long")):
        profile = make_member(tenant_a, f"{name}@example.com", sms_opt_in=True)
        fields = {"phone": f"+2782555000{i}"}
        if name == "long":
            fields |= {"first_name": "L" * 100, "last_name": "N" * 100}
        CustomerProfile.objects.filter(pk=profile.pk).update(**fields)
    campaign = make_campaign(tenant_a, channels=["sms"], sms_template=template)
    run = run_to_completion(campaign)
    rows = {m.address: m for m in Message.objects.filter(run=run)}
    assert [rows[f"+2782555000{i}"].status for i in range(3)] == ["SENT", "SENT", "FAILED"]
    assert rows["+27825550002"].error.startswith("body: At most 1,600 characters")
    assert rows["+27825550002"].attempts == 1  # failed at once: another try cannot help
    assert run.status == RunStatus.COMPLETED
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.COMPLETED


def test_a_stored_template_the_engine_refuses_fails_its_rows_quickly(tenant_a):
    """Saved before the rules (nested loops that would run for hours): every row fails with
    the reason at once and the campaign completes instead of staying SENDING."""
    template = MessageTemplateFactory(tenant=tenant_a, html_body=ATTACKS["nested_loops"] * 3)
    for name in ("ann", "bob"):
        make_member(tenant_a, f"{name}@example.com", email_opt_in=True)
    campaign = make_campaign(tenant_a, email_template=template)
    started = time.monotonic()
    run = run_to_completion(campaign)
    assert time.monotonic() - started < 10
    assert not mail.outbox
    rows = list(Message.objects.filter(run=run).values_list("status", "error"))
    assert [status for status, _ in rows] == ["FAILED", "FAILED"]
    assert all("The {% for %} tag is not allowed" in error for _, error in rows)
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.COMPLETED


def test_a_row_in_doubt_after_its_last_attempt_fails_and_the_run_completes(tenant_a):
    for name in ("spent", "fresh"):
        make_member(tenant_a, f"{name}@example.com", email_opt_in=True)
    campaign = make_campaign(tenant_a)
    run = _run(campaign)
    long_ago = timezone.now() - timedelta(minutes=10)
    # Both claimed by workers that died mid-send; one of them was its last attempt.
    Message.objects.filter(run=run, address="spent@example.com").update(
        status=MessageStatus.SENDING, send_after=long_ago, attempts=MAX_SEND_ATTEMPTS
    )
    Message.objects.filter(run=run, address="fresh@example.com").update(
        status=MessageStatus.SENDING, send_after=long_ago, attempts=1
    )
    runs_kick(now=timezone.now())
    spent = Message.objects.get(run=run, address="spent@example.com")
    assert spent.status == MessageStatus.FAILED
    assert spent.error.startswith(f"No outcome after {MAX_SEND_ATTEMPTS} attempts")
    assert Message.objects.get(run=run, address="fresh@example.com").status == "QUEUED"
    run_send(run=run, now_fn=lambda: NOON_JHB)  # the one with attempts left is sent again
    assert [e.to for e in mail.outbox] == [["fresh@example.com"]]
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.COMPLETED


def test_cancel_settles_every_open_row(tenant_a):
    for i in range(40):
        make_member(tenant_a, f"c{i}@example.com", email_opt_in=True)
    campaign = make_campaign(
        tenant_a,
        ab_test={
            "variants": [{"subject": "A"}, {"subject": "B"}],
            "test_fraction": 0.5,
            "wait_minutes": 60,
        },
    )
    run = _run(campaign)
    # One row a worker holds right now; the test variants QUEUED, the remainder HELD.
    claimed = Message.objects.filter(run=run, status=MessageStatus.QUEUED).first()
    Message.objects.filter(pk=claimed.pk).update(
        status=MessageStatus.SENDING, send_after=timezone.now(), attempts=1
    )
    statuses = set(Message.objects.filter(run=run).values_list("status", flat=True))
    assert {"QUEUED", "HELD", "SENDING"} <= statuses
    campaign_cancel(campaign=campaign)
    assert set(Message.objects.filter(run=run).values_list("status", flat=True)) == {"CANCELLED"}
    claimed.refresh_from_db()
    assert claimed.error == "Cancelled while it was being sent; it may have been delivered."
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    # The sweep has nothing to put back, and the cancelled run gets no sender.
    runs_kick(now=timezone.now() + timedelta(hours=1))
    assert set(Message.objects.filter(run=run).values_list("status", flat=True)) == {"CANCELLED"}
    # The worker that held the row finishes: the backend took it, so the row says SENT.
    campaign = Campaign.objects.select_related("tenant").get(pk=campaign.pk)
    claimed.status = MessageStatus.SENDING
    plan = send_plan(campaign)
    deliver(messages=[claimed], campaign=campaign, backend=messaging.get_backend(), plan=plan)
    assert Message.objects.get(pk=claimed.pk).status == MessageStatus.SENT
    assert Message.objects.filter(run=run, status=MessageStatus.SENT).count() == 1
