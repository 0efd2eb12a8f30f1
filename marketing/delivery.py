"""Delivering claimed messages: re-check consent and suppression, render, hand to the
backend, mark SENT / SKIPPED / FAILED. One batch of claimed rows at a time, set-wise reads."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from crm.db import batch_cursor
from crm.metrics import sends_record
from crm.models import Tenant
from customers.models import CustomerProfile

from .common import MAX_SEND_ATTEMPTS, ClaimedMessage, message_identity, unsubscribe_token
from .interactions import track_html
from .messaging import MessagingBackend, Outgoing
from .models import Campaign, Message, MessageStatus, MessageTemplate, SkipReason, Suppression
from .templating import RenderCache, TemplateRenderError, recipient_context, subject_render

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Recipient:
    """What rendering and the consent check read of a recipient (not the other 50 columns
    of the profile, and no model instance: a batch reads 500 of them)."""

    id: UUID
    first_name: str
    last_name: str
    email: str | None
    email_opt_in: bool
    sms_opt_in: bool
    push_opt_in: bool
    whatsapp_opt_in: bool

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


_RECIPIENTS_SQL = f"""
    SELECT {", ".join(Recipient.__dataclass_fields__)}
    FROM "{CustomerProfile._meta.db_table}" WHERE tenant_id = %s AND id = ANY(%s::uuid[])
"""  # noqa: S608
_SUPPRESSED_SQL = f"""
    SELECT channel, address FROM "{Suppression._meta.db_table}"
    WHERE tenant_id = %s AND address = ANY(%s::text[])
