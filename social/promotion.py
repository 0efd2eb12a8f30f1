"""Competition promotion: from TeeTime's competition events to an announcement campaign,
social posts and reminders.

``teetime.competition.published`` at a club whose ``ClubSocialSettings.auto_promote`` is on
(or a staff "promote" by hand) creates **one** ``Promotion`` per (tenant, source type,
source id): the unique key makes a repeated or concurrent event find the existing row and
create nothing more. With it, in the same transaction:

- the announcement campaign (email and/or SMS, the club's settings' channels) to the
  settings' segment or, when none, the club's members segment ("Members of <club>",
  created once), with the settings' templates or, when none, templates written for this
  competition; scheduled at the announcement time (now);
- one social post on the club's ACTIVE connections that can take it (Instagram needs an
  image, so a text-only announcement skips it), scheduled at the announcement time;
- reminders 7, 3 and 1 days before the start, at the settings' send hour on that local day
  in the club's timezone, each a campaign to a segment "not entered yet" (the audience
  segment minus people with a ``teetime.competition.entered`` activity for this
  competition), refreshed when the reminder's run starts, so people who enter in the
  meantime are left out. Reminders whose time has passed are not created.

``teetime.competition.updated`` with a new start moves the reminders that have not gone
(a campaign still SCHEDULED), creates ones that now lie in the future and cancels ones that
now lie in the past. ``teetime.competition.cancelled`` cancels the pending reminders, the
announcement if it has not gone, and the posts not yet published.

Events reach ``on_competition_events`` (an event subscriber, registered in ``apps.py``),
which only queues ``social.competition_event`` per event; the task does the work.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from crm.models import Club, Tenant
from crm.registry import ProcessedEvent
from crm.tasks import tenant_task
from marketing.campaigns import campaign_cancel, campaign_create, campaign_schedule, campaign_update
from marketing.models import (
    Campaign,
    CampaignStatus,
    CampaignType,
    MessageTemplate,
    Segment,
    SegmentType,
)
from marketing.segments import segment_create, segment_update
from marketing.templating import template_validate

from .models import (
    ClubSocialSettings,
    Connection,
    ConnectionStatus,
    Post,
    Promotion,
    PromotionReminder,
    PromotionStatus,
    Publication,
    PublicationStatus,
    ReminderStatus,
)
from .posts import (
    PAST_TOLERANCE,
    post_create,
    post_schedule,
    post_update,
    post_validate_for,
    posts_cancel_for_promotion,
)

logger = logging.getLogger(__name__)

COMPETITION = "COMPETITION"
REMINDER_DAYS = (7, 3, 1)
CAMPAIGN_CHANNELS = ("email", "sms")
PUBLISHED = "teetime.competition.published"
UPDATED = "teetime.competition.updated"
CANCELLED = "teetime.competition.cancelled"
ENTERED = "teetime.competition.entered"
HANDLED = (PUBLISHED, UPDATED, CANCELLED)
DEFAULT_SOCIAL_TEXT = "Entries are open: {name}, {date}. {url}"
GONE = (CampaignStatus.SENDING, CampaignStatus.COMPLETED)
OPEN = (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED)
# Publications that have started (or finished) going out: their post is final.
STARTED = (
    PublicationStatus.PUBLISHING,
    PublicationStatus.PUBLISHED,
    PublicationStatus.FAILED,
    PublicationStatus.NEEDS_REVIEW,
)
EDIT_FIELDS = (
    "announce_at",
    "channels",
    "segment",
    "email_template",
    "sms_template",
    "social_text",
    "send_hour",
    "reminder_days",
)
CAMPAIGN_EDIT_FIELDS = ("channels", "segment", "email_template", "sms_template")


class PromotionConflict(ValidationError):
    """An edit of something that has already gone out (409)."""

    status_code = 409


def on_competition_events(*, tenant: Tenant, events: Sequence[ProcessedEvent]) -> None:
    """Event subscriber: queue the handling of each competition event (quick, as
    subscribers must be)."""
    for event in events:
        if event.type in HANDLED:
            tenant_task("social.competition_event").enqueue(
                tenant, type=event.type, payload=event.payload
            )


def competition_event_handle(
    *, tenant: Tenant, type: str, payload: dict[str, Any], now: datetime | None = None
) -> Promotion | None:
    now = now or timezone.now()
    if type == PUBLISHED:
        return promotion_create(tenant=tenant, payload=payload, now=now)
    promotion = (
        Promotion.objects.for_tenant(tenant)
        .filter(source_type=COMPETITION, source_id=str(payload.get("competitionId", "")))
        .first()
    )
    if promotion is None:
        return None
    if type == UPDATED:
        return promotion_update(promotion=promotion, payload=payload, now=now)
    if type == CANCELLED:
        return promotion_cancel(promotion=promotion, now=now)
    return None


# --- settings, segments, templates -----------------------------------------------------------


def club_settings(*, tenant: Tenant, club: Club) -> ClubSocialSettings:
    found, _ = ClubSocialSettings.objects.get_or_create(tenant=tenant, club=club)
    return found


def promotion_settings(*, promotion: Promotion) -> ClubSocialSettings:
    """The club's settings with this promotion's own edits applied (an unsaved copy)."""
    base = club_settings(tenant=promotion.tenant, club=promotion.club)
    return ClubSocialSettings(
        tenant=promotion.tenant,
        club=promotion.club,
        auto_promote=base.auto_promote,
        channels=base.channels if promotion.channels is None else promotion.channels,
        segment_id=promotion.segment_id or base.segment_id,
        email_template_id=promotion.email_template_id or base.email_template_id,
        sms_template_id=promotion.sms_template_id or base.sms_template_id,
        social_text=promotion.social_text or base.social_text,
        send_hour=base.send_hour if promotion.send_hour is None else promotion.send_hour,
        notify_on_cancel=base.notify_on_cancel,
    )


def _reminder_days(promotion: Promotion) -> tuple[int, ...]:
    if promotion.reminder_days is None:
        return REMINDER_DAYS
    return tuple(sorted({int(d) for d in promotion.reminder_days}, reverse=True))


def _club_of(tenant: Tenant, payload: dict[str, Any]) -> Club | None:
    clubs = Club.objects.for_tenant(tenant)
    club_id = payload.get("clubId")
    if club_id:
        try:
            return clubs.filter(pk=club_id).first()
        except ValidationError:
            return None  # not a UUID: no such club
    # A tenant with one club needs no clubId.
    only = list(clubs[:2])
    return only[0] if len(only) == 1 else None


def club_members_segment(*, tenant: Tenant, club: Club) -> Segment:
    """The club's members (home club, lifecycle MEMBER), created once."""
    name = f"Members of {club.name}"[:120]
    existing = Segment.objects.for_tenant(tenant).filter(club=club, name=name).first()
    if existing:
        return existing
    return segment_create(
        tenant=tenant,
        data={
            "name": name,
            "club": club,
            "type": SegmentType.DYNAMIC,
            "criteria": {
                "combinator": "AND",
                "rules": [
                    {"field": "home_club", "operator": "eq", "value": str(club.pk)},
                    {"field": "lifecycle_stage", "operator": "eq", "value": "MEMBER"},
                ],
            },
        },
    )


