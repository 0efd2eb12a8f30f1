"""Campaign fan-out at scale: snapshot 100,000 recipients, then hand every queued message
to a backend that discards it (rendering and sanitising, unsubscribe token, idempotency
key, set-wise marking), ``REPEATS`` times on prepared data (VACUUM ANALYZE and CHECKPOINT
before each; median and spread), and the guide's one-job-per-recipient design on a sample
of the same data in the same run."""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import time as clock

from django.db import connection, connections, transaction
from django.utils import timezone

from customers.models import CustomerProfile
from marketing import delivery, sending
from marketing.common import message_identity
from marketing.messaging import Outgoing
from marketing.models import (
    Campaign,
    CampaignRun,
    CampaignStatus,
    Message,
    MessageStatus,
    MessageTemplate,
    Segment,
    SegmentMembership,
    Suppression,
)
from marketing.segments import segment_create
from marketing.templating import recipient_context, render

from .events import spread
from .identity import _ensure_profiles, ladder_sizes, ladder_tenant

TARGETS = {"fan_out_messages_per_s": 15000.0, "snapshot_s": 5.0}
RECIPIENTS = 100_000
REPEATS = 3
SENDERS = 2
NAIVE_SAMPLE = 2_000


class DiscardBackend:
    name = "discard"
    idempotent = True

    def send(self, message):
        return message.idempotency_key

    def send_many(self, messages):
        return {m.idempotency_key: m.idempotency_key for m in messages}

    def upsert_segment(self, *, segment, members, sync_id):
        return None


def _send(run_id: int) -> int:
    connections.close_all()  # a fresh connection in the child
    sending.get_backend = lambda: DiscardBackend()
    run = CampaignRun.objects.get(pk=run_id)
    return sending.run_send(run=run)


def _send_naive(message_ids: list[int]) -> int:
    """The guide's sketch: one job per recipient, each in its own transaction: lock and read
    the message, read the person, check consent and suppression, render, send, mark it."""
    connections.close_all()
    backend = DiscardBackend()
    sent = 0
    for message_id in message_ids:
        with transaction.atomic():
            message = Message.objects.select_for_update().get(pk=message_id)
            if message.status != MessageStatus.QUEUED:
                continue
            campaign = Campaign.objects.select_related("tenant").get(pk=message.campaign_id)
            customer = CustomerProfile.objects.get(pk=message.customer_id)
            if (
                not customer.email_opt_in
                or Suppression.objects.filter(
                    tenant_id=message.tenant_id, channel=message.channel, address=message.address
                ).exists()
            ):
                continue
            context = recipient_context(
                campaign.tenant, "", customer, delivery.unsubscribe_url(message)
            )
            rendered = render(campaign.email_template, context, marketing=True)
            backend.send(
                Outgoing(
                    channel=message.channel,
                    to=message.address,
                    subject=rendered.subject,
                    html=rendered.html,
                    text=rendered.text,
                    body=rendered.body,
                    from_email="club@example.com",
                    idempotency_key=message_identity(message),
                    unsubscribe_url=context["unsubscribe_url"],
                    tenant=campaign.tenant.slug,
                )
            )
            message.status, message.sent_at = MessageStatus.SENT, timezone.now()
            message.save(update_fields=["status", "sent_at", "updated_at"])
            sent += 1
    return sent


def _prepared() -> None:
    """The message table as the next repetition finds it: dead rows of the last one gone,
    statistics fresh, written pages flushed."""
    with connection.cursor() as cursor:
        cursor.execute(f'VACUUM ANALYZE "{Message._meta.db_table}"')
        cursor.execute("CHECKPOINT")


