"""A real worker sends a 10,000-recipient campaign to a local SMTP server; ``kill -9``
halfway, restart: every eligible recipient received exactly one message (one Message-ID),
nobody else received anything."""

from __future__ import annotations

import email.parser
import logging
import socket
import threading
import time
from collections import defaultdict
from datetime import time as clock
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone

from customers.models import CustomerProfile
from marketing.campaigns import campaign_schedule
from marketing.models import (
    Campaign,
    CampaignStatus,
    Message,
    MessageStatus,
    MessageTemplate,
)
from marketing.segments import segment_create
from marketing.sending import IN_DOUBT_AFTER, campaigns_start_due, runs_kick
from tests.factories import TenantFactory
from tests.worker import WorkerProcess, celery_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
RECIPIENTS = 10_000
_HEADERS = email.parser.BytesHeaderParser()


class Mailbox:
    """The SMTP server's record: (recipient, Message-ID) of every delivery."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        # aiosmtpd logs every SMTP command at INFO: records by the thousand, each through
        # the JSON formatter, in this process, which shares the CPUs with the workers.
        logging.getLogger("mail.log").setLevel(logging.WARNING)

    async def handle_DATA(self, server, session, envelope):
        message_id = _HEADERS.parsebytes(envelope.content)["Message-ID"]  # not the body
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.deliveries.append((rcpt, message_id))
        return "250 Message accepted for delivery"

    def count(self) -> int:
        with self.lock:
            return len(self.deliveries)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(predicate, timeout: float, what: str, worker=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{worker.log()[-3000:] if worker else ''}")


def test_kill_9_mid_send_then_restart_every_eligible_recipient_gets_one_message():
    tenant = TenantFactory(slug="send-kill")
    # No quiet hours and no cap: this test is about delivery, whatever CI's clock says.
    tenant.quiet_hours_start = tenant.quiet_hours_end = clock(0, 0)
    tenant.frequency_window_days = 0
    tenant.save()
    CustomerProfile.objects.bulk_create(
        (
            CustomerProfile(
                tenant=tenant,
                email=f"r{i}@example.com",
                first_name=f"R{i}",
                lifecycle_stage="MEMBER",
                email_opt_in=i % 10 != 0,
            )
            for i in range(RECIPIENTS)
        ),
        batch_size=2_000,
    )
    eligible = {f"r{i}@example.com" for i in range(RECIPIENTS) if i % 10 != 0}
    segment = segment_create(
        tenant=tenant,
        data={
            "name": "Members",
            "criteria": {
                "combinator": "AND",
                "rules": [{"field": "lifecycle_stage", "operator": "eq", "value": "MEMBER"}],
            },
        },
    )
    template = MessageTemplate.objects.create(
        tenant=tenant,
        name="News",
        channel="email",
        subject="News for {{ first_name }}",
        html_body="<p>Hello {{ first_name }}</p>",
    )
    campaign = Campaign.objects.create(
        tenant=tenant,
        name="Big send",
        segment=segment,
        channels=["email"],
        email_template=template,
        scheduled_at=timezone.now() + timedelta(seconds=5),
    )
    campaign_schedule(campaign=campaign)

    mailbox = Mailbox()
    port = _free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=port)
    smtp.start()
    env = {"EMAIL_URL": f"smtp://127.0.0.1:{port}"}
    try:
        with celery_worker(concurrency=2, env=env) as worker:
            assert campaigns_start_due(now=timezone.now() + timedelta(minutes=1)) == 1
            _wait(lambda: mailbox.count() >= 3_000, 240, "the first 3,000 emails", worker)
            worker.kill_hard()  # main process and pool children, mid-send
            at_kill = mailbox.count()
            assert at_kill < len(eligible), "the kill should land mid-send"

            restarted = WorkerProcess(worker.queue, env=env)
            restarted.start()
            try:
                # The dead worker's messages come back only after the broker's visibility
                # timeout; the sweep (run as if its in-doubt wait had passed) takes over.
                runs_kick(now=timezone.now() + IN_DOUBT_AFTER + timedelta(minutes=1))
                _wait(
                    lambda: Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.COMPLETED,
                    300,
                    "the campaign to complete",
                    restarted,
                )
            finally:
                restarted.stop()
    finally:
        smtp.stop()

    by_recipient: dict[str, set[str]] = defaultdict(set)
    for rcpt, message_id in mailbox.deliveries:
        by_recipient[rcpt].add(message_id)
    assert set(by_recipient) == eligible  # every eligible recipient, nobody else
    assert all(len(ids) == 1 for ids in by_recipient.values())  # one message each
    repeats = len(mailbox.deliveries) - len(eligible)
    # A repeat can only be the one email each pool process had handed to the server in the
    # instant before the kill and not yet marked sent: it carries the same Message-ID, so the
    # mailbox shows one message.
    print(f"\nkilled at {at_kill} deliveries; {repeats} repeated deliveries (same Message-ID)")
    assert repeats <= 2, repeats
    rows = Message.objects.filter(campaign=campaign)
    assert rows.filter(status=MessageStatus.SENT).count() == len(eligible)
    assert rows.filter(status=MessageStatus.SKIPPED, skip_reason="no_consent").count() == 1_000
    assert not rows.exclude(status__in=[MessageStatus.SENT, MessageStatus.SKIPPED]).exists()
