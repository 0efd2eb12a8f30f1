"""Endpoints recipients and the Messaging service reach without an API key: the signed
webhook, one-click unsubscribe, and the local backend's open pixel and click redirect."""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from crm.api.errors import error_body

from .interactions import (
    MAX_EVENT_ID_LENGTH,
    TRACK_SALT,
    WEBHOOK_KINDS,
    WebhookRefused,
    interaction_record,
    message_from_token,
    messages_by_identity,
    unsubscribe_message,
    url_hash,
    webhook_verify,
)
from .models import InteractionKind, Message, MessageStatus

logger = logging.getLogger(__name__)
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
MAX_WEBHOOK_EVENTS = 1_000


# An event's own timestamp must fall between shortly before its message was sent and shortly
# after now (clock skew either way): one event dated 9999 would otherwise freeze the
# customer's last activity and consent time for good.
WEBHOOK_EVENT_SKEW = timedelta(minutes=5)
NOT_SENT = "The message was not sent."


def _refuse(
    status: int, message: str, fields: dict | None = None, code: str | None = None
) -> JsonResponse:
    code = code or {400: "invalid", 401: "authentication_failed"}.get(status, "error")
    return JsonResponse(
        error_body(status_code=status, code=code, message=message, fields=fields), status=status
    )


@dataclass(frozen=True)
class _Accepted:
    index: int
    event: dict[str, Any]
    message: Message
    occurred_at: datetime


@csrf_exempt
def messaging_webhook(request):
    """``POST /api/v1/webhooks/messaging``: delivered, opened, clicked, bounced, unsubscribed,
    complained. Signed (``X-CRM-Timestamp``, ``X-CRM-Signature: v1=<hex hmac>``); a refused
    request changes nothing; a repeated event id is acknowledged and not applied again.
    Every event is checked first and only then are the good ones recorded, so a bad event is
    rejected by itself and never leaves the ones before it half applied."""
    if request.method != "POST":
        response = _refuse(
            405, f'Method "{request.method}" not allowed.', code="method_not_allowed"
        )
        response["Allow"] = "POST"
        return response
    try:
        body = request.body
    except RequestDataTooBig:
        return _refuse(400, "The body is too large: send fewer events per call.")
    now = timezone.now()
    try:
        webhook_verify(
            timestamp=request.headers.get("X-CRM-Timestamp", ""),
            signature=request.headers.get("X-CRM-Signature", ""),
            body=body,
            now=now,
        )
    except WebhookRefused as exc:
        logger.warning("messaging webhook refused: %s", exc)
        return _refuse(exc.status, str(exc), code=exc.code)
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return _refuse(400, "The body is not JSON.", code="parse_error")
    events = data.get("events") if isinstance(data, dict) else None
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_WEBHOOK_EVENTS:
        return _refuse(400, 'Send {"events": [...]} with 1 to 1,000 events.')
    accepted, rejected = _webhook_check(events, now)
    recorded, duplicates = 0, 0
    for item in accepted:
        result = interaction_record(
            message=item.message,
            kind=WEBHOOK_KINDS[item.event["type"]],
            source="messaging",
            event_id=item.event["id"],
            occurred_at=item.occurred_at,
            metadata=item.event.get("data") or {},
            now=now,
        )
        if result.interaction is not None:
            recorded += 1
        elif result.not_sent:  # changed under us since the check: still nothing recorded
            rejected.append(_rejection(item.index, item.event, {"messageId": [NOT_SENT]}))
        else:
            duplicates += 1
    rejected.sort(key=lambda r: r["index"])
    return JsonResponse({"recorded": recorded, "duplicates": duplicates, "rejected": rejected})


def _webhook_check(events: list, now: datetime) -> tuple[list[_Accepted], list[dict]]:
    """Split the events into the good ones (with their message and time) and the rejected
    ones (index, id, errors by field), reading the named messages in one query."""
    problems = [_webhook_problem(event) for event in events]
    messages = messages_by_identity(
        [event["messageId"] for event, problem in zip(events, problems, strict=True) if not problem]
    )
    accepted: list[_Accepted] = []
    rejected: list[dict] = []
    for index, (event, problem) in enumerate(zip(events, problems, strict=True)):
        if not problem:
            problem = _event_against_message(event, messages.get(event["messageId"]), now)
        if problem:
            rejected.append(_rejection(index, event, problem))
            continue
        accepted.append(
            _Accepted(
                index=index,
                event=event,
                message=messages[event["messageId"]],
                occurred_at=datetime.fromisoformat(event["timestamp"]),
            )
        )
    return accepted, rejected


def _rejection(index: int, event: Any, errors: dict[str, list[str]]) -> dict:
    return {"index": index, "id": _id(event), "errors": errors}