def _fan_out_once(tenant, campaign, log) -> dict:
    """One run of the campaign: snapshot, then two sender processes until none is left."""
    # The last run completed the campaign: sending again, as a recurring campaign would.
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.SENDING)
    run_ = CampaignRun.objects.create(
        tenant=tenant, campaign=campaign, scheduled_for=timezone.now()
    )
    started = time.perf_counter()
    snapshot = sending.run_prepare(run=run_)
    snapshot_s = time.perf_counter() - started
    connections.close_all()
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(SENDERS) as pool:
        sent = sum(pool.map(_send, [run_.pk] * SENDERS))
    send_s = time.perf_counter() - started
    left = Message.objects.filter(run=run_, status=MessageStatus.QUEUED).count()
    log(
        f"  snapshot {snapshot.targeted:,} rows ({snapshot.queued:,} queued) in {snapshot_s:.2f}s;"
        f" hand-off {sent:,} in {send_s:.2f}s; {left} left"
    )
    return {
        "run": run_,
        "targeted": snapshot.targeted,
        "queued": snapshot.queued,
        "snapshot_s": snapshot_s,
        "sent": sent,
        "send_s": send_s,
        "left": left,
        "fan_out": sent / (snapshot_s + send_s),
    }


def _naive(tenant, campaign, sample: int, log) -> dict:
    """The per-recipient design on a sample of a fresh run's queued rows (same data, same
    two processes), extrapolated to the batched run's count."""
    # The last run completed the campaign: sending again, as a recurring campaign would.
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.SENDING)
    run_ = CampaignRun.objects.create(
        tenant=tenant, campaign=campaign, scheduled_for=timezone.now()
    )
    sending.run_prepare(run=run_)
    ids = list(
        Message.objects.filter(run=run_, status=MessageStatus.QUEUED)
        .order_by("id")
        .values_list("id", flat=True)[:sample]
    )
    connections.close_all()
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(SENDERS) as pool:
        sent = sum(pool.map(_send_naive, [ids[i::SENDERS] for i in range(SENDERS)]))
    seconds = time.perf_counter() - started
    log(f"  naive: {sent:,} messages one job each in {seconds:.2f}s")
    return {"messages": sent, "seconds": round(seconds, 2), "messages_per_s": sent / seconds}


@contextmanager
def _unthrottled(tenant) -> Iterator[None]:
    """Measure sending, not the clock: no quiet hours and no frequency cap while it runs."""
    saved = (tenant.quiet_hours_start, tenant.quiet_hours_end, tenant.frequency_window_days)
    tenant.quiet_hours_start = tenant.quiet_hours_end = clock(0, 0)
    tenant.frequency_window_days = 0
    tenant.save()
    try:
        yield
    finally:
        tenant.quiet_hours_start, tenant.quiet_hours_end, tenant.frequency_window_days = saved
        tenant.save()