def _not_entered_segment(promotion: Promotion, audience: Segment) -> Segment:
    """The audience minus the entrants; one per promotion (an edited audience updates it)."""
    name = f"Not entered yet: {promotion.name}"[:120]
    data = _not_entered_data(promotion, audience, name)
    existing = Segment.objects.for_tenant(promotion.tenant).filter(name=name).first()
    if existing is not None:
        return segment_update(segment=existing, data=data)
    return segment_create(tenant=promotion.tenant, data=data)


def _not_entered_data(promotion: Promotion, audience: Segment, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "club": promotion.club,
        "type": SegmentType.DYNAMIC,
        "criteria": {
            "combinator": "AND",
            "rules": [
                {"field": "segment", "operator": "eq", "value": str(audience.pk)},
                {
                    "field": "activity_count",
                    "operator": "eq",
                    "value": 0,
                    "params": {"days": 3650, "type": ENTERED, "source_id": promotion.source_id},
                },
            ],
        },
    }


def _plain(text: str) -> str:
    # Competition names come from another service: never template syntax.
    return re.sub(r"[{}%]", "", text)


def _template(promotion: Promotion, channel: str, what: str, line: str) -> MessageTemplate:
    parts = {"subject": "", "html_body": "", "text_body": "", "body": ""}
    if channel == "email":
        parts["subject"] = _plain(f"{what}: {promotion.name}")[:200]
        parts["text_body"] = "Hi {{ first_name }},\n\n" + _plain(line)
    else:
        parts["body"] = _plain(line)[:140]
    template_validate(channel=channel, **parts)
    return MessageTemplate.objects.create(
        tenant=promotion.tenant,
        club=promotion.club,
        name=_plain(f"{promotion.name}: {what} ({channel})")[:120],
        channel=channel,
        **parts,
    )


