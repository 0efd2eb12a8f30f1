"""What several marketing modules share, in one leaf module: it imports only models, so
every other marketing module can import it at module level (campaigns, sending, delivery,
interactions and the admin all build on these, never on each other's private parts).

- the channels and the profile column that addresses each of them;
- a claimed message row as the sender reads it (``ClaimedMessage``);
- a message's stable identity (Message-ID / idempotency key) and its unsubscribe token;
- the send attempt limit;
- why a profile cannot be reached on a channel (SQL shared by the snapshot and the
  audience count);
- a campaign's timezone and next due time.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from cronsim import CronSim
from django.conf import settings

from crm.models import Tenant
from customers.models import CHANNEL_ADDRESS_COLUMN, CHANNELS

from .models import Campaign, CampaignType, Message, Suppression

__all__ = [
    "ADDRESS_COLUMN",
    "CHANNELS",
    "MAX_SEND_ATTEMPTS",
    "MESSAGE_IDENTITY_MAC_LENGTH",
    "MESSAGE_IDENTITY_SALT",
    "UNSUBSCRIBE_SALT",
    "ClaimedMessage",
    "campaign_tz",
    "message_identity",
    "next_occurrence",
    "skip_reason_params",
    "skip_reason_sql",
    "unreachable_sql",
    "unsubscribe_token",
    "unsubscribe_token_message_id",
]

ADDRESS_COLUMN = CHANNEL_ADDRESS_COLUMN
# A message is tried this many times; after the last failure it is FAILED.
MAX_SEND_ATTEMPTS = 3
UNSUBSCRIBE_SALT = "crm.marketing.unsubscribe"
MESSAGE_IDENTITY_SALT = "crm.marketing.message-identity"
# 32 hex characters (128 bits) of the MAC; the unkeyed ids before had 24, so an old id never
# matches the pattern and is refused as an unknown message.
MESSAGE_IDENTITY_MAC_LENGTH = 32


@dataclass(slots=True)
class ClaimedMessage:
    """A campaign message row claimed for sending, as the sender reads it: what rendering,
    the consent check, the identity and the marks need, not a model instance (a claim takes
    500 rows, and a model instance with its timestamps parsed cost more than rendering)."""

    pk: int
    tenant_id: UUID
    customer_id: UUID
    channel: str
    address: str
    variant: str
    attempts: int
    # Journey messages carry their own template; a campaign's rows never do.
    template: Any = None


@functools.lru_cache(maxsize=32)
def _derived_key(salt: str, secret: str) -> bytes:
    # Derived as ``django.utils.crypto.salted_hmac`` derives its key (SHA-256 of salt and
    # secret), once per salt and secret rather than once per message.
    return hashlib.sha256((salt + secret).encode()).digest()


@functools.lru_cache(maxsize=32)
def _mac_states(salt: str, secret: str) -> tuple[Any, Any]:
    # HMAC-SHA256 (RFC 2104) under the derived key: the inner and outer hashes after their
    # first block (the key padded to 64 bytes, XOR 0x36 and 0x5C), computed once. Each MAC
    # copies them (never updates these): 1.1-2.1 us a MAC against 2.6-5.4 us for
    # ``hmac.digest``, which sets OpenSSL's HMAC up on every call, timed back to back on the
    # shared machine; a sender makes two MACs for every message.
    block = _derived_key(salt, secret).ljust(64, b"\0")
    return (
        hashlib.sha256(bytes(byte ^ 0x36 for byte in block)),
        hashlib.sha256(bytes(byte ^ 0x5C for byte in block)),
    )


def keyed_mac(salt: str, value: str, *, secret: str | None = None) -> str:
    """HMAC-SHA256 of ``value`` keyed by ``SECRET_KEY`` (or ``secret``) under ``salt``, in
    hex: the same digest as ``salted_hmac(salt, value, secret, algorithm="sha256")``."""
    inner_state, outer_state = _mac_states(salt, settings.SECRET_KEY if secret is None else secret)
    inner = inner_state.copy()
    inner.update(value.encode())
    outer = outer_state.copy()
    outer.update(inner.digest())
    return outer.hexdigest()


def message_identity(message: Message | ClaimedMessage, *, secret: str | None = None) -> str:
    """The stable Message-ID / idempotency key of a message row: ``crm-<pk>-<mac>``, where the
    MAC is an HMAC-SHA256 of the tenant and row id keyed by ``SECRET_KEY`` (under its own
    salt), so nobody without the key can make up the id of a message (webhook events name
    messages by this id). ``secret``: verify against an older key (``SECRET_KEY_FALLBACKS``).
    """
    mac = keyed_mac(MESSAGE_IDENTITY_SALT, f"{message.tenant_id}:{message.pk}", secret=secret)
    return f"crm-{message.pk}-{mac[:MESSAGE_IDENTITY_MAC_LENGTH]}"


# ``<message id>-<32 hex characters of a keyed MAC>``: short, URL-safe, and cheap to make for
# every message of a send. Tokens of the older form (``django.core.signing``) in mail already
# delivered are still honoured (``marketing.interactions.unsubscribe_message``).
_UNSUBSCRIBE_TOKEN = re.compile(r"([0-9]{1,18})-([0-9a-f]{32})")


def unsubscribe_token(message_id: int, *, secret: str | None = None) -> str:
    mac = keyed_mac(UNSUBSCRIBE_SALT, str(message_id), secret=secret)
    return f"{message_id}-{mac[:32]}"


def unsubscribe_token_message_id(token: str) -> int | None:
    """The message id an unsubscribe token of the current form names, when its MAC verifies
    (constant time, against ``SECRET_KEY`` and each of ``SECRET_KEY_FALLBACKS``); else None."""
    match = _UNSUBSCRIBE_TOKEN.fullmatch(token) if isinstance(token, str) else None
    if match is None:
        return None
    message_id = int(match.group(1))
    for secret in (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS):
        if hmac.compare_digest(unsubscribe_token(message_id, secret=secret), token):
            return message_id
    return None


def unreachable_sql(channel: str) -> str:
    """The ``WHEN`` clauses that name why profile ``p`` cannot get ``channel`` now: no
    address, no consent, suppressed (one parameter: the channel). Shared by the snapshot and
    the audience the admin shows before scheduling."""
    column = ADDRESS_COLUMN[channel]
    return f"""
        WHEN COALESCE(p.{column}, '') = '' THEN 'no_address'
        WHEN NOT p.{channel}_opt_in THEN 'no_consent'
        WHEN EXISTS (SELECT 1 FROM "{Suppression._meta.db_table}" s
                     WHERE s.tenant_id = p.tenant_id
                     AND s.channel = %s AND s.address = p.{column}) THEN 'suppressed'
    """  # noqa: S608


def skip_reason_sql(channel: str) -> str:
    """The ``CASE`` naming why profile ``p`` gets no message on ``channel`` now, or '': it
    cannot be reached (``unreachable_sql``), or the tenant's frequency cap is full (messages
    SENT to the person in the window). Campaign snapshots and journey sends share it; its
    parameters come from ``skip_reason_params``."""
    return f"""
        CASE
          {unreachable_sql(channel)}
          WHEN %s > 0 AND (
            SELECT count(*) FROM "{Message._meta.db_table}" m WHERE m.tenant_id = p.tenant_id
              AND m.customer_id = p.id AND m.status = 'SENT'
              AND m.sent_at > %s::timestamptz - make_interval(days => %s)) >= %s
            THEN 'frequency_cap'
          ELSE ''
        END
    """  # noqa: S608


def skip_reason_params(tenant: Tenant, channel: str, now: datetime) -> list[Any]:
    """The parameters of ``skip_reason_sql``, in order (the window ends at ``now``)."""
    cap = tenant.frequency_cap if tenant.frequency_window_days else 0
    return [channel, cap, now, tenant.frequency_window_days, tenant.frequency_cap]


def campaign_tz(campaign: Campaign) -> ZoneInfo:
    return ZoneInfo(campaign.timezone or campaign.tenant.timezone)


def next_occurrence(campaign: Campaign, after: datetime) -> datetime | None:
    """The next due time after ``after``: the one-time ``scheduled_at``, or the cron's next
    time in the campaign's timezone (DST-aware: 09:00 stays 09:00 local)."""
    if campaign.type == CampaignType.ONE_TIME:
        return campaign.scheduled_at
    local = after.astimezone(campaign_tz(campaign))
    return next(iter(CronSim(campaign.cron, local))).astimezone(ZoneInfo("UTC"))