def _event_against_message(
    event: dict, message: Message | None, now: datetime
) -> dict[str, list[str]]:
    if message is None:
        return {"messageId": ["Unknown message."]}
    if message.status != MessageStatus.SENT:
        return {"messageId": [NOT_SENT]}
    moment = datetime.fromisoformat(event["timestamp"])
    sent_at = message.sent_at or message.created_at
    if moment < sent_at - WEBHOOK_EVENT_SKEW:
        return {"timestamp": ["Before the message was sent."]}
    if moment > now + WEBHOOK_EVENT_SKEW:
        return {"timestamp": ["More than five minutes in the future."]}
    return {}


def _id(event: Any) -> str | None:
    """The event's id to echo in a rejection, when it is a usable one."""
    if not isinstance(event, dict):
        return None
    value = event.get("id")
    if isinstance(value, str) and 0 < len(value) <= MAX_EVENT_ID_LENGTH and _clean(value):
        return value
    return None


def _clean(value: Any) -> bool:
    """No NUL character and no lone surrogate anywhere (keys too): PostgreSQL stores
    neither, so such an event would fail at the database on every retry."""
    if isinstance(value, str):
        if "\x00" in value:
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_clean(k) and _clean(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_clean(v) for v in value)
    return True


def _webhook_problem(event: Any) -> dict[str, list[str]]:
    if not isinstance(event, dict):
        return {"event": ["Expected an object."]}
    if not _clean(event):
        return {"event": ["Contains a NUL character or an invalid character."]}
    problems: dict[str, list[str]] = {}
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        problems["id"] = ["Required, a string."]
    elif len(event_id) > MAX_EVENT_ID_LENGTH:
        problems["id"] = [f"At most {MAX_EVENT_ID_LENGTH} characters."]
    if not isinstance(event.get("type"), str) or event["type"] not in WEBHOOK_KINDS:
        problems["type"] = [f"One of {', '.join(sorted(WEBHOOK_KINDS))}."]
    if not isinstance(event.get("messageId"), str):
        problems["messageId"] = ["Required, a string."]
    timestamp = event.get("timestamp")
    try:
        if not isinstance(timestamp, str):
            raise ValueError
        if datetime.fromisoformat(timestamp).tzinfo is None:
            problems["timestamp"] = ["Give a UTC offset."]
    except ValueError:
        problems["timestamp"] = ["An ISO 8601 date-time."]
    if event.get("data") is not None and not isinstance(event.get("data"), dict):
        problems["data"] = ["Expected an object."]
    return problems


@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token: str):
    """GET: a page asking to confirm. POST (the button, or a mail client's RFC 8058
    one-click ``List-Unsubscribe=One-Click``): unsubscribe at once."""
    message = unsubscribe_message(token)
    # A message that was never sent reached nobody: its token (rendered before the send)
    # unsubscribes nobody either.
    if message is None or message.status != MessageStatus.SENT:
        return render(request, "marketing/unsubscribe.html", {"state": "invalid"}, status=404)
    if request.method == "GET":
        return render(request, "marketing/unsubscribe.html", {"state": "confirm", "token": token})
    interaction_record(
        message=message,
        kind=InteractionKind.UNSUBSCRIBED,
        source="crm",
        event_id=f"unsubscribe:{message.pk}",
        occurred_at=timezone.now(),
        metadata={"via": "one-click" if "List-Unsubscribe" in request.POST else "page"},
    )
    return render(
        request, "marketing/unsubscribe.html", {"state": "done", "tenant": message.tenant.name}
    )


@require_http_methods(["GET"])
def track_open(request, token: str):
    found = message_from_token(token, TRACK_SALT)
    if found is not None:
        message, _ = found
        interaction_record(
            message=message,
            kind=InteractionKind.OPENED,
            source="crm",
            event_id=f"open:{message.pk}",
            occurred_at=timezone.now(),
        )
    response = HttpResponse(PIXEL, content_type="image/gif")
    response["Cache-Control"] = "no-store"
    return response


@require_http_methods(["GET"])
def track_click(request, token: str):
    found = message_from_token(token, TRACK_SALT)
    if found is None:
        return HttpResponse("This link is not valid.", status=404, content_type="text/plain")
    message, data = found
    url = data.get("u", "")
    if not url.startswith(("https://", "http://")):
        return HttpResponse("This link is not valid.", status=404, content_type="text/plain")
    interaction_record(
        message=message,
        kind=InteractionKind.CLICKED,
        source="crm",
        event_id=f"click:{message.pk}:{url_hash(url)}",
        occurred_at=timezone.now(),
        metadata={"url": url},
    )
    return HttpResponseRedirect(url)
