"""Campaigns: validation, the state machine, schedules (cron in the campaign's timezone).

States::

    DRAFT --schedule--> SCHEDULED --(due: the sweep starts a run)--> SENDING --> COMPLETED
      |                  |  ^                                          |   recurring: back to
      |                  |  |                                          |   SCHEDULED for the
      |                pause resume                                   pause  next occurrence
      |                  v  |                                          v
      +---cancel--->  PAUSED  <-------------------------------------- (PAUSED)
                    (cancel from DRAFT, SCHEDULED, SENDING or PAUSED -> CANCELLED)

A change that is not allowed from the current state raises ``CampaignConflict`` (409).
Due times live in the database (``next_run_at``); a beat sweep starts due campaigns.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from crm.models import Tenant
from crm.registry import campaign_channels
from customers.identity import normalize_email, normalize_phone
from customers.models import CustomerProfile

from .common import CHANNELS, next_occurrence, unreachable_sql
from .messaging import Outgoing, get_backend
from .models import (
    Campaign,
    CampaignRun,
    CampaignStatus,
    CampaignType,
    Interaction,
    Message,
    MessageStatus,
    MessageTemplate,
    RunStatus,
    SegmentMembership,
    SkipReason,
    created_by_fields,
)
from .segments import memberships_of
from .sending import run_queue_senders
from .templating import render, sample_context, subject_validate

EDITABLE = (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED, CampaignStatus.PAUSED)
OPEN_RUN = (RunStatus.PREPARING, RunStatus.SENDING, RunStatus.TESTING)
MIN_CRON_INTERVAL = timedelta(hours=1)
SUBJECT_MAX_LENGTH = MessageTemplate._meta.get_field("subject").max_length
CAMPAIGN_FIELDS = (
    "name",
    "description",
    "club",
    "type",
    "cron",
    "timezone",
    "segment",
    "channels",
    "email_template",
    "sms_template",
    "push_template",
    "whatsapp_template",
    "scheduled_at",
    "ab_test",
    "social_text",
    "social_link",
)


class CampaignConflict(ValidationError):
    status_code = 409


# ----------------------------------------------------------------------------- validation


def _validate(tenant: Tenant, values: dict[str, Any], *, for_schedule: bool) -> None:
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    kind = values.get("type") or CampaignType.ONE_TIME
    zone = values.get("timezone") or ""
    if zone:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            add("timezone", f"Unknown timezone {zone!r}.")
    cron = values.get("cron") or ""
    if kind == CampaignType.RECURRING:
        if not cron:
            add("cron", "A recurring campaign needs a cron expression, e.g. 0 9 * * 1.")
        else:
            try:
                it = CronSim(cron, timezone.now())
                first, second = next(it), next(it)
                if second - first < MIN_CRON_INTERVAL:
                    add("cron", "Recurring campaigns run at most once an hour.")
            except (CronSimError, StopIteration):
                add("cron", f"Not a valid cron expression: {cron!r}.")
    elif cron:
        add("cron", "Only recurring campaigns have a cron expression.")
    channels = values.get("channels") or []
    others = campaign_channels()  # e.g. "social", registered by the app that delivers it
    unknown = [c for c in channels if c not in CHANNELS and c not in others]
    if unknown:
        add("channels", f"Unknown channels: {', '.join(unknown)}.")
    if len(set(channels)) != len(channels):
        add("channels", "A channel is listed twice.")
    for channel in CHANNELS:
        template = values.get(f"{channel}_template")
        if template is None:
            continue
        if template.tenant_id != tenant.pk:
            add(f"{channel}_template", "Unknown template.")
        elif template.channel != channel:
            add(f"{channel}_template", f"This is a {template.channel} template.")
    segment = values.get("segment")
    if segment is not None and segment.tenant_id != tenant.pk:
        add("segment", "Unknown segment.")
    club = values.get("club")
    if club is not None and club.tenant_id != tenant.pk:
        add("club", "Unknown club.")
    ab_test = values.get("ab_test") or {}
    if ab_test:
        _validate_ab(tenant, ab_test, channels, add)
    for name in channels:
        if name in others:
            found = others[name].validate(tenant=tenant, values=values, for_schedule=for_schedule)
            for field, messages in found.items():
                for message in messages:
                    add(field, message)
    if for_schedule:
        # Only a campaign whose channels are all registered ones (social posts) has no
        # people to send to, so no segment.
        if segment is None and (not channels or any(c in CHANNELS for c in channels)):
            add("segment", "Choose the segment to send to.")
        if not channels:
            add("channels", "Choose at least one channel.")
        for channel in channels:
            if channel in CHANNELS and values.get(f"{channel}_template") is None:
                add(f"{channel}_template", f"Choose the {channel} template.")
        if kind == CampaignType.ONE_TIME:
            when = values.get("scheduled_at")
            if when is None:
                add("scheduled_at", "Say when to send.")
            elif when < timezone.now() - timedelta(minutes=5):
                add("scheduled_at", "This time has passed.")
    if errors:
        raise ValidationError(errors)


def _validate_ab(tenant, ab_test, channels, add) -> None:
    if not isinstance(ab_test, dict):
        add("ab_test", "Expected an object.")
        return
    variants = ab_test.get("variants")
    if not isinstance(variants, list) or not 2 <= len(variants) <= 4:
        add("ab_test.variants", "Give 2 to 4 variants.")
        return
    if "email" not in channels:
        add("ab_test", "A/B tests vary the email: add the email channel.")
    for index, variant in enumerate(variants):
        if not isinstance(variant, dict) or not (
            variant.get("subject") or variant.get("template_id")
        ):
            add(f"ab_test.variants[{index}]", "Give a subject or a template_id.")
            continue
        subject = variant.get("subject") or ""
        if not isinstance(subject, str):
            add(f"ab_test.variants[{index}].subject", "Expected text.")
        elif len(subject) > SUBJECT_MAX_LENGTH:  # as long as a template's subject may be
            add(f"ab_test.variants[{index}].subject", f"At most {SUBJECT_MAX_LENGTH} characters.")
        elif subject:
            # Rendered for every recipient like a template's subject: same engine, same rules.
            try:
                subject_validate(subject=subject, field=f"ab_test.variants[{index}].subject")
            except ValidationError as exc:
                for field, problems in exc.message_dict.items():
                    for problem in problems:
                        add(field, problem)
        if variant.get("template_id"):
            exists = MessageTemplate.objects.for_tenant(tenant).filter(
                pk=variant["template_id"], channel="email"
            )
            try:
                if not exists.exists():
                    add(f"ab_test.variants[{index}].template_id", "Unknown email template.")
            except ValidationError:
                add(f"ab_test.variants[{index}].template_id", "Not a template id.")
    fraction = ab_test.get("test_fraction", 0.2)
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, int | float)
        or not 0.05 <= fraction <= 0.5
    ):
        add("ab_test.test_fraction", "Between 0.05 and 0.5.")
    wait = ab_test.get("wait_minutes", 240)
    if isinstance(wait, bool) or not isinstance(wait, int) or not 15 <= wait <= 10_080:
        add("ab_test.wait_minutes", "Between 15 minutes and 7 days.")
    if ab_test.get("metric", "open") not in ("open", "click"):
        add("ab_test.metric", "open or click.")


def _values(campaign: Campaign) -> dict[str, Any]:
    return {name: getattr(campaign, name) for name in CAMPAIGN_FIELDS}


def campaign_validate(campaign: Campaign, *, for_schedule: bool = False) -> None:
    """The campaign's fields hang together (and, ``for_schedule``, it can be scheduled)."""
    _validate(campaign.tenant, _values(campaign), for_schedule=for_schedule)