def _rung(tenant, size: int, quick: bool, *, naive: bool, log) -> dict:
    """The tenant grown to ``size`` profiles; a tenth of them (every tenth by id, at most
    ``RECIPIENTS``) in a static segment; the campaign sent ``REPEATS`` times; the naive
    design on a sample when ``naive``."""
    total = _ensure_profiles(tenant, size, log)
    recipients = min(RECIPIENTS, max(1, total // 10)) if not quick else min(5_000, total)
    repeats = 1 if quick else REPEATS
    sample = min(NAIVE_SAMPLE, recipients) if not quick else min(500, recipients)
    log(f"fan-out at {total:,} profiles, {recipients:,} recipients")
    tag = uuid.uuid4().hex[:8]
    segment = segment_create(tenant=tenant, data={"name": f"bench-send-{tag}", "type": "STATIC"})
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO "{SegmentMembership._meta.db_table}"
                (tenant_id, segment_id, customer_id, created_at, updated_at)
            SELECT %s, %s, id, now(), now() FROM (
                SELECT id, row_number() OVER (ORDER BY id) AS n
                FROM "{CustomerProfile._meta.db_table}" WHERE tenant_id = %s
            ) AS numbered WHERE n %% %s = 0 ORDER BY id LIMIT %s""",  # noqa: S608
            [tenant.pk, segment.pk, tenant.pk, max(1, total // recipients), recipients],
        )
    template = MessageTemplate.objects.create(
        tenant=tenant,
        name=f"bench-{tag}",
        channel="email",
        subject="News for {{ first_name }}",
        html_body='<p>Hello {{ first_name }}, <a href="https://club.example/book">book</a> '
        "at {{ club }}.</p>",
    )
    campaign = Campaign.objects.create(
        tenant=tenant,
        name=f"bench-{tag}",
        segment=segment,
        channels=["email"],
        email_template=template,
        scheduled_at=timezone.now(),
        status=CampaignStatus.SENDING,
    )
    runs = []
    naive_run = None
    try:
        for repeat in range(repeats):
            _prepared()
            log(f"fan-out {repeat + 1}/{repeats}")
            runs.append(_fan_out_once(tenant, campaign, log))
            Message.objects.filter(run=runs[-1].pop("run")).delete()
        if naive:
            _prepared()
            naive_run = _naive(tenant, campaign, sample, log)
    finally:
        Message.objects.filter(campaign=campaign).delete()
        CampaignRun.objects.filter(campaign=campaign).delete()
        Campaign.objects.filter(pk=campaign.pk).delete()
        MessageTemplate.objects.filter(pk=template.pk).delete()
        SegmentMembership.objects.filter(segment=segment).delete()
        Segment.objects.filter(pk=segment.pk).delete()
    middle = sorted(runs, key=lambda r: r["fan_out"])[len(runs) // 2]
    fan_out = spread([r["fan_out"] for r in runs])
    return {
        "profiles": total,
        "recipients": recipients,
        "repeats": repeats,
        "middle": middle,
        "fan_out": fan_out,
        "hand_off": spread([r["sent"] / r["send_s"] for r in runs]),
        "snapshot_s": spread([r["snapshot_s"] for r in runs]),
        "left": max(r["left"] for r in runs),
        "naive": naive_run,
    }


def run(*, profiles: int, quick: bool, env: dict[str, str], log, ladder: bool = False) -> dict:
    sizes = ladder_sizes(profiles, ladder)
    queue_run = sending.run_queue_senders
    sending.run_queue_senders = lambda run, senders=2: None  # the benchmark runs the senders itself
    try:
        rungs = []
        for size in sizes:
            tenant = ladder_tenant(size, profiles)
            with _unthrottled(tenant):
                rungs.append(_rung(tenant, size, quick, naive=size == profiles, log=log))
    finally:
        sending.run_queue_senders = queue_run
    top = rungs[-1]
    middle, fan_out, hand_off, naive = top["middle"], top["fan_out"], top["hand_off"], top["naive"]
    return {
        "data": {
            "profiles": top["profiles"],
            "recipients": top["recipients"],
            "repeats": top["repeats"],
        },
        "snapshot": {
            "rows": middle["targeted"],
            "queued": middle["queued"],
            "seconds": round(middle["snapshot_s"], 2),
            "seconds_spread": top["snapshot_s"],
        },
        "hand_off": {
            "messages": middle["sent"],
            "seconds": round(middle["send_s"], 2),
            "messages_per_s": round(middle["sent"] / middle["send_s"], 1),
            "messages_per_s_spread": hand_off,
            "processes": SENDERS,
            "left_queued": top["left"],
        },
        "fan_out_spread": fan_out,
        "naive": {
            "sample": naive["messages"],
            "seconds": naive["seconds"],
            "messages_per_s": round(naive["messages_per_s"], 1),
            "extrapolated_s": round(middle["queued"] / naive["messages_per_s"], 1),
            "ratio": round(hand_off["median"] / naive["messages_per_s"], 1),
        },
        "us_per_message": round(1e6 / fan_out["median"], 1) if fan_out["median"] else None,
        "growth": [
            {
                "profiles": rung["profiles"],
                "recipients": rung["recipients"],
                "fan_out_messages_per_s": rung["fan_out"]["median"],
                "us_per_message": round(1e6 / rung["fan_out"]["median"], 1),
            }
            for rung in rungs
        ],
        "checks": {
            "fan_out_messages_per_s": fan_out["median"],
            "snapshot_s": round(middle["snapshot_s"], 2),
        },
        "targets": TARGETS,
    }