def _local_date(promotion: Promotion) -> str:
    zone = ZoneInfo(promotion.club.timezone)
    return promotion.starts_at.astimezone(zone).strftime("%d %B %Y, %H:%M")


def _campaign_data(
    promotion: Promotion,
    settings: ClubSocialSettings,
    *,
    what: str,
    line: str,
    segment: Segment,
    when: datetime,
    current: Campaign | None = None,
) -> dict[str, Any] | None:
    """A promotion campaign's fields, or None when no campaign channel is on. A template
    neither chosen in the settings nor already on ``current`` is written for it."""
    channels = [c for c in CAMPAIGN_CHANNELS if c in settings.channels]
    if not channels:
        return None
    data: dict[str, Any] = {
        "name": f"{promotion.name}: {what}"[:150],
        "club": promotion.club,
        "type": CampaignType.ONE_TIME,
        "segment": segment,
        "channels": channels,
        "scheduled_at": when,
    }
    for channel in channels:
        chosen = getattr(settings, f"{channel}_template") or (
            getattr(current, f"{channel}_template") if current is not None else None
        )
        data[f"{channel}_template"] = chosen or _template(promotion, channel, what, line)
    return data


def _campaign(
    promotion: Promotion,
    settings: ClubSocialSettings,
    *,
    what: str,
    line: str,
    segment: Segment,
    when: datetime,
) -> Campaign | None:
    data = _campaign_data(promotion, settings, what=what, line=line, segment=segment, when=when)
    if data is None:
        return None
    campaign = campaign_create(tenant=promotion.tenant, data=data, actor="promotion")
    return campaign_schedule(campaign=campaign)


def _retarget(campaign: Campaign, data: dict[str, Any] | None) -> None:
    """Bring a campaign that has not gone in line with an edit (no channel left: cancel)."""
    if data is None:
        campaign_cancel(campaign=campaign)
    else:
        campaign_update(campaign=campaign, data=data)


# --- reminders ------------------------------------------------------------------------------


def reminder_time(*, starts_at: datetime, days_before: int, tz: str, hour: int) -> datetime:
    """``hour`` o'clock on the local day ``days_before`` days before the start's local day."""
    zone = ZoneInfo(tz)
    day = starts_at.astimezone(zone).date() - timedelta(days=days_before)
    return datetime.combine(day, time(hour), tzinfo=zone)


def _sync_reminders(
    promotion: Promotion, settings: ClubSocialSettings, audience: Segment | None, now: datetime
) -> None:
    """Make the pending reminders match the start: create, move or cancel."""
    existing = {
        r.days_before: r
        for r in PromotionReminder.objects.select_for_update(of=("self",))
        .filter(tenant=promotion.tenant, promotion=promotion)
        .select_related("campaign")
    }
    not_entered: Segment | None = None
    wanted = _reminder_days(promotion)
    for days, reminder in existing.items():
        if days not in wanted and reminder.status == ReminderStatus.PENDING:
            _cancel_reminder(reminder)  # staff took this day out (a sent one stays)
    for days in wanted:
        send_at = reminder_time(
            starts_at=promotion.starts_at,
            days_before=days,
            tz=promotion.club.timezone,
            hour=settings.send_hour,
        )
        reminder = existing.get(days)
        if reminder is not None and reminder.status != ReminderStatus.PENDING:
            continue
        if reminder is not None and reminder.campaign and reminder.campaign.status in GONE:
            reminder.status = ReminderStatus.SENT
            reminder.save(update_fields=["status", "updated_at"])
            continue
        if (
            reminder is not None
            and reminder.campaign
            and (reminder.campaign.status not in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED))
        ):
            # Staff paused or cancelled its campaign by hand: leave their decision alone.
            if reminder.campaign.status == CampaignStatus.CANCELLED:
                reminder.status = ReminderStatus.CANCELLED
                reminder.save(update_fields=["status", "updated_at"])
            continue
        if send_at <= now:
            if reminder is not None:
                _cancel_reminder(reminder)
            continue
        if reminder is not None:
            if reminder.send_at != send_at:
                reminder.send_at = send_at
                reminder.save(update_fields=["send_at", "updated_at"])
                if reminder.campaign:
                    campaign_update(campaign=reminder.campaign, data={"scheduled_at": send_at})
            continue
        if audience is None or not set(CAMPAIGN_CHANNELS) & set(settings.channels):
            continue  # nobody to remind, or no channel to remind them on
        if not_entered is None:
            not_entered = _not_entered_segment(promotion, audience)
        campaign = _campaign(
            promotion,
            settings,
            what=f"reminder {days}d",
            line=_reminder_line(promotion, days),
            segment=not_entered,
            when=send_at,
        )
        PromotionReminder.objects.create(
            tenant=promotion.tenant,
            promotion=promotion,
            days_before=days,
            send_at=send_at,
            campaign=campaign,
        )