# ----------------------------------------------------------------------------- CRUD


def campaign_create(*, tenant: Tenant, data: dict[str, Any], actor: Any = None) -> Campaign:
    """``actor``: who creates it (a staff user or an API principal), see
    ``created_by_fields``."""
    values = {k: v for k, v in data.items() if k in CAMPAIGN_FIELDS}
    _validate(tenant, values, for_schedule=False)
    return Campaign.objects.create(tenant=tenant, **values, **created_by_fields(actor))


def campaign_update(*, campaign: Campaign, data: dict[str, Any]) -> Campaign:
    with transaction.atomic():
        campaign = _lock(campaign)
        if campaign.status not in EDITABLE:
            raise CampaignConflict(f"A {campaign.status.lower()} campaign cannot be changed.")
        values = {**_values(campaign), **{k: v for k, v in data.items() if k in CAMPAIGN_FIELDS}}
        _validate(campaign.tenant, values, for_schedule=campaign.status == CampaignStatus.SCHEDULED)
        for name, value in values.items():
            setattr(campaign, name, value)
        if campaign.status == CampaignStatus.SCHEDULED:
            campaign.next_run_at = next_occurrence(campaign, timezone.now())
        campaign.save()
    return campaign


def campaign_delete(*, campaign: Campaign) -> None:
    if campaign.status not in (CampaignStatus.DRAFT, CampaignStatus.CANCELLED):
        raise CampaignConflict("Only draft or cancelled campaigns can be deleted.")
    campaign.delete()