"""  # noqa: S608


def recipients_read(tenant: Tenant, customer_ids: list[UUID]) -> dict[UUID, Recipient]:
    with batch_cursor() as cursor:
        cursor.execute(_RECIPIENTS_SQL, [tenant.pk, customer_ids])
        return {row[0]: Recipient(*row) for row in cursor.fetchall()}


def suppressed_read(tenant: Tenant, addresses: set[str]) -> set[tuple[str, str]]:
    """The (channel, address) pairs of these addresses the tenant suppresses, as they are now."""
    with batch_cursor() as cursor:
        cursor.execute(_SUPPRESSED_SQL, [tenant.pk, list(addresses)])
        return {(channel, address) for channel, address in cursor.fetchall()}


def unsubscribe_url(message: Message | ClaimedMessage) -> str:
    return f"{settings.PUBLIC_BASE_URL}/u/{unsubscribe_token(message.pk)}"


@dataclass(frozen=True)
class SendPlan:
    """What every message of a run shares, worked out once per run rather than per batch."""

    variants: dict[str, dict[str, Any]]  # A/B letter -> {"template", "subject"}
    club_name: str
    from_email: str
    # Renders kept for the run's recipients (one per distinct set of the values read).
    renders: RenderCache = field(default_factory=RenderCache)


def send_plan(campaign: Campaign) -> SendPlan:
    variants = (campaign.ab_test or {}).get("variants") or []
    templates = {
        str(t.pk): t
        for t in MessageTemplate.objects.filter(
            pk__in=[v["template_id"] for v in variants if v.get("template_id")]
        )
    }
    return SendPlan(
        variants={
            "ABCD"[i]: {
                "template": templates.get(str(v.get("template_id"))),
                "subject": v.get("subject") or "",
            }
            for i, v in enumerate(variants)
        },
        club_name=campaign.club.name if campaign.club_id else "",
        from_email=campaign.tenant.email_from or settings.DEFAULT_FROM_EMAIL,
    )


def deliver(
    *,
    messages: Sequence[Message | ClaimedMessage],
    campaign: Campaign | None,
    backend: MessagingBackend,
    plan: SendPlan,
    now: datetime | None = None,
    tenant: Tenant | None = None,
) -> int:
    """Send claimed (SENDING) rows; returns how many were sent. The batch's outcome is
    written set-wise: one UPDATE for the sent rows, one for the skipped ones.

    ``campaign`` None: journey messages of ``tenant``, each rendered with its own
    ``template`` (load them with ``select_related("template")``)."""
    tenant = campaign.tenant if campaign is not None else tenant
    if tenant is None:
        raise ValueError("deliver() needs the campaign or, for journey messages, the tenant")
    now = now or timezone.now()
    customers = recipients_read(tenant, [m.customer_id for m in messages])
    # Consent and suppression as they are now: an unsubscribe that arrived mid-send wins.
    suppressed = suppressed_read(tenant, {m.address for m in messages})
    sent: list[tuple[int, str]] = []
    skipped: dict[str, list[int]] = {}
    batch: list[tuple[Message | ClaimedMessage, Outgoing]] = []
    for message in messages:
        customer = customers.get(message.customer_id)
        if customer is None or not getattr(customer, f"{message.channel}_opt_in"):
            skipped.setdefault(SkipReason.NO_CONSENT, []).append(message.pk)
            continue
        if (message.channel, message.address) in suppressed:
            skipped.setdefault(SkipReason.SUPPRESSED, []).append(message.pk)
            continue
        try:
            outgoing = _outgoing(
                message, campaign, customer, plan, track=backend.name == "local", tenant=tenant
            )
        except TemplateRenderError as exc:
            # The template cannot be rendered for this recipient: another attempt would
            # fail the same way, so the row fails now (and the run can complete).
            _failed(message, exc, now, final=True)
            continue
        except Exception as exc:  # anything else: counted as an attempt, like a send error
            logger.exception("message %s could not be prepared", message.pk)
            _failed(message, exc, now)
            continue
        if backend.idempotent:
            batch.append((message, outgoing))
            continue
        # SMTP has no idempotency key, so an email goes only while its row is still this
        # claim (the attempt this worker counted, not put back): the in-doubt sweep may have
        # queued a row of a slow batch again, and another sender may hold it now.
        if not _still_claimed(message):
            continue
        try:
            provider_id = backend.send(outgoing)
        except Exception as exc:
            _failed(message, exc, now)
            continue
        # Mark each email the moment the server took it, so a worker killed mid-batch leaves
        # at most one row in doubt.
        sent.append((message.pk, provider_id or ""))
        _mark(sent[-1:], {}, now, attempts={message.pk: message.attempts})
    if batch:
        try:
            results = backend.send_many([outgoing for _, outgoing in batch])
        except Exception as exc:
            results = {outgoing.idempotency_key: exc for _, outgoing in batch}
        for message, outgoing in batch:
            result = results[outgoing.idempotency_key]
            if isinstance(result, Exception):
                _failed(message, result, now)
            else:
                sent.append((message.pk, result))
    _mark(  # SMTP rows are marked already
        sent if backend.idempotent else [],
        skipped,
        now,
        attempts={m.pk: m.attempts for m in messages},
    )
    return len(sent)


def _outgoing(
    message: Message | ClaimedMessage,
    campaign: Campaign | None,
    customer: Recipient,
    plan: SendPlan,
    *,
    track: bool,
    tenant: Tenant,
) -> Outgoing:
    """The message as the backend gets it: rendered for the recipient (the A/B variant's
    template and subject, rendered like a template's), links tracked on the local backend.
    A journey message (no campaign) has its own template. Raises ``TemplateRenderError``
    when the template cannot be rendered."""
    template = campaign.template_for(message.channel) if campaign is not None else message.template
    subject_source = ""
    if message.variant and message.variant in plan.variants:
        chosen = plan.variants[message.variant]
        template = chosen["template"] or template
        subject_source = chosen["subject"]
    if template is None:
        raise TemplateRenderError(
            {"template": [f"The campaign has no {message.channel} template."]}
        )
    context = recipient_context(tenant, plan.club_name, customer, unsubscribe_url(message))
    rendered = plan.renders.render(template, context, marketing=True)
    subject = rendered.subject
    if subject_source:
        subject = subject_render(subject_source, context, field="ab_test.subject")
    html = rendered.html
    if track and html:
        html = track_html(html, message, context["unsubscribe_url"])
    return Outgoing(
        channel=message.channel,
        to=message.address,
        subject=subject,
        html=html,
        text=rendered.text,
        body=rendered.body,
        from_email=plan.from_email,
        idempotency_key=message_identity(message),
        unsubscribe_url=context["unsubscribe_url"],
        tenant=tenant.slug,
    )


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{field}: {' '.join(errs)}" for field, errs in exc.message_dict.items())
    return str(exc)


def _failed(
    message: Message | ClaimedMessage, exc: Exception, now: datetime, *, final: bool = False
) -> None:
    """Back to the queue for another attempt, or FAILED after the last one (or at once when
    ``final``: an error another attempt cannot fix)."""
    logger.warning("message %s failed: %s", message.pk, exc)
    final = final or message.attempts >= MAX_SEND_ATTEMPTS
    changed = Message.objects.filter(pk=message.pk, status=MessageStatus.SENDING).update(
        status=MessageStatus.FAILED if final else MessageStatus.QUEUED,
        error=_error_text(exc)[:500],
        # Not claimable again before 1, 2, 4... minutes; the sweep starts a sender then.
        send_after=None if final else now + timedelta(minutes=2 ** (message.attempts - 1)),
        updated_at=now,
    )
    sends_record(outcome="failed" if final else "retried", count=changed)


_SENT_SQL = f"""
    UPDATE "{Message._meta.db_table}" m
    SET status = 'SENT', sent_at = %s, updated_at = %s, error = '',
        provider_id = s.provider_id
    FROM unnest(%s::bigint[], %s::text[], %s::int[]) AS s(id, provider_id, attempts)
    WHERE m.id = ANY(ARRAY(SELECT unnest(%s::bigint[]))) AND m.id = s.id
      AND (m.status IN ('SENDING', 'CANCELLED')
           OR (m.status = 'QUEUED' AND m.attempts = s.attempts))
"""  # noqa: S608
# ``m.id = ANY(ARRAY(SELECT ...))`` besides the join: the rows are found by primary key. With
# the join alone (or a plain ``= ANY(%s)``, whose 500 ids the planner costs one by one) it
# read the whole message table for each batch wherever its statistics said the table was
# small (a first big send, or rows deleted since ANALYZE): 20 ms a batch of 500 at 100,000
# rows instead of 5, growing with the table. The sub-select's array is a parameter the planner
# sizes at a handful of ids, so the primary key wins whatever the statistics say.
# CANCELLED too: a campaign cancelled while a worker held the row settles it CANCELLED, and
# when the backend then took it, SENT is the truth (the frequency cap counts it). Only rows
# this worker claimed are in the list, so a row cancelled while still queued never is.
# QUEUED with the attempt of this claim: the in-doubt sweep put the row back while the
# backend was taking it and nobody has claimed it since; SENT is the truth, and marking it
# keeps it from being sent again. (A row given without its attempt never matches QUEUED.)


_STILL_CLAIMED_SQL = f"""
    SELECT EXISTS (
        SELECT 1 FROM "{Message._meta.db_table}"
        WHERE id = %s AND status IN ('SENDING', 'CANCELLED') AND attempts = %s
    )
"""  # noqa: S608


def _still_claimed(message: Message | ClaimedMessage) -> bool:
    """Nobody has put the row back in the queue since this worker claimed it. A row of a
    campaign cancelled meanwhile still counts (it is sent and marked SENT, as a row the
    backend took just before the cancel would be). Asked before every email: in SQL, as
    building the ORM's query took about a quarter of an SMTP sender's CPU."""
    with batch_cursor() as cursor:
        cursor.execute(_STILL_CLAIMED_SQL, [message.pk, message.attempts])
        return cursor.fetchone()[0]


def _mark(
    sent: list[tuple[int, str]],
    skipped: dict[str, list[int]],
    now: datetime,
    *,
    attempts: dict[int, int] | None = None,
) -> None:
    if sent:
        claimed = attempts or {}
        ids = [pk for pk, _ in sent]
        with batch_cursor() as cursor:
            cursor.execute(
                _SENT_SQL,
                [
                    now,
                    now,
                    ids,
                    [pid[:200] for _, pid in sent],
                    [claimed.get(pk) for pk, _ in sent],
                    ids,
                ],
            )
            sends_record(outcome="sent", count=cursor.rowcount)
    for reason, ids in skipped.items():
        skipped_n = Message.objects.filter(pk__in=ids, status=MessageStatus.SENDING).update(
            status=MessageStatus.SKIPPED, skip_reason=reason, updated_at=now
        )
        sends_record(outcome=f"skipped_{reason}", count=skipped_n)
