"""A real worker: 10,000 people enter a journey through an event trigger (send -> wait ->
condition -> send / end); ``kill -9`` mid-sweep and restart: every enrollment ends exactly
once, with exactly the messages its path calls for (one Message-ID each)."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import time as clock
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone

from automation.journeys import journey_activate, journey_create
from automation.models import Enrollment, EnrollmentStep
from crm.tasks import tenant_task
from customers.ingest import events_ingest, events_requeue_stale
from customers.models import AliasKind, CustomerProfile, IdentityAlias
from marketing.models import Message, MessageStatus, MessageTemplate
from marketing.sending import IN_DOUBT_AFTER, runs_kick
from tests.factories import TenantFactory
from tests.marketing.test_send_worker_kill import Mailbox, _free_port
from tests.worker import WorkerProcess, celery_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
PEOPLE = 10_000


def _wait(predicate, timeout: float, what: str, worker=None, kick=None) -> None:
    deadline = time.monotonic() + timeout
    next_kick = 0.0
    while time.monotonic() < deadline:
        if predicate():
            return
        if kick and time.monotonic() >= next_kick:
            kick()  # what beat does every minute, more often
            next_kick = time.monotonic() + 5
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{worker.log()[-3000:] if worker else ''}")


def _people(tenant) -> None:
    profiles = CustomerProfile.objects.bulk_create(
        (
            CustomerProfile(
                tenant=tenant,
                email=f"p{i}@example.com",
                first_name=f"P{i}",
                lifecycle_stage="MEMBER" if i % 2 == 0 else "PROSPECT",
                email_opt_in=True,
            )
            for i in range(PEOPLE)
        ),
        batch_size=2_000,
    )
    IdentityAlias.objects.bulk_create(
        (
            IdentityAlias(tenant=tenant, kind=AliasKind.EMAIL, value=p.email, profile=p)
            for p in profiles
        ),
        batch_size=2_000,
    )


def _journey(tenant):
    welcome, members = (
        MessageTemplate.objects.create(
            tenant=tenant, name=name, channel="email", subject=name, html_body=f"<p>{name}</p>"
        )
        for name in ("Welcome", "Members")
    )
    steps = [
        {
            "key": "welcome",
            "type": "SEND",
            "config": {"channel": "email", "template_id": str(welcome.pk)},
            "next": ["wait"],
        },
        {"key": "wait", "type": "WAIT", "config": {"duration": {"minutes": 1}}, "next": ["member"]},
        {
            "key": "member",
            "type": "CONDITION",
            "config": {
                "criteria": {
                    "combinator": "AND",
                    "rules": [{"field": "lifecycle_stage", "operator": "eq", "value": "MEMBER"}],
                }
            },
            "next": ["members", "end"],
        },
        {
            "key": "members",
            "type": "SEND",
            "config": {"channel": "email", "template_id": str(members.pk)},
            "next": ["end"],
        },
        {"key": "end", "type": "END"},
    ]
    journey = journey_create(
        tenant=tenant,
        data={
            "name": "After a round",
            "trigger": {"type": "event", "event_type": "teetime.round.completed"},
        },
        steps=steps,
    )
    return journey_activate(journey=journey)


def test_kill_9_mid_sweep_then_restart_every_enrollment_ends_once_with_its_messages():
    tenant = TenantFactory(slug="journey-kill")
    tenant.quiet_hours_start = tenant.quiet_hours_end = clock(0, 0)
    tenant.frequency_window_days = 0
    tenant.save()
    _people(tenant)
    journey = _journey(tenant)
    now = timezone.now()
    events = [
        {
            "id": f"round-{i}",
            "type": "teetime.round.completed",
            "tenantId": tenant.slug,
            "timestamp": (now - timedelta(seconds=i % 60)).isoformat(),
            "identity": {"email": f"p{i}@example.com"},
            "payload": {"roundId": f"R{i}"},
        }
        for i in range(PEOPLE)
    ]
    mailbox = Mailbox()
    port = _free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=port)
    smtp.start()
    env = {"EMAIL_URL": f"smtp://127.0.0.1:{port}"}

    def kick():
        tenant_task("automation.advance_journeys").enqueue(tenant)

    def finished() -> bool:
        return (
            Enrollment.objects.filter(journey=journey).count() == PEOPLE
            and not Enrollment.objects.filter(journey=journey, status="ACTIVE").exists()
            and not Message.objects.filter(
                tenant=tenant, status__in=[MessageStatus.QUEUED, MessageStatus.SENDING]
            ).exists()
        )

    try:
        with celery_worker(concurrency=2, env=env) as worker:
            for start in range(0, PEOPLE, 1_000):
                events_ingest(tenant=tenant, raw_events=events[start : start + 1_000])
            _wait(lambda: mailbox.count() >= 2_000, 300, "the first welcome emails", worker)
            worker.kill_hard()  # main process and pool children, mid-sweep
            at_kill = mailbox.count()
            assert at_kill < PEOPLE * 1.5, "the kill should land mid-run"

            restarted = WorkerProcess(worker.queue, env=env)
            restarted.start()
            try:
                # Events and messages the dead worker held come back after the broker's
                # visibility timeout; the sweeps (as if their waits had passed) take over.
                events_requeue_stale(stale_after=timedelta(0))
                runs_kick(now=timezone.now() + IN_DOUBT_AFTER + timedelta(minutes=1))
                _wait(finished, 600, "every enrollment to end", restarted, kick=kick)
            finally:
                restarted.stop()
    finally:
        smtp.stop()

    enrollments = Enrollment.objects.filter(journey=journey)
    assert enrollments.count() == PEOPLE  # one per person: no event enrolled twice
    assert set(enrollments.values_list("status", flat=True)) == {"COMPLETED"}
    # Every path: welcome, wait, member, (members), end; each step visited once.
    trails = defaultdict(list)
    for enrollment_id, key in (
        EnrollmentStep.objects.filter(enrollment__journey=journey)
        .order_by("enrollment_id", "visit")
        .values_list("enrollment_id", "step_key")
    ):
        trails[enrollment_id].append(key)
    stage = dict(enrollments.values_list("pk", "customer__lifecycle_stage"))
    for enrollment_id, keys in trails.items():
        expected = ["welcome", "wait", "member"]
        expected += ["members", "end"] if stage[enrollment_id] == "MEMBER" else ["end"]
        assert keys == expected, (enrollment_id, keys)
    rows = Message.objects.filter(tenant=tenant)
    assert rows.count() == PEOPLE + PEOPLE // 2
    assert rows.filter(status=MessageStatus.SENT).count() == PEOPLE + PEOPLE // 2
    by_recipient: dict[str, set[str]] = defaultdict(set)
    for rcpt, message_id in mailbox.deliveries:
        by_recipient[rcpt].add(message_id)
    expected_count = {f"p{i}@example.com": 2 if i % 2 == 0 else 1 for i in range(PEOPLE)}
    assert {r: len(ids) for r, ids in by_recipient.items()} == expected_count
    repeats = len(mailbox.deliveries) - sum(expected_count.values())
    print(f"\nkilled at {at_kill} deliveries; {repeats} repeated deliveries (same Message-ID)")
    assert repeats <= 2, repeats
