"""Push and WhatsApp campaigns: the address of each channel (push: the messaging contact id,
WhatsApp: the phone), its own consent flag and suppression, the rows marked SENT, and what
goes out through the local backend (the log) and the http backend (the batch call)."""

from __future__ import annotations

import json
import logging

import pytest
import responses
import time_machine

from customers.models import CustomerProfile
from marketing import messaging
from marketing.common import message_identity
from marketing.models import Message, MessageStatus, MessageTemplate, Suppression
from tests.customers.helpers import person
from tests.marketing.builders import NOON_JHB, make_campaign, run_to_completion

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _at_noon():
    with time_machine.travel(NOON_JHB, tick=True):
        yield


@pytest.fixture(autouse=True)
def _fresh_backend():
    messaging.get_backend.cache_clear()
    yield
    messaging.get_backend.cache_clear()


def _golfer(tenant, name, *, phone=None, contact=None, **fields):
    profile = person(tenant, email=f"{name.lower()}@example.com", phone=phone)
    CustomerProfile.objects.filter(pk=profile.pk).update(
        lifecycle_stage="MEMBER", first_name=name, messaging_contact_id=contact, **fields
    )
    return profile


@pytest.fixture
def golfers(tenant_a):
    """Who can get what: Ann both channels; Bob WhatsApp only (no push consent); Cat
    neither (no contact id, no phone); Dan's WhatsApp number is suppressed."""
    both = {"push_opt_in": True, "whatsapp_opt_in": True}
    golfers = {
        "Ann": _golfer(tenant_a, "Ann", phone="+27821110001", contact="mc-ann", **both),
        "Bob": _golfer(
            tenant_a,
            "Bob",
            phone="+27821110002",
            contact="mc-bob",
            push_opt_in=False,
            whatsapp_opt_in=True,
        ),
        "Cat": _golfer(tenant_a, "Cat", **both),
        "Dan": _golfer(tenant_a, "Dan", phone="+27821110004", contact="mc-dan", **both),
    }
    Suppression.objects.create(
        tenant=tenant_a, channel="whatsapp", address="+27821110004", reason="unsubscribed"
    )
    return golfers


def _push_and_whatsapp(tenant):
    templates = {
        f"{channel}_template": MessageTemplate.objects.create(
            tenant=tenant,
            name=f"Tee times ({channel})",
            channel=channel,
            body=f"Hi {{{{ first_name }}}}, Saturday tee times are open ({channel}).",
        )
        for channel in ("push", "whatsapp")
    }
    return make_campaign(tenant, channels=["push", "whatsapp"], **templates)


def _outcome(run, golfers):
    names = {profile.pk: name for name, profile in golfers.items()}
    return {
        (names[m.customer_id], m.channel): (m.status, m.skip_reason, m.address)
        for m in Message.objects.filter(run=run)
    }


EXPECTED = {
    ("Ann", "push"): (MessageStatus.SENT, "", "mc-ann"),
    ("Ann", "whatsapp"): (MessageStatus.SENT, "", "+27821110001"),
    ("Bob", "push"): (MessageStatus.SKIPPED, "no_consent", "mc-bob"),
    ("Bob", "whatsapp"): (MessageStatus.SENT, "", "+27821110002"),
    ("Cat", "push"): (MessageStatus.SKIPPED, "no_address", ""),
    ("Cat", "whatsapp"): (MessageStatus.SKIPPED, "no_address", ""),
    ("Dan", "push"): (MessageStatus.SENT, "", "mc-dan"),
    ("Dan", "whatsapp"): (MessageStatus.SKIPPED, "suppressed", "+27821110004"),
}


def test_local_backend_sends_push_to_the_contact_id_and_whatsapp_to_the_phone(
    tenant_a, golfers, caplog
):
    with caplog.at_level(logging.INFO, logger="crm.sms"):
        run = run_to_completion(_push_and_whatsapp(tenant_a))
    assert _outcome(run, golfers) == EXPECTED
    sent = Message.objects.filter(run=run, status=MessageStatus.SENT)
    assert all(m.sent_at and m.provider_id == message_identity(m) for m in sent)
    logged = sorted(r.getMessage() for r in caplog.records if r.name == "crm.sms")
    keys = {(m.channel, m.address): message_identity(m) for m in sent}
    assert logged == sorted(
        [
            f"push to mc-ann [{keys['push', 'mc-ann']}]: "
            "Hi Ann, Saturday tee times are open (push).",
            f"push to mc-dan [{keys['push', 'mc-dan']}]: "
            "Hi Dan, Saturday tee times are open (push).",
            f"whatsapp to +27821110001 [{keys['whatsapp', '+27821110001']}]: "
            "Hi Ann, Saturday tee times are open (whatsapp).",
            f"whatsapp to +27821110002 [{keys['whatsapp', '+27821110002']}]: "
            "Hi Bob, Saturday tee times are open (whatsapp).",
        ]
    )


@responses.activate
def test_http_backend_sends_push_and_whatsapp_in_the_batch_call(tenant_a, golfers, settings):
    settings.MESSAGING_BACKEND = "http"
    settings.MESSAGING_URL = "http://messaging.test"
    settings.MESSAGING_API_KEY = "k"

    def accept(request):
        batch = json.loads(request.body)["messages"]
        results = [
            {"idempotencyKey": m["idempotencyKey"], "status": "accepted", "id": f"ms-{m['to']}"}
            for m in batch
        ]
        return 200, {}, json.dumps({"results": results})

    responses.add_callback(
        responses.POST, "http://messaging.test/v1/messages/batch", callback=accept
    )
    run = run_to_completion(_push_and_whatsapp(tenant_a))
    assert _outcome(run, golfers) == EXPECTED
    wire = [m for call in responses.calls for m in json.loads(call.request.body)["messages"]]
    assert sorted((m["channel"], m["to"], m["body"]) for m in wire) == [
        ("push", "mc-ann", "Hi Ann, Saturday tee times are open (push)."),
        ("push", "mc-dan", "Hi Dan, Saturday tee times are open (push)."),
        ("whatsapp", "+27821110001", "Hi Ann, Saturday tee times are open (whatsapp)."),
        ("whatsapp", "+27821110002", "Hi Bob, Saturday tee times are open (whatsapp)."),
    ]
    assert all(
        (m["tenantId"], m["subject"], m["html"], m["text"]) == (tenant_a.slug, "", "", "")
        for m in wire
    )
    sent = Message.objects.filter(run=run, status=MessageStatus.SENT)
    assert {m.address: m.provider_id for m in sent} == {
        address: f"ms-{address}" for address in ("mc-ann", "mc-dan", "+27821110001", "+27821110002")
    }
    assert {m["idempotencyKey"] for m in wire} == {message_identity(m) for m in sent}
