"""Journey messages go out after the sweep, through the campaigns' two-phase send: the sweep
only writes the rows (QUEUED), a sender claims, sends and marks them; a row the in-doubt
sweep puts back while its sender is still busy is not sent twice by that sender; a condition
on "opened" waits until the message it asks about has gone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail

from automation.delivery import journey_messages_send
from automation.engine import journeys_advance
from automation.models import EnrollmentStatus
from marketing import messaging
from marketing.interactions import interaction_record
from marketing.models import Message, MessageStatus
from marketing.sending import IN_DOUBT_AFTER, messages_requeue_in_doubt

from .helpers import NOON, advance, customer, enroll, journey, only, send_end, template, trail

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_backend():
    messaging.get_backend.cache_clear()
    yield
    messaging.get_backend.cache_clear()


def test_the_sweep_writes_queued_rows_and_the_sender_delivers_them(tenant_a):
    tpl = template(tenant_a)
    j = journey(tenant_a, send_end(tpl))
    ann, bob = customer(tenant_a, email="ann@example.com"), customer(tenant_a, email="b@x.org")
    enroll(j, ann, bob)
    journeys_advance(tenant=tenant_a, now=NOON)
    # The enrollments moved on with their rows; nothing was sent inside the sweep.
    assert only(j, ann).status == EnrollmentStatus.COMPLETED
    assert set(Message.objects.values_list("status", flat=True)) == {MessageStatus.QUEUED}
    assert mail.outbox == []
    assert journey_messages_send(tenant=tenant_a, now=NOON) == 2
    rows = Message.objects.order_by("address")
    assert [(m.address, m.status, m.attempts) for m in rows] == [
        ("ann@example.com", MessageStatus.SENT, 1),
        ("b@x.org", MessageStatus.SENT, 1),
    ]
    assert sorted(e.to[0] for e in mail.outbox) == ["ann@example.com", "b@x.org"]
    # A second sender finds nothing to send.
    assert journey_messages_send(tenant=tenant_a, now=NOON) == 0
    assert len(mail.outbox) == 2


class _SweepMidBatch:
    """SMTP-like (not idempotent): while the server takes the first email, the in-doubt sweep
    runs as if the sender had been silent for too long and puts the whole batch back."""

    name = "local"
    idempotent = False

    def __init__(self) -> None:
        self.inner = messaging.LocalBackend()
        self.swept = False

    def send(self, message):
        if not self.swept:
            self.swept = True
            messages_requeue_in_doubt(now=NOON + IN_DOUBT_AFTER + timedelta(minutes=1))
        return self.inner.send(message)


def test_rows_put_back_mid_batch_are_not_sent_twice(tenant_a, monkeypatch):
    tpl = template(tenant_a)
    j = journey(tenant_a, send_end(tpl))
    people = [customer(tenant_a, email=f"p{i}@example.com") for i in range(4)]
    enroll(j, *people)
    journeys_advance(tenant=tenant_a, now=NOON)
    backend = _SweepMidBatch()
    monkeypatch.setattr("automation.delivery.get_backend", lambda: backend)
    assert journey_messages_send(tenant=tenant_a, now=NOON) == 4
    assert backend.swept
    # One email each, whatever the sweep did mid-batch.
    assert sorted(e.to[0] for e in mail.outbox) == [f"p{i}@example.com" for i in range(4)]
    message_ids = [e.extra_headers["Message-ID"] for e in mail.outbox]
    assert len(set(message_ids)) == 4
    rows = Message.objects.order_by("id")
    assert {m.status for m in rows} == {MessageStatus.SENT}
    # The email in flight when the sweep ran kept its claim's attempt (marked SENT, not sent
    # again); the three the sender had not reached went out on the next claim.
    assert sorted(m.attempts for m in rows) == [1, 2, 2, 2]


def test_opened_condition_waits_until_its_message_has_gone(tenant_a):
    tpl = template(tenant_a)
    steps = [
        {
            "key": "hello",
            "type": "SEND",
            "config": {"channel": "email", "template_id": str(tpl.pk)},
            "next": ["read"],
        },
        {"key": "read", "type": "CONDITION", "config": {"opened": "hello"}, "next": ["end", "no"]},
        {"key": "no", "type": "END"},
        {"key": "end", "type": "END"},
    ]
    j = journey(tenant_a, steps)
    who = customer(tenant_a)
    enroll(j, who)
    journeys_advance(tenant=tenant_a, now=NOON)
    # The message is still QUEUED: "not opened" would be a guess, so the person waits.
    enrollment = only(j, who)
    assert (enrollment.step_key, enrollment.status) == ("read", EnrollmentStatus.ACTIVE)
    assert enrollment.due_at == NOON + timedelta(minutes=1)
    journey_messages_send(tenant=tenant_a, now=NOON)
    message = Message.objects.get(customer=who)
    assert message.status == MessageStatus.SENT
    interaction_record(
        message=message, kind="OPENED", source="test", event_id="o1", occurred_at=NOON
    )
    advance(tenant_a, minutes=1)
    enrollment = only(j, who)
    assert enrollment.status == EnrollmentStatus.COMPLETED
    assert trail(enrollment) == [("hello", "message"), ("read", "yes"), ("end", "completed")]
