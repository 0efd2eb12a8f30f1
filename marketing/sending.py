"""Sending campaigns: the due sweep, the recipient snapshot, claimed sends, completion.

1. ``campaigns_start_due`` (beat, every minute) locks due SCHEDULED campaigns with
   ``FOR UPDATE SKIP LOCKED``, creates the run for that due time (unique, so a double fire
   creates one) and moves the campaign to SENDING.
2. ``run_prepare`` refreshes the segment **now** (not when the campaign was scheduled) and
   snapshots the recipients in SQL: one ``INSERT ... SELECT`` per channel makes one message
   row per recipient and channel (unique), QUEUED or SKIPPED with its reason (no address,
   no consent, suppressed, frequency cap). A/B tests put the test fraction on variants and
   HOLD the rest until a winner is chosen.
3. ``run_send`` (the ``send_run`` tasks) claims QUEUED rows (``SKIP LOCKED``), marks each
   SENDING and commits, sends it through the backend with the row's stable id as idempotency
   key / Message-ID, then marks it SENT (or FAILED after attempts). A row is never sent twice
   by a retried, redelivered or resumed task: only QUEUED rows are claimed. A worker killed
   mid-send leaves its row SENDING; the sweep puts such rows back after ``IN_DOUBT_AFTER``
   and they are sent again with the same Message-ID / idempotency key, so the receiving side
   drops the repeat. Each claim counts an attempt: a row in doubt after ``MAX_SEND_ATTEMPTS``
   becomes FAILED, and a template that cannot be rendered fails its row at once, so every
   row ends SENT, FAILED, SKIPPED or CANCELLED.
4. A run is COMPLETED only when no row of it is QUEUED, SENDING or HELD.

Quiet hours (the tenant's local time) hold sending: the send task stops and the sweep
starts it again when the window opens. Paused campaigns are not sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from crm.db import batch_cursor
from crm.models import Tenant
from crm.registry import campaign_channels
from crm.tasks import tenant_task
from customers.models import CustomerProfile

from .common import (
    ADDRESS_COLUMN,
    CHANNELS,
    MAX_SEND_ATTEMPTS,
    ClaimedMessage,
    next_occurrence,
    skip_reason_params,
    skip_reason_sql,
)
from .delivery import deliver, send_plan
from .messaging import get_backend
from .models import (
    Campaign,
    CampaignRun,
    CampaignStatus,
    CampaignType,
    Interaction,
    Message,
    MessageStatus,
    RunStatus,
    SegmentMembership,
    SegmentType,
)
from .segments import segment_refresh

logger = logging.getLogger(__name__)

CLAIM_SIZE = 50
# A backend that takes an idempotency key (the Messaging service) gets bigger batches: a
# batch's rows are one send_many call, and a sender killed mid-batch leaves rows that the
# in-doubt sweep queues again and the key keeps from going twice.
CLAIM_SIZE_IDEMPOTENT = 500
IN_DOUBT_AFTER = timedelta(minutes=5)
SENDERS_PER_RUN = 2


# ----------------------------------------------------------------------------- quiet hours


def in_quiet_hours(tenant: Tenant, now: datetime) -> bool:
    local = now.astimezone(ZoneInfo(tenant.timezone)).time()
    start, end = tenant.quiet_hours_start, tenant.quiet_hours_end
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end  # the window spans midnight (20:00-08:00)


def quiet_hours_end(tenant: Tenant, now: datetime) -> datetime:
    zone = ZoneInfo(tenant.timezone)
    local = now.astimezone(zone)
    end = datetime.combine(local.date(), tenant.quiet_hours_end, tzinfo=zone)
    return end if end > local else end + timedelta(days=1)


# ----------------------------------------------------------------------------- sweep


def campaigns_start_due(*, now: datetime | None = None, limit: int = 50) -> int:
    """Beat: start a run of every SCHEDULED campaign whose time has come."""
    now = now or timezone.now()
    started = 0
    with transaction.atomic():
        due = list(
            Campaign.objects.select_for_update(skip_locked=True)
            .filter(status=CampaignStatus.SCHEDULED, next_run_at__lte=now)
            .select_related("tenant")
            .order_by("next_run_at")[:limit]
        )
        for campaign in due:
            run, created = CampaignRun.objects.get_or_create(
                tenant=campaign.tenant, campaign=campaign, scheduled_for=campaign.next_run_at
            )
            campaign.status = CampaignStatus.SENDING
            campaign.last_run_at = now
            campaign.save(update_fields=["status", "last_run_at", "updated_at"])
            if created:
                started += 1
                transaction.on_commit(lambda r=run: _queue_prepare(r))
    return started


def _queue_prepare(run: CampaignRun) -> None:
    tenant_task("marketing.prepare_run").enqueue(run.tenant, run_id=run.pk)


def run_queue_senders(run: CampaignRun, senders: int = SENDERS_PER_RUN) -> None:
    """Start ``senders`` send tasks for the run (each sends until nothing is left)."""
    task = tenant_task("marketing.send_run")
    for _ in range(senders):
        task.enqueue(run.tenant, run_id=run.pk)


def messages_requeue_in_doubt(*, now: datetime) -> int:
    """Rows SENDING for longer than ``IN_DOUBT_AFTER`` (their sender died mid-send) go back
    to QUEUED and are sent again with the same Message-ID / idempotency key, or become
    FAILED when their attempts are spent. Campaign and journey messages alike (both beats
    call it). A sender that is still alive sends none of its rows put back here (``deliver``
    checks its claim before each SMTP email). Returns how many were queued again."""
    in_doubt = Message.objects.filter(
        status=MessageStatus.SENDING, send_after__lte=now - IN_DOUBT_AFTER
    )
    # Each claim counted an attempt; a row in doubt after its last one is settled as FAILED
    # (not queued again every few minutes for ever, keeping its run open).
    spent = in_doubt.filter(attempts__gte=MAX_SEND_ATTEMPTS).update(
        status=MessageStatus.FAILED,
        error=f"No outcome after {MAX_SEND_ATTEMPTS} attempts (the sender stopped mid-send); "
        "it may have been delivered.",
        updated_at=now,
    )
    if spent:
        logger.warning("%s messages in doubt after their last attempt failed", spent)
    back = in_doubt.filter(attempts__lt=MAX_SEND_ATTEMPTS).update(
        status=MessageStatus.QUEUED, updated_at=now
    )
    if back:
        logger.warning("%s messages in doubt were queued again (same Message-ID)", back)
    return back


def runs_kick(*, now: datetime | None = None) -> int:
    """Beat: runs that still have work get senders again (after quiet hours, a lost task,
    a worker killed mid-send). Rows in doubt for too long go back to QUEUED, or FAILED when
    their attempts are spent."""
    now = now or timezone.now()
    messages_requeue_in_doubt(now=now)
    # TESTING runs too: their test variants may be waiting for quiet hours to end.
    runs = CampaignRun.objects.filter(
        status__in=[RunStatus.SENDING, RunStatus.TESTING], campaign__status=CampaignStatus.SENDING
    ).select_related("tenant", "campaign")
    kicked = 0
    for run in runs:
        if in_quiet_hours(run.tenant, now):
            continue
        if Message.objects.filter(run=run, status=MessageStatus.QUEUED).exists():
            run_queue_senders(run)
            kicked += 1
        else:
            run_complete_if_done(run=run)
    return kicked


# ----------------------------------------------------------------------------- snapshot

M = Message._meta.db_table
P = CustomerProfile._meta.db_table
SM = SegmentMembership._meta.db_table


# Each person's place in [0, 1), from a hash of their id: the same person always falls in
# the same A/B variant.
BUCKET_SQL = "(('x' || substr(md5(p.id::text), 1, 8))::bit(32)::bigint / 4294967296.0)"


def _variant_sql(ab_test: dict) -> tuple[str, list[Any]]:
    """The variant letter of a recipient (on the bucket ``b.bucket``), or '' outside the
    test fraction: the fraction is split evenly over the variants."""
    variants = len(ab_test["variants"])
    fraction = float(ab_test.get("test_fraction", 0.2))
    cases = " ".join(f"WHEN b.bucket < %s THEN '{'ABCD'[i]}'" for i in range(variants))
    return f"CASE {cases} ELSE '' END", [fraction * (i + 1) / variants for i in range(variants)]


def _snapshot_sql(channel: str, variant_sql: str | None) -> str:
    column = ADDRESS_COLUMN[channel]
    variant = (
        f"CROSS JOIN LATERAL (SELECT {BUCKET_SQL} AS bucket) b "
        f"CROSS JOIN LATERAL (SELECT {variant_sql} AS variant) v"
        if variant_sql
        else "CROSS JOIN LATERAL (SELECT ''::text AS variant) v"
    )
    return f"""
        INSERT INTO "{M}" (tenant_id, run_id, campaign_id, customer_id, channel, address,
                           variant, status, skip_reason, attempts, error, provider_id,
                           created_at, updated_at)
        SELECT %s, %s, %s, r.id, %s, r.address, r.variant,
               CASE WHEN r.reason <> '' THEN 'SKIPPED'
                    WHEN r.held THEN 'HELD' ELSE 'QUEUED' END,
               r.reason, 0, '', '', %s, %s
        FROM (
            SELECT p.id, COALESCE(p.{column}, '') AS address, v.variant,
                   (%s AND v.variant = '') AS held,
                   {skip_reason_sql(channel)} AS reason
            FROM "{SM}" sm
            JOIN "{P}" p ON p.id = sm.customer_id
            {variant}
            WHERE sm.tenant_id = %s AND sm.segment_id = %s
              AND p.tenant_id = %s AND p.status IN ('ACTIVE', 'INACTIVE')
              AND p.deleted_at IS NULL
        ) r
        ON CONFLICT (tenant_id, run_id, customer_id, channel) DO NOTHING
    """  # noqa: S608


@dataclass
class Snapshot:
    targeted: int
    queued: int


def run_prepare(*, run: CampaignRun, now: datetime | None = None) -> Snapshot | None:
    """Refresh the segment, then snapshot the recipients (idempotent: a second call adds no
    row). Hands the run to the senders."""
    now = now or timezone.now()
    campaign = Campaign.objects.select_related("tenant", "segment").get(pk=run.campaign_id)
    tenant = campaign.tenant
    if run.status != RunStatus.PREPARING or campaign.status != CampaignStatus.SENDING:
        return None
    segment = campaign.segment
    message_channels = [c for c in campaign.channels if c in CHANNELS]
    others = campaign_channels()
    if message_channels and segment is not None and segment.type == SegmentType.DYNAMIC:
        segment_refresh(segment=segment, now=now)
    ab_test = campaign.ab_test or {}
    variant_sql, variant_params = _variant_sql(ab_test) if ab_test else (None, [])
    with transaction.atomic():
        locked = CampaignRun.objects.select_for_update().get(pk=run.pk)
        if locked.status != RunStatus.PREPARING:
            return None
        with connection.cursor() as cursor:
            # With fresh statistics a big segment's estimate crosses the JIT threshold, and
            # compiling the snapshot cost about 0.5 s, more than it saves at 100,000 rows.
            cursor.execute("SET LOCAL jit = off")
            for channel in message_channels if segment is not None else []:
                held = bool(ab_test) and channel == "email"
                sql = _snapshot_sql(channel, variant_sql if held else None)
                cursor.execute(
                    sql,
                    [
                        tenant.pk,
                        run.pk,
                        campaign.pk,
                        channel,
                        now,
                        now,
                        held,
                        *skip_reason_params(tenant, channel, now),
                        *(variant_params if held else []),
                        tenant.pk,
                        segment.pk,
                        tenant.pk,
                    ],
                )
        for name in campaign.channels:
            if name in others:
                # e.g. social posts: made in this transaction, so once per run.
                others[name].run(campaign=campaign, run=locked, now=now)
        # One pass over the run's rows through the unique key (tenant, run, ...): by run alone
        # the count read the whole message table.
        counts = Message.objects.filter(tenant=tenant, run=run).aggregate(
            targeted=Count("id"), queued=Count("id", filter=Q(status=MessageStatus.QUEUED))
        )
        targeted, queued = counts["targeted"], counts["queued"]
        locked.targeted = targeted
        if ab_test:
            locked.status = RunStatus.TESTING
            locked.test_ends_at = now + timedelta(minutes=int(ab_test.get("wait_minutes", 240)))
        else:
            locked.status = RunStatus.SENDING
        locked.save(update_fields=["targeted", "status", "test_ends_at", "updated_at"])
        Campaign.objects.filter(pk=campaign.pk).update(target_count=targeted)
        transaction.on_commit(lambda: run_queue_senders(locked))
    return Snapshot(targeted, queued)


# ----------------------------------------------------------------------------- send


def messages_claim(*, messages: QuerySet[Message], now: datetime, limit: int) -> list[Message]:
    """Claim up to ``limit`` QUEUED rows of ``messages`` that may go now (``send_after``
    passed): locked with ``SKIP LOCKED`` (two senders never take the same row), marked
    SENDING with ``send_after = now`` (when the claim began; the sweep's in-doubt clock) and
    one more attempt, and committed before anything is sent. Campaign runs and journey
    messages both claim through here. Returns the rows as they now are."""
    with transaction.atomic():
        rows = list(
            messages.select_for_update(skip_locked=True)
            .filter(status=MessageStatus.QUEUED)
            .filter(Q(send_after__isnull=True) | Q(send_after__lte=now))
            .order_by("id")[:limit]
        )
        if rows:
            Message.objects.filter(pk__in=[m.pk for m in rows]).update(
                status=MessageStatus.SENDING, send_after=now, attempts=F("attempts") + 1
            )
            for message in rows:  # as the rows now are
                message.status, message.send_after = MessageStatus.SENDING, now
                message.attempts += 1
    return rows


# ``messages_claim`` for a campaign run, in one statement: the inner SELECT locks up to
# ``limit`` QUEUED rows that may go now (``SKIP LOCKED``: two senders never take the same
# row), the UPDATE marks exactly those SENDING with one more attempt, and the statement's
# commit is the claim's, before anything is sent. A row the inner SELECT locked stays ours
# until then, so the UPDATE needs no second status check (one on ``m.status`` led the planner
# to the partial queued index, which it then read whole for each id). ``= ANY(ARRAY(...))``
# runs the inner SELECT once and finds the rows by primary key.
_RUN_CLAIM_SQL = f"""
    UPDATE "{M}" m SET status = 'SENDING', send_after = %s, attempts = m.attempts + 1
    WHERE m.id = ANY(ARRAY(
        SELECT q.id FROM "{M}" q
        WHERE q.tenant_id = %s AND q.run_id = %s AND q.status = 'QUEUED'
          AND (q.send_after IS NULL OR q.send_after <= %s)
        ORDER BY q.id LIMIT %s
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING m.id, m.tenant_id, m.customer_id, m.channel, m.address, m.variant, m.attempts
"""  # noqa: S608


def run_messages_claim(*, run: CampaignRun, now: datetime, limit: int) -> list[ClaimedMessage]:
    """``messages_claim`` for the rows of a campaign run, as ``ClaimedMessage`` rows (the
    same rows, locks and marks; one round trip, no model instances), in id order."""
    with batch_cursor() as cursor:
        cursor.execute(_RUN_CLAIM_SQL, [now, run.tenant_id, run.pk, now, limit])
        rows = [ClaimedMessage(*row) for row in cursor.fetchall()]
    rows.sort(key=attrgetter("pk"))
    return rows


def _claim(run: CampaignRun, now: datetime, *, idempotent: bool = False) -> list[ClaimedMessage]:
    limit = CLAIM_SIZE_IDEMPOTENT if idempotent else CLAIM_SIZE
    return run_messages_claim(run=run, now=now, limit=limit)


def run_send(*, run: CampaignRun, now_fn=timezone.now) -> int:
    """Send the run's queued rows until none is left (or the campaign is paused, or quiet
    hours begin). Returns how many were sent by this call."""
    run = CampaignRun.objects.select_related("campaign", "campaign__tenant").get(pk=run.pk)
    campaign, tenant = run.campaign, run.campaign.tenant
    backend = get_backend()
    plan = send_plan(campaign)
    sent = 0
    while True:
        # Both states as they are now, in one round trip per batch.
        run.status, campaign.status = (
            CampaignRun.objects.filter(pk=run.pk).values_list("status", "campaign__status").get()
        )
        # A TESTING run sends its test variants; the remainder waits, HELD.
        if campaign.status != CampaignStatus.SENDING or run.status not in (
            RunStatus.SENDING,
            RunStatus.TESTING,
        ):
            return sent
        now = now_fn()
        if in_quiet_hours(tenant, now):
            logger.info("run %s waits for the end of quiet hours", run.pk)
            return sent
        # (SMTP, without a key, in the smaller batches: each email is checked and marked alone)
        rows = _claim(run, now, idempotent=True) if backend.idempotent else _claim(run, now)
        if not rows:
            break
        sent += deliver(messages=rows, campaign=campaign, backend=backend, plan=plan, now=now)
    run_complete_if_done(run=run)
    return sent


def run_fail(*, run: CampaignRun, error: str) -> None:
    """The run could not be prepared: it is cancelled and the campaign FAILED (staff see
    the error on the campaign; nothing was sent)."""
    with transaction.atomic():
        CampaignRun.objects.filter(pk=run.pk).update(
            status=RunStatus.CANCELLED, completed_at=timezone.now()
        )
        Campaign.objects.filter(pk=run.campaign_id, status=CampaignStatus.SENDING).update(
            status=CampaignStatus.FAILED, failure=error[:500], updated_at=timezone.now()
        )


def run_complete_if_done(*, run: CampaignRun) -> bool:
    """COMPLETED only when nothing of the run is left to send."""
    with transaction.atomic():
        run = CampaignRun.objects.select_for_update().select_related("campaign").get(pk=run.pk)
        if run.status not in (RunStatus.SENDING,):
            return False
        open_rows = Message.objects.filter(
            run=run,
            status__in=[MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.HELD],
        )
        if open_rows.exists():
            return False
        run.status = RunStatus.COMPLETED
        run.completed_at = timezone.now()
        run.save(update_fields=["status", "completed_at", "updated_at"])
        campaign = Campaign.objects.select_for_update().get(pk=run.campaign_id)
        if campaign.status == CampaignStatus.SENDING:
            if campaign.type == CampaignType.RECURRING:
                campaign.status = CampaignStatus.SCHEDULED
                campaign.next_run_at = next_occurrence(
                    campaign, max(timezone.now(), run.scheduled_for)
                )
            else:
                campaign.status = CampaignStatus.COMPLETED
                campaign.next_run_at = None
            campaign.save(update_fields=["status", "next_run_at", "updated_at"])
    return True


# ----------------------------------------------------------------------------- A/B tests


def _rates(run: CampaignRun, metric: str) -> dict[str, float]:
    kind = "OPENED" if metric == "open" else "CLICKED"
    sent = dict(
        Message.objects.filter(run=run, status=MessageStatus.SENT)
        .exclude(variant="")
        .values_list("variant")
        .annotate(n=Count("id"))
        .values_list("variant", "n")
    )
    engaged = dict(
        Interaction.objects.filter(message__run=run, kind=kind)
        .values_list("message__variant")
        .annotate(n=Count("message_id", distinct=True, filter=Q(kind=kind)))
        .values_list("message__variant", "n")
    )
    return {variant: engaged.get(variant, 0) / count for variant, count in sent.items() if count}


def ab_decide(*, run: CampaignRun, winner: str | None = None) -> str | None:
    """Choose the winner (the best open or click rate; ties go to the earlier letter, or
    ``winner`` when staff override) and release the held remainder to it."""
    with transaction.atomic():
        run = CampaignRun.objects.select_for_update().select_related("campaign").get(pk=run.pk)
        if run.status != RunStatus.TESTING:
            return None
        campaign = run.campaign
        letters = "ABCD"[: len(campaign.ab_test.get("variants", []))]
        if winner is None:
            rates = _rates(run, campaign.ab_test.get("metric", "open"))
            winner = max(letters, key=lambda letter: (rates.get(letter, 0.0), -ord(letter)))
        elif winner not in letters:
            raise ValidationError({"variant": [f"Choose one of {', '.join(letters)}."]})
        Message.objects.filter(run=run, status=MessageStatus.HELD).update(
            status=MessageStatus.QUEUED, variant=winner
        )
        run.status = RunStatus.SENDING
        run.save(update_fields=["status", "updated_at"])
        Campaign.objects.filter(pk=campaign.pk).update(ab_winner=winner)
        transaction.on_commit(lambda: run_queue_senders(run))
    return winner


def ab_tests_decide_due(*, now: datetime | None = None) -> int:
    """Beat: A/B tests whose wait is over get their winner."""
    now = now or timezone.now()
    due = CampaignRun.objects.filter(status=RunStatus.TESTING, test_ends_at__lte=now)
    return sum(1 for run in due if ab_decide(run=run))