def _reminder_line(promotion: Promotion, days: int) -> str:
    return (
        f"{promotion.name} starts in {days} day{'s' if days > 1 else ''} "
        f"({_local_date(promotion)}). {promotion.url}"
    ).strip()


def _announcement_line(promotion: Promotion) -> str:
    return f"{promotion.name} on {_local_date(promotion)}. {promotion.url}".strip()


def _cancel_reminder(reminder: PromotionReminder) -> None:
    if reminder.campaign and reminder.campaign.status in (
        CampaignStatus.DRAFT,
        CampaignStatus.SCHEDULED,
    ):
        campaign_cancel(campaign=reminder.campaign)
    reminder.status = ReminderStatus.CANCELLED
    reminder.save(update_fields=["status", "updated_at"])


# --- promotion services ------------------------------------------------------------------------


def _starts_at(payload: dict[str, Any]) -> datetime | None:
    raw = payload.get("startsAt")
    if isinstance(raw, datetime):
        return raw
    parsed = parse_datetime(str(raw or ""))
    if parsed is None:
        return None
    return parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=UTC)


def promotion_create(
    *,
    tenant: Tenant,
    payload: dict[str, Any],
    now: datetime | None = None,
    by_hand: bool = False,
) -> Promotion | None:
    """Promote a published competition (``by_hand``: even if the club does not
    auto-promote). Returns the promotion (the existing one for a repeated event) or None
    when the club does not promote or cannot be told."""
    now = now or timezone.now()
    club = _club_of(tenant, payload)
    starts_at = _starts_at(payload)
    source_id = str(payload.get("competitionId") or "")[:64]
    if club is None or starts_at is None or not source_id:
        logger.info("competition %s not promoted: no club or start", source_id)
        return None
    settings = club_settings(tenant=tenant, club=club)
    if not (settings.auto_promote or by_hand):
        return None
    with transaction.atomic():
        promotion, created = Promotion.objects.get_or_create(
            tenant=tenant,
            source_type=COMPETITION,
            source_id=source_id,
            defaults={
                "club": club,
                "name": str(payload.get("name") or "Competition")[:200],
                "starts_at": starts_at,
                "url": str(payload.get("url") or "")[:500],
                "announce_at": now,
            },
        )
        if not created:
            return promotion
        audience = settings.segment or club_members_segment(tenant=tenant, club=club)
        promotion.campaign = _campaign(
            promotion,
            settings,
            what="announcement",
            line=_announcement_line(promotion),
            segment=audience,
            when=now,
        )
        promotion.save(update_fields=["campaign", "updated_at"])
        if "social" in settings.channels:
            _post(promotion, settings, now)
        _sync_reminders(promotion, settings, audience, now)
    return promotion


def _social_text(promotion: Promotion, settings: ClubSocialSettings) -> str:
    template = settings.social_text or DEFAULT_SOCIAL_TEXT
    return (
        template.replace("{name}", promotion.name)
        .replace("{date}", _local_date(promotion))
        .replace("{url}", promotion.url)
        .strip()
    )


def _post(promotion: Promotion, settings: ClubSocialSettings, now: datetime) -> Post | None:
    text = _social_text(promotion, settings)
    draft = Post(content=text, media_urls=[], link="", hashtags=[])
    targets = [
        c.pk
        for c in Connection.objects.for_tenant(promotion.tenant).filter(
            club=promotion.club, status=ConnectionStatus.ACTIVE
        )
        if not post_validate_for(draft, c.platform)
    ]
    if not targets:
        return None
    post = post_create(
        tenant=promotion.tenant,
        club=promotion.club,
        data={"content": text},
        connection_ids=targets,
        actor="promotion",
        promotion=promotion,
    )
    post_schedule(post=post, scheduled_at=promotion.announce_at, now=now)
    return post