# ----------------------------------------------------------------------------- state changes


def _lock(campaign: Campaign) -> Campaign:
    return Campaign.objects.select_for_update().select_related("tenant").get(pk=campaign.pk)


def _refuse(campaign: Campaign, action: str) -> None:
    raise CampaignConflict(f"Cannot {action} a campaign that is {campaign.status.lower()}.")


def campaign_schedule(*, campaign: Campaign) -> Campaign:
    with transaction.atomic():
        campaign = _lock(campaign)
        if campaign.status != CampaignStatus.DRAFT:
            _refuse(campaign, "schedule")
        campaign_validate(campaign, for_schedule=True)
        campaign.next_run_at = next_occurrence(campaign, timezone.now())
        campaign.status = CampaignStatus.SCHEDULED
        campaign.save(update_fields=["status", "next_run_at", "updated_at"])
    return campaign


def _open_run(campaign: Campaign) -> CampaignRun | None:
    return (
        CampaignRun.objects.filter(campaign=campaign, status__in=OPEN_RUN)
        .order_by("-scheduled_for")
        .first()
    )


def campaign_pause(*, campaign: Campaign) -> Campaign:
    with transaction.atomic():
        campaign = _lock(campaign)
        if campaign.status not in (CampaignStatus.SCHEDULED, CampaignStatus.SENDING):
            _refuse(campaign, "pause")
        campaign.status = CampaignStatus.PAUSED
        campaign.save(update_fields=["status", "updated_at"])
    return campaign


def campaign_resume(*, campaign: Campaign) -> Campaign:
    """Back to SENDING when a run was interrupted (its unsent rows are queued again), else to
    SCHEDULED (a missed one-time send is due at once; a recurring one waits for its next
    time)."""
    with transaction.atomic():
        campaign = _lock(campaign)
        if campaign.status != CampaignStatus.PAUSED:
            _refuse(campaign, "resume")
        run = _open_run(campaign)
        if run is not None:
            campaign.status = CampaignStatus.SENDING
            transaction.on_commit(lambda: run_queue_senders(run))
        else:
            campaign_validate(campaign)
            campaign.status = CampaignStatus.SCHEDULED
            now = timezone.now()
            if campaign.type == CampaignType.RECURRING:
                campaign.next_run_at = next_occurrence(campaign, now)
            else:
                campaign.next_run_at = max(campaign.scheduled_at or now, now)
        campaign.save(update_fields=["status", "next_run_at", "updated_at"])
    return campaign


def campaign_cancel(*, campaign: Campaign) -> Campaign:
    with transaction.atomic():
        campaign = _lock(campaign)
        allowed = (
            CampaignStatus.DRAFT,
            CampaignStatus.SCHEDULED,
            CampaignStatus.SENDING,
            CampaignStatus.PAUSED,
        )
        if campaign.status not in allowed:
            _refuse(campaign, "cancel")
        now = timezone.now()
        # The runs locked first: a run being prepared finishes its snapshot before its rows
        # are settled here, so none is left QUEUED under a cancelled run.
        run_ids = list(
            CampaignRun.objects.select_for_update()
            .filter(campaign=campaign, status__in=OPEN_RUN)
            .values_list("pk", flat=True)
        )
        rows = Message.objects.filter(tenant=campaign.tenant, run_id__in=run_ids)
        rows.filter(status__in=[MessageStatus.QUEUED, MessageStatus.HELD]).update(
            status=MessageStatus.CANCELLED, updated_at=now
        )
        # A row a worker holds is settled too (the worker marks it SENT if the backend takes
        # it; a failure leaves it CANCELLED): nothing of the run stays open.
        rows.filter(status=MessageStatus.SENDING).update(
            status=MessageStatus.CANCELLED,
            error="Cancelled while it was being sent; it may have been delivered.",
            updated_at=now,
        )
        CampaignRun.objects.filter(pk__in=run_ids).update(
            status=RunStatus.CANCELLED, completed_at=now
        )
        campaign.status = CampaignStatus.CANCELLED
        campaign.next_run_at = None
        campaign.save(update_fields=["status", "next_run_at", "updated_at"])
    return campaign


# ----------------------------------------------------------------------------- send test


