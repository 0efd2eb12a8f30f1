"""Interactions: what recipients did with messages, from the Messaging webhook or the local
backend's tracking URLs. Each is recorded once (unique per tenant, source and event id),
becomes an activity on the customer's timeline, and counts in the campaign's stats.
Unsubscribe, complaint and hard bounce clear the channel's consent and suppress the address
at once; a later "delivered" or "opened" does not undo that.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone

from customers.handlers import metrics_touch
from customers.models import Activity, ConsentRecord, CustomerProfile

from .common import (
    MESSAGE_IDENTITY_MAC_LENGTH,
    UNSUBSCRIBE_SALT,
    ClaimedMessage,
    message_identity,
    unsubscribe_token_message_id,
)
from .models import (
    Campaign,
    Interaction,
    InteractionKind,
    Message,
    MessageStatus,
    MessageTemplate,
    Suppression,
)

TRACK_SALT = "crm.marketing.track"
STOPS: dict[str, str] = {
    InteractionKind.UNSUBSCRIBED: "unsubscribed",
    InteractionKind.COMPLAINED: "complained",
    InteractionKind.BOUNCED: "bounced",
}
TITLES: dict[str, str] = {
    InteractionKind.DELIVERED: "Delivered",
    InteractionKind.OPENED: "Opened",
    InteractionKind.CLICKED: "Clicked a link in",
    InteractionKind.BOUNCED: "Bounced",
    InteractionKind.UNSUBSCRIBED: "Unsubscribed from",
    InteractionKind.COMPLAINED: "Marked as spam",
}


MAX_EVENT_ID_LENGTH = 128


@dataclass(frozen=True)
class Recorded:
    interaction: Interaction | None  # None: a repeat, or a message that was never sent
    stopped: bool = False
    not_sent: bool = False  # the message is not SENT: nothing was recorded or changed


def interaction_record(
    *,
    message: Message,
    kind: str,
    source: str,
    event_id: str,
    occurred_at: datetime,
    metadata: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Recorded:
    """Record one interaction (idempotent) with its activity, consent and suppression.

    Only a SENT message can be interacted with: for any other (never sent, skipped, failed,
    still queued) nothing is recorded and nothing changes. ``metadata`` is what the source
    says about the event (the provider's ``data`` for the webhook): it is kept on the
    interaction, and under ``"data"`` on the activity, so it can never replace the
    activity's own ``campaign_id`` and ``message_id``."""
    if len(event_id) > MAX_EVENT_ID_LENGTH:
        # Cutting would make two different events collide on the unique key.
        raise ValueError(f"event ids have at most {MAX_EVENT_ID_LENGTH} characters")
    if message.status != MessageStatus.SENT:
        return Recorded(None, not_sent=True)
    metadata = metadata or {}
    now = now or timezone.now()
    tenant = message.tenant
    with transaction.atomic():
        try:
            with transaction.atomic():
                interaction = Interaction.objects.create(
                    tenant=tenant,
                    message=message,
                    campaign_id=message.campaign_id,
                    customer_id=message.customer_id,
                    kind=kind,
                    source=source,
                    event_id=event_id,
                    occurred_at=occurred_at,
                    metadata=metadata,
                )
        except IntegrityError:
            return Recorded(None)
        # A journey message has no campaign: it is named by its template.
        if message.campaign_id is not None:
            name = Campaign.objects.only("name").get(pk=message.campaign_id).name
        else:
            name = MessageTemplate.objects.only("name").get(pk=message.template_id).name
        activity_type = f"{message.channel}.{kind.lower()}"
        Activity.objects.bulk_create(
            [
                Activity(
                    tenant=tenant,
                    customer_id=message.customer_id,
                    type=activity_type,
                    category="marketing",
                    title=f"{TITLES[kind]} “{name}”"[:255],
                    metadata={
                        **(
                            {"campaign_id": str(message.campaign_id)}
                            if message.campaign_id is not None
                            else {"journey_step_id": message.journey_step_id}
                        ),
                        "message_id": message.pk,
                        "data": metadata,
                    },
                    source_service=source,
                    source_id=str(message.pk),
                    source_event_id=event_id,
                    occurred_at=occurred_at,
                )
            ],
            ignore_conflicts=True,
        )
        if kind in (InteractionKind.OPENED, InteractionKind.CLICKED):
            metrics_touch(tenant, [(message.customer_id, occurred_at, activity_type)], now=now)
        hard = kind != InteractionKind.BOUNCED or metadata.get("bounce") != "soft"
        stopped = kind in STOPS and hard
        if stopped:
            _stop(message, STOPS[kind], occurred_at, now)
    return Recorded(interaction, stopped)


def _stop(message: Message, reason: str, occurred_at: datetime, now: datetime) -> None:
    """Clear the channel's consent (stamped, so an older opt-in cannot restore it) and
    suppress the address."""
    channel = message.channel
    CustomerProfile.objects.filter(pk=message.customer_id, tenant=message.tenant).update(
        **{
            f"{channel}_opt_in": False,
            f"{channel}_consent_at": max(occurred_at, now),
            f"{channel}_consent_source": reason,
        },
        updated_at=now,
    )
    ConsentRecord.objects.create(
        tenant=message.tenant,
        customer_id=message.customer_id,
        channel=channel,
        opt_in=False,
        source=reason,
        occurred_at=max(occurred_at, now),
        evidence={"message_id": message.pk, "campaign_id": str(message.campaign_id or "")},
    )
    if message.address:
        Suppression.objects.bulk_create(
            [
                Suppression(
                    tenant=message.tenant,
                    channel=channel,
                    address=message.address,
                    reason=reason,
                    source=f"message:{message.pk}",
                )
            ],
            ignore_conflicts=True,
        )


# ----------------------------------------------------------------------------- local tracking


# Open, click and unsubscribe tokens are Django-signed (``django.core.signing``): an
# HMAC-SHA256 keyed by SECRET_KEY under a salt per purpose, checked in constant time, so a
# token cannot be made up, altered, or used for another purpose.


def message_from_token(token: str, salt: str) -> tuple[Message, dict] | None:
    try:
        data = signing.loads(token, salt=salt)
    except signing.BadSignature:
        return None
    message = Message.objects.select_related("tenant").filter(pk=data.get("m")).first()
    return (message, data) if message else None


def open_url(message: Message | ClaimedMessage) -> str:
    token = signing.dumps({"m": message.pk}, salt=TRACK_SALT, compress=True)
    return f"{settings.PUBLIC_BASE_URL}/t/o/{token}.gif"


def click_url(message: Message | ClaimedMessage, url: str) -> str:
    token = signing.dumps({"m": message.pk, "u": url}, salt=TRACK_SALT, compress=True)
    return f"{settings.PUBLIC_BASE_URL}/t/c/{token}"


_HREF = re.compile(r'href="(https?://[^"]+)"')


def track_html(html: str, message: Message | ClaimedMessage, unsubscribe: str) -> str:
    """Links through the click redirect, and an open pixel at the end."""

    def swap(match: re.Match) -> str:
        url = match.group(1).replace("&amp;", "&")
        if url == unsubscribe:
            return match.group(0)
        return f'href="{click_url(message, url)}"'

    pixel = f'<img src="{open_url(message)}" width="1" height="1" alt="">'
    return _HREF.sub(swap, html) + pixel


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- webhook


class WebhookRefused(Exception):
    def __init__(self, status: int, message: str, code: str = "authentication_failed") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


WEBHOOK_TOLERANCE_SECONDS = 300
WEBHOOK_KINDS = {k.lower(): k for k in InteractionKind.values}
# A request's X-CRM-Timestamp: Unix seconds, ASCII digits (int() would take 4,000 digits or
# Arabic-Indic ones, and a huge value overflows the float comparison).
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + digest.hexdigest()


def webhook_verify(*, timestamp: str, signature: str, body: bytes, now: datetime) -> None:
    """HMAC-SHA256 over ``timestamp.body`` with ``MESSAGING_WEBHOOK_SECRET``, within five
    minutes of now. Compares in constant time. Without a secret (production with the local
    backend and no ``MESSAGING_WEBHOOK_SECRET``) the webhook is off and refuses every call."""
    secret = settings.MESSAGING_WEBHOOK_SECRET
    if not secret:
        raise WebhookRefused(401, "The webhook is disabled until MESSAGING_WEBHOOK_SECRET is set.")
    if not timestamp or not signature:
        raise WebhookRefused(
            401, "Missing X-CRM-Timestamp or X-CRM-Signature.", "not_authenticated"
        )
    if not _UNIX_SECONDS.fullmatch(timestamp):
        raise WebhookRefused(401, "Bad timestamp.")
    if abs(now.timestamp() - int(timestamp)) > WEBHOOK_TOLERANCE_SECONDS:
        raise WebhookRefused(401, "Timestamp outside the five-minute window.")
    expected = webhook_signature(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, s.strip()) for s in signature.split(",")):
        raise WebhookRefused(401, "Bad signature.")