def promotion_update(
    *, promotion: Promotion, payload: dict[str, Any], now: datetime | None = None
) -> Promotion:
    """The competition changed: a new start moves the reminders that have not gone."""
    now = now or timezone.now()
    with transaction.atomic():
        promotion = (
            Promotion.objects.select_for_update(of=("self",))
            .select_related("club")
            .get(pk=promotion.pk)
        )
        if promotion.status != PromotionStatus.ACTIVE:
            return promotion
        starts_at = _starts_at(payload) if payload.get("startsAt") else None
        if payload.get("name"):
            promotion.name = str(payload["name"])[:200]
        if payload.get("url"):
            promotion.url = str(payload["url"])[:500]
        if starts_at is not None:
            promotion.starts_at = starts_at
        promotion.save()
        settings = promotion_settings(promotion=promotion)
        audience = settings.segment or club_members_segment(
            tenant=promotion.tenant, club=promotion.club
        )
        _sync_reminders(promotion, settings, audience, now)
    return promotion


def promotion_cancel(*, promotion: Promotion, now: datetime | None = None) -> Promotion:
    """The competition is off: cancel what has not gone (reminders, the announcement if
    still scheduled, unpublished posts)."""
    now = now or timezone.now()
    with transaction.atomic():
        promotion = (
            Promotion.objects.select_for_update(of=("self",))
            .select_related("campaign", "club")
            .get(pk=promotion.pk)
        )
        if promotion.status == PromotionStatus.CANCELLED:
            return promotion
        told = promotion.campaign is not None and promotion.campaign.status in GONE
        for reminder in (
            PromotionReminder.objects.select_for_update(of=("self",))
            .filter(tenant=promotion.tenant, promotion=promotion, status=ReminderStatus.PENDING)
            .select_related("campaign")
        ):
            if reminder.campaign and reminder.campaign.status in GONE:
                reminder.status = ReminderStatus.SENT
                reminder.save(update_fields=["status", "updated_at"])
            else:
                _cancel_reminder(reminder)
        told = (
            told
            or PromotionReminder.objects.filter(
                tenant=promotion.tenant, promotion=promotion, status=ReminderStatus.SENT
            ).exists()
        )
        if promotion.campaign and promotion.campaign.status in (
            CampaignStatus.DRAFT,
            CampaignStatus.SCHEDULED,
        ):
            campaign_cancel(campaign=promotion.campaign)
        posts_cancel_for_promotion(promotion=promotion, now=now)
        settings = promotion_settings(promotion=promotion)
        if settings.notify_on_cancel and told:
            # Only people who were told about it hear it is off; nothing went: no notice.
            audience = settings.segment or club_members_segment(
                tenant=promotion.tenant, club=promotion.club
            )
            promotion.cancel_campaign = _campaign(
                promotion,
                settings,
                what="cancelled",
                line=f"{promotion.name} on {_local_date(promotion)} is cancelled.",
                segment=audience,
                when=now,
            )
        promotion.status = PromotionStatus.CANCELLED
        promotion.save(update_fields=["status", "cancel_campaign", "updated_at"])
    return promotion