def campaign_send_test(*, campaign: Campaign, to: list[str]) -> int:
    """Send each channel's message, rendered with placeholder values, to test addresses
    (emails for the email channel, phones for the others); nothing is recorded."""
    tenant = campaign.tenant
    emails, phones, errors = [], [], []
    for address in to:
        try:
            if "@" in address:
                emails.append(normalize_email(address))
            else:
                phones.append(normalize_phone(address, region=tenant.default_phone_region))
        except ValidationError:
            errors.append(f"{address!r} is neither an email nor a phone number.")
    if errors:
        raise ValidationError({"to": errors})
    backend = get_backend()
    context = sample_context(tenant, campaign.club.name if campaign.club_id else "")
    sent = 0
    for channel in campaign.channels:
        template = campaign.template_for(channel)
        if template is None:
            raise ValidationError({f"{channel}_template": [f"Choose the {channel} template."]})
        rendered = render(template, context)
        for address in emails if channel == "email" else phones:
            backend.send(
                Outgoing(
                    channel=channel,
                    to=address,
                    subject=f"[TEST] {rendered.subject}" if channel == "email" else "",
                    html=rendered.html,
                    text=rendered.text,
                    body=rendered.body,
                    from_email=tenant.email_from or settings.DEFAULT_FROM_EMAIL,
                    idempotency_key=f"test-{campaign.pk}-{timezone.now().timestamp()}-{sent}",
                    unsubscribe_url=context["unsubscribe_url"],
                    tenant=tenant.slug,
                )
            )
            sent += 1
    return sent


# ----------------------------------------------------------------------------- audience


def campaign_audience(*, campaign: Campaign) -> dict[str, dict[str, int]]:
    """Who would get it now, per channel: reachable, or not and why (no address, no
    consent, suppressed). Uses the segment's members as of its last refresh; the send
    refreshes the segment first."""
    result: dict[str, dict[str, int]] = {}
    if campaign.segment_id is None:
        return result
    members, profiles = SegmentMembership._meta.db_table, CustomerProfile._meta.db_table
    with connection.cursor() as cursor:
        for channel in campaign.channels:
            cursor.execute(
                f"""
                SELECT count(*) FILTER (WHERE reason = ''),
                       count(*) FILTER (WHERE reason = 'no_address'),
                       count(*) FILTER (WHERE reason = 'no_consent'),
                       count(*) FILTER (WHERE reason = 'suppressed')
                FROM (
                  SELECT CASE {unreachable_sql(channel)} ELSE '' END AS reason
                  FROM "{members}" sm JOIN "{profiles}" p ON p.id = sm.customer_id
                  WHERE sm.tenant_id = %s AND sm.segment_id = %s
                    AND p.status IN ('ACTIVE', 'INACTIVE') AND p.deleted_at IS NULL
                ) r
                """,  # noqa: S608
                [channel, campaign.tenant_id, campaign.segment_id],
            )
            reachable, no_address, no_consent, suppressed = cursor.fetchone()
            result[channel] = {
                "reachable": reachable,
                "no_address": no_address,
                "no_consent": no_consent,
                "suppressed": suppressed,
            }
    return result


# ----------------------------------------------------------------------------- stats


