"""The staff audit trail: one service, ``audit_record``, called from the services, admin
screens and API views that read or change personal data or access (not from signals, so
the actor and the request's address are known). Rows are append-only (``AuditEvent``).

Actions recorded (``AuditAction``): a customer's page viewed, a subject-access export, an
erasure, a merge, a profile's consent or contact details changed, an API key issued or
revoked, a social account connected, an import run started.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db import models
from django.http import HttpRequest

from .models import AuditEvent, Tenant


class AuditAction(models.TextChoices):
    CUSTOMER_VIEWED = "customer.viewed", "Viewed a customer's page"
    CUSTOMER_EXPORTED = "customer.exported", "Exported a customer's data"
    CUSTOMER_ERASED = "customer.erased", "Erased a customer"
    CUSTOMER_MERGED = "customer.merged", "Merged two customers"
    CUSTOMER_CHANGED = "customer.changed", "Changed a customer's consent or contact details"
    API_KEY_ISSUED = "api_key.issued", "Issued an API key"
    API_KEY_REVOKED = "api_key.revoked", "Revoked an API key"
    SOCIAL_CONNECTED = "social.connected", "Connected a social account"
    IMPORT_STARTED = "import.started", "Ran an import"


def _plain(value: Any) -> Any:
    """A JSON-safe form of a field value (dates as ISO strings, decimals and UUIDs as text)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, models.Model):
        return str(value.pk)
    return value


def field_changes(
    *, before: Mapping[str, Any], after: Mapping[str, Any], fields: Iterable[str] | None = None
) -> dict[str, dict[str, Any]]:
    """``{"field": {"before": ..., "after": ...}}`` for the fields whose value differs."""
    names = fields if fields is not None else sorted(set(before) | set(after))
    return {
        name: {"before": _plain(before.get(name)), "after": _plain(after.get(name))}
        for name in names
        if _plain(before.get(name)) != _plain(after.get(name))
    }


def request_ip(request: HttpRequest | None) -> str | None:
    """The caller's address. ``REMOTE_ADDR`` only: behind a proxy, the proxy must set it
    (gunicorn's ``--forwarded-allow-ips``), since a client can forge ``X-Forwarded-For``."""
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def request_actor(request: HttpRequest) -> str:
    """``staff:<username>`` for a staff user, the credential (``api_key:<prefix>``,
    ``jwt:<subject>``) for an API caller."""
    user = request.user
    if getattr(user, "credential_id", None) is not None:
        return str(user)
    return f"staff:{user.get_username()}"


def cli_actor() -> str:
    """``cli:<os user>`` for an operator's management command (no request, no address)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container user with no passwd entry
        user = str(os.getuid())
    return f"cli:{user}"


def audit_record(
    *,
    tenant: Tenant,
    actor: str,
    action: str,
    object_type: str,
    object_id: Any = "",
    request: HttpRequest | None = None,
    ip: str | None = None,
    changes: Mapping[str, Any] | None = None,
    detail: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit row. Called inside the caller's transaction where there is one, so
    a change and its audit row commit (or roll back) together."""
    return AuditEvent.objects.create(
        tenant=tenant,
        actor=actor[:150],
        action=action,
        object_type=object_type,
        object_id=str(object_id)[:64],
        ip=ip if ip is not None else request_ip(request),
        changes=dict(changes or {}),
        detail={k: _plain(v) for k, v in (detail or {}).items()},
    )
