"""Campaign fan-out at scale: snapshot 100,000 recipients, then hand every queued message
to a backend that discards it (rendering, tracking links, tokens, set-wise marking)."""

from __future__ import annotations

import multiprocessing
import time
import uuid
from datetime import time as clock

from django.db import connection, connections
from django.utils import timezone

from crm.models import Region
from crm.services import tenant_create
from customers.models import CustomerProfile
from marketing import sending
from marketing.models import (
    Campaign,
    CampaignRun,
    CampaignStatus,
    Message,
    MessageStatus,
    MessageTemplate,
    Segment,
    SegmentMembership,
)
from marketing.segments import segment_create

from .identity import _ensure_profiles

TARGETS = {"fan_out_messages_per_s": 5000.0, "snapshot_s": 5.0}
RECIPIENTS = 100_000


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


def run(*, profiles: int, quick: bool, env: dict[str, str], log) -> dict:
    tenant, _ = tenant_create(slug="bench", name="Bench Golf Club", region=Region.ZA)
    total = _ensure_profiles(tenant, profiles, log)
    recipients = min(RECIPIENTS, total) if not quick else min(5_000, total)
    saved = (tenant.quiet_hours_start, tenant.quiet_hours_end, tenant.frequency_window_days)
    # Measure sending, not the clock: no quiet hours, no frequency cap during the run.
    tenant.quiet_hours_start = tenant.quiet_hours_end = clock(0, 0)
    tenant.frequency_window_days = 0
    tenant.save()
    tag = uuid.uuid4().hex[:8]
    segment = segment_create(tenant=tenant, data={"name": f"bench-send-{tag}", "type": "STATIC"})
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO "{SegmentMembership._meta.db_table}"
                (tenant_id, segment_id, customer_id, created_at, updated_at)
            SELECT %s, %s, id, now(), now() FROM "{CustomerProfile._meta.db_table}"
            WHERE tenant_id = %s ORDER BY id LIMIT %s""",  # noqa: S608
            [tenant.pk, segment.pk, tenant.pk, recipients],
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
    queue_run = sending.run_queue_senders
    sending.run_queue_senders = lambda run, senders=2: None  # the benchmark runs the senders itself
    try:
        run_ = CampaignRun.objects.create(
            tenant=tenant, campaign=campaign, scheduled_for=timezone.now()
        )
        started = time.perf_counter()
        snapshot = sending.run_prepare(run=run_)
        snapshot_s = time.perf_counter() - started
        log(f"snapshot: {snapshot.targeted:,} rows, {snapshot.queued:,} queued, {snapshot_s:.2f}s")
        connections.close_all()
        started = time.perf_counter()
        with multiprocessing.get_context("fork").Pool(2) as pool:
            sent = sum(pool.map(_send, [run_.pk, run_.pk]))
        send_s = time.perf_counter() - started
        log(f"hand-off: {sent:,} messages in {send_s:.2f}s")
        left = Message.objects.filter(run=run_, status=MessageStatus.QUEUED).count()
    finally:
        sending.run_queue_senders = queue_run
        Message.objects.filter(campaign=campaign).delete()
        CampaignRun.objects.filter(campaign=campaign).delete()
        Campaign.objects.filter(pk=campaign.pk).delete()
        MessageTemplate.objects.filter(pk=template.pk).delete()
        SegmentMembership.objects.filter(segment=segment).delete()
        Segment.objects.filter(pk=segment.pk).delete()
        tenant.quiet_hours_start, tenant.quiet_hours_end, tenant.frequency_window_days = saved
        tenant.save()
    fan_out = sent / (snapshot_s + send_s)
    return {
        "data": {"profiles": total, "recipients": recipients},
        "snapshot": {
            "rows": snapshot.targeted,
            "queued": snapshot.queued,
            "seconds": round(snapshot_s, 2),
        },
        "hand_off": {
            "messages": sent,
            "seconds": round(send_s, 2),
            "messages_per_s": round(sent / send_s, 1),
            "processes": 2,
            "left_queued": left,
        },
        "checks": {
            "fan_out_messages_per_s": round(fan_out, 1),
            "snapshot_s": round(snapshot_s, 2),
        },
        "targets": TARGETS,
    }