def campaign_stats(*, campaign: Campaign) -> dict[str, Any]:
    """Targeted, sent, delivered, opened, clicked, bounced, unsubscribed, complained (people
    counted once per kind), and the skip reasons."""
    messages = Message.objects.filter(tenant=campaign.tenant, campaign=campaign)
    by_status = dict(
        messages.values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    skipped = dict(
        messages.filter(status=MessageStatus.SKIPPED)
        .values_list("skip_reason")
        .annotate(n=Count("id"))
        .values_list("skip_reason", "n")
    )
    interactions = dict(
        Interaction.objects.filter(tenant=campaign.tenant, campaign=campaign)
        .values_list("kind")
        .annotate(n=Count("message_id", distinct=True))
        .values_list("kind", "n")
    )
    per_variant = list(
        messages.exclude(variant="")
        .values("variant")
        .annotate(
            sent=Count("id", filter=Q(status=MessageStatus.SENT)),
        )
        .order_by("variant")
    )
    return {
        "targeted": sum(by_status.values()),
        "queued": by_status.get(MessageStatus.QUEUED, 0) + by_status.get(MessageStatus.HELD, 0),
        "sent": by_status.get(MessageStatus.SENT, 0),
        "failed": by_status.get(MessageStatus.FAILED, 0),
        "skipped": by_status.get(MessageStatus.SKIPPED, 0),
        "cancelled": by_status.get(MessageStatus.CANCELLED, 0),
        "skip_reasons": skipped,
        "delivered": interactions.get("DELIVERED", 0),
        "opened": interactions.get("OPENED", 0),
        "clicked": interactions.get("CLICKED", 0),
        "bounced": interactions.get("BOUNCED", 0),
        "unsubscribed": interactions.get("UNSUBSCRIBED", 0),
        "complained": interactions.get("COMPLAINED", 0),
        "variants": per_variant,
        # Registered channels' own counts, e.g. {"social": {"published": 2, "failed": 0}}.
        **{
            name: channel.stats(campaign=campaign)
            for name, channel in campaign_channels().items()
            if name in campaign.channels
        },
    }


def campaigns_rates(*, campaigns: list[Campaign]) -> dict[Any, dict[str, Any]]:
    """Sent, opened and clicked people and the open and click rates of a page of campaigns,
    in two grouped queries for the whole page (the campaign list): ``{campaign_id: {...}}``.
    Rates are of messages sent, as in ``campaign_stats``."""
    if not campaigns:
        return {}
    ids = [campaign.pk for campaign in campaigns]
    tenants = {campaign.tenant_id for campaign in campaigns}
    sent = dict(
        Message.objects.filter(
            tenant_id__in=tenants, campaign_id__in=ids, status=MessageStatus.SENT
        )
        .values_list("campaign_id")
        .annotate(n=Count("id"))
        .values_list("campaign_id", "n")
    )
    kinds: dict[Any, dict[str, int]] = {}
    for campaign_id, kind, n in (
        Interaction.objects.filter(
            tenant_id__in=tenants, campaign_id__in=ids, kind__in=("OPENED", "CLICKED")
        )
        .values_list("campaign_id", "kind")
        .annotate(n=Count("message_id", distinct=True))
        .values_list("campaign_id", "kind", "n")
    ):
        kinds.setdefault(campaign_id, {})[kind] = n
    rates = {}
    for campaign_id in ids:
        sent_n = sent.get(campaign_id, 0)
        opened = kinds.get(campaign_id, {}).get("OPENED", 0)
        clicked = kinds.get(campaign_id, {}).get("CLICKED", 0)
        rates[campaign_id] = {
            "sent": sent_n,
            "opened": opened,
            "clicked": clicked,
            "open_rate": opened / sent_n if sent_n else None,
            "click_rate": clicked / sent_n if sent_n else None,
        }
    return rates


CUSTOMER_MESSAGES_SHOWN = 20


def customer_marketing_panel(*, tenant: Tenant, customer: CustomerProfile) -> dict[str, Any]:
    """The customer page's marketing panel: the segments the person is in, and the latest
    messages sent (or skipped) to them with what they did with each. Three queries."""
    segments = list(
        memberships_of(tenant, [customer.pk])
        .order_by("segment__name")
        .values("segment_id", "segment__name", "segment__type", "created_at")
    )
    messages = list(
        Message.objects.filter(tenant=tenant, customer=customer)
        .select_related("campaign", "template")
        .order_by("-id")[:CUSTOMER_MESSAGES_SHOWN]
    )
    interactions: dict[int, list[str]] = {}
    for message_id, kind in (
        Interaction.objects.filter(tenant=tenant, message_id__in=[m.pk for m in messages])
        .order_by("occurred_at", "id")
        .values_list("message_id", "kind")
    ):
        kinds = interactions.setdefault(message_id, [])
        if kind not in kinds:
            kinds.append(kind)
    skip_labels = dict(SkipReason.choices)
    return {
        "template": "admin/marketing/customer_panel.html",
        "segments": segments,
        "messages": [
            {
                "campaign": message.campaign,
                # A journey's message has no campaign: it is named by its template.
                "source": message.campaign.name
                if message.campaign is not None
                else f"Journey: {message.template.name if message.template else 'message'}",
                "channel": message.get_channel_display(),
                "status": message.status,
                "status_label": message.get_status_display(),
                "skip_reason": skip_labels.get(message.skip_reason, message.skip_reason),
                "sent_at": message.sent_at,
                "interactions": interactions.get(message.pk, []),
            }
            for message in messages
        ],
    }


__all__ = [
    "CampaignConflict",
    "campaign_cancel",
    "campaign_create",
    "campaign_delete",
    "campaign_pause",
    "campaign_resume",
    "campaign_schedule",
    "campaign_stats",
    "campaign_update",
    "campaigns_rates",
    "customer_marketing_panel",
    "next_occurrence",
]