_IDENTITY = re.compile(rf"crm-([0-9]{{1,18}})-([0-9a-f]{{{MESSAGE_IDENTITY_MAC_LENGTH}}})")


def messages_by_identity(identities: list[str]) -> dict[str, Message]:
    """The messages these ids name (one query), keyed by id; an id that is malformed, names
    no message, or whose MAC does not verify (constant-time, against ``SECRET_KEY`` and any
    ``SECRET_KEY_FALLBACKS``) is left out. Ids of the older unkeyed form (24 hex characters)
    are refused: they could be computed by anyone."""
    wanted: dict[str, int] = {}
    for identity in identities:
        match = _IDENTITY.fullmatch(identity) if isinstance(identity, str) else None
        if match:
            wanted[identity] = int(match.group(1))
    rows = Message.objects.select_related("tenant").in_bulk(set(wanted.values()))
    secrets = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    found: dict[str, Message] = {}
    for identity, pk in wanted.items():
        message = rows.get(pk)
        if message is not None and any(
            hmac.compare_digest(message_identity(message, secret=secret), identity)
            for secret in secrets
        ):
            found[identity] = message
    return found


def message_by_identity(identity: str) -> Message | None:
    """Our message ids look like ``crm-<pk>-<mac>``; the keyed MAC proves the pk."""
    return messages_by_identity([identity]).get(identity)


def unsubscribe_message(token: str) -> Message | None:
    """The message an unsubscribe link names: a token of the current form (``<id>-<mac>``),
    or one of the older signed form that mail sent before still carries."""
    message_id = unsubscribe_token_message_id(token)
    if message_id is not None:
        return Message.objects.select_related("tenant").filter(pk=message_id).first()
    found = message_from_token(token, UNSUBSCRIBE_SALT)
    return found[0] if found else None


__all__ = [
    "WebhookRefused",
    "click_url",
    "interaction_record",
    "message_by_identity",
    "messages_by_identity",
    "open_url",
    "track_html",
    "webhook_signature",
    "webhook_verify",
]