def promotion_edit(
    *, promotion: Promotion, data: dict[str, Any], now: datetime | None = None
) -> Promotion:
    """Staff change a promotion before it goes: announcement time, channels, audience,
    templates, post text, send hour, reminder days. What has not gone follows the edit
    (the announcement campaign, the pending reminders' campaigns and times, the unpublished
    posts); an edit of a part that has gone out is refused (``PromotionConflict``, 409)
    and changes nothing. ``data`` holds only the fields to change (validated already)."""
    now = now or timezone.now()
    data = {k: v for k, v in data.items() if k in EDIT_FIELDS}
    with transaction.atomic():
        promotion = (
            Promotion.objects.select_for_update(of=("self",))
            .select_related("club", "campaign")
            .get(pk=promotion.pk)
        )
        if promotion.status != PromotionStatus.ACTIVE:
            raise PromotionConflict({"status": "A cancelled promotion cannot be changed."})
        reminders = list(
            PromotionReminder.objects.select_for_update(of=("self",))
            .filter(tenant=promotion.tenant, promotion=promotion)
            .select_related("campaign")
        )
        sent = {
            r.days_before
            for r in reminders
            if r.status == ReminderStatus.SENT or (r.campaign and r.campaign.status in GONE)
        }
        pending = [
            r for r in reminders if r.status == ReminderStatus.PENDING and r.days_before not in sent
        ]
        announced = promotion.campaign is not None and promotion.campaign.status in GONE
        posted = (
            Publication.objects.filter(tenant=promotion.tenant, post__promotion=promotion)
            .filter(status__in=STARTED)
            .exists()
        )
        changed = {k: v for k, v in data.items() if getattr(promotion, k) != v}
        errors: dict[str, str] = {}
        if "announce_at" in changed and (announced or posted):
            errors["announce_at"] = "The announcement has gone out."
        if "social_text" in changed and posted:
            errors["social_text"] = "The post has been published."
        if "reminder_days" in changed and sent - set(changed["reminder_days"]):
            gone = ", ".join(str(d) for d in sorted(sent - set(changed["reminder_days"])))
            errors["reminder_days"] = f"Reminders already sent cannot be taken out: {gone}."
        if announced and not pending:
            for field in CAMPAIGN_EDIT_FIELDS:
                if field in changed:
                    errors[field] = "The announcement and the reminders have gone out."
        if errors:
            raise PromotionConflict(errors)
        if "announce_at" in changed and changed["announce_at"] < now - PAST_TOLERANCE:
            raise ValidationError({"announce_at": "This time has passed."})
        before = promotion_settings(promotion=promotion)
        for key, value in changed.items():
            setattr(promotion, key, value)
        promotion.save()
        settings = promotion_settings(promotion=promotion)
        audience = settings.segment or club_members_segment(
            tenant=promotion.tenant, club=promotion.club
        )
        retarget = any(f in changed for f in CAMPAIGN_EDIT_FIELDS)
        if not announced and (retarget or "announce_at" in changed):
            _edit_announcement(promotion, settings, audience)
        if retarget:
            # A new audience needs a new "not entered yet" segment for the reminders.
            not_entered = (
                _not_entered_segment(promotion, audience)
                if before.segment_id != settings.segment_id
                else None
            )
            for reminder in pending:
                if reminder.campaign and reminder.campaign.status in OPEN:
                    data_ = _campaign_data(
                        promotion,
                        settings,
                        what=f"reminder {reminder.days_before}d",
                        line=_reminder_line(promotion, reminder.days_before),
                        segment=not_entered or reminder.campaign.segment,
                        when=reminder.send_at,
                        current=reminder.campaign,
                    )
                    if data_ is None:
                        _cancel_reminder(reminder)
                    else:
                        _retarget(reminder.campaign, data_)
        _edit_posts(promotion, settings, before, changed, now)
        _sync_reminders(promotion, settings, audience, now)
    return promotion


def _edit_announcement(
    promotion: Promotion, settings: ClubSocialSettings, audience: Segment
) -> None:
    current = (
        promotion.campaign if promotion.campaign and promotion.campaign.status in OPEN else None
    )
    data = _campaign_data(
        promotion,
        settings,
        what="announcement",
        line=_announcement_line(promotion),
        segment=audience,
        when=promotion.announce_at,
        current=current,
    )
    if current is not None:
        _retarget(current, data)
    elif data is not None:
        campaign = campaign_create(tenant=promotion.tenant, data=data, actor="promotion")
        promotion.campaign = campaign_schedule(campaign=campaign)
        promotion.save(update_fields=["campaign", "updated_at"])


def _edit_posts(
    promotion: Promotion,
    settings: ClubSocialSettings,
    before: ClubSocialSettings,
    changed: dict[str, Any],
    now: datetime,
) -> None:
    """Unpublished posts follow the edit: social off cancels them, on creates one, a new
    text or announcement time is applied."""
    live = [
        post
        for post in Post.objects.filter(tenant=promotion.tenant, promotion=promotion)
        if Publication.objects.filter(
            tenant=promotion.tenant,
            post=post,
            status__in=(PublicationStatus.DRAFT, PublicationStatus.SCHEDULED),
        ).exists()
    ]
    if "social" not in settings.channels:
        if "social" in before.channels:
            posts_cancel_for_promotion(promotion=promotion, now=now)
        return
    if not live:
        if "social" not in before.channels or "social_text" in changed:
            _post(promotion, settings, now)
        return
    for post in live:
        if "social_text" in changed:
            post_update(post=post, data={"content": _social_text(promotion, settings)})
        if "announce_at" in changed:
            post_schedule(post=post, scheduled_at=max(promotion.announce_at, now), now=now)


__all__ = [
    "PromotionConflict",
    "club_members_segment",
    "club_settings",
    "competition_event_handle",
    "on_competition_events",
    "promotion_cancel",
    "promotion_create",
    "promotion_edit",
    "promotion_settings",
    "promotion_update",
    "reminder_time",
]
