"""Endpoints recipients and the Messaging service reach without an API key: the signed
webhook, one-click unsubscribe, and the local backend's open pixel and click redirect."""

from __future__ import annotations

import base64
import json
import logging
from datetime import datetime

from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from crm.api.errors import error_body

from .interactions import (
    TRACK_SALT,
    WEBHOOK_KINDS,
    WebhookRefused,
    interaction_record,
    message_by_identity,
    message_from_token,
    unsubscribe_message,
    url_hash,
    webhook_verify,
)
from .models import InteractionKind

logger = logging.getLogger(__name__)
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
MAX_WEBHOOK_EVENTS = 1_000


def _refuse(status: int, message: str, fields: dict | None = None) -> JsonResponse:
    code = {400: "invalid", 401: "unauthorized"}.get(status, "error")
    return JsonResponse(
        error_body(status_code=status, code=code, message=message, fields=fields), status=status
    )


@csrf_exempt
@require_http_methods(["POST"])
def messaging_webhook(request):
    """``POST /api/v1/webhooks/messaging``: delivered, opened, clicked, bounced, unsubscribed,
    complained. Signed (``X-CRM-Timestamp``, ``X-CRM-Signature: v1=<hex hmac>``); a refused
    request changes nothing; a repeated event id is acknowledged and not applied again."""
    body = request.body
    try:
        webhook_verify(
            timestamp=request.headers.get("X-CRM-Timestamp", ""),
            signature=request.headers.get("X-CRM-Signature", ""),
            body=body,
            now=timezone.now(),
        )
    except WebhookRefused as exc:
        logger.warning("messaging webhook refused: %s", exc)
        return _refuse(exc.status, str(exc))
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _refuse(400, "The body is not JSON.")
    events = data.get("events") if isinstance(data, dict) else None
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_WEBHOOK_EVENTS:
        return _refuse(400, 'Send {"events": [...]} with 1 to 1,000 events.')
    recorded, duplicates, rejected = 0, 0, []
    for index, event in enumerate(events):
        problem = _webhook_problem(event)
        if problem:
            rejected.append({"index": index, "id": _id(event), "errors": problem})
            continue
        message = message_by_identity(event["messageId"])
        if message is None:
            rejected.append(
                {"index": index, "id": event["id"], "errors": {"messageId": ["Unknown message."]}}
            )
            continue
        result = interaction_record(
            message=message,
            kind=WEBHOOK_KINDS[event["type"]],
            source="messaging",
            event_id=str(event["id"]),
            occurred_at=datetime.fromisoformat(event["timestamp"]),
            metadata=event.get("data") or {},
        )
        if result.interaction is None:
            duplicates += 1
        else:
            recorded += 1
    return JsonResponse({"recorded": recorded, "duplicates": duplicates, "rejected": rejected})


def _id(event) -> str | None:
    return str(event["id"]) if isinstance(event, dict) and event.get("id") else None


def _webhook_problem(event) -> dict[str, list[str]]:
    if not isinstance(event, dict):
        return {"event": ["Expected an object."]}
    problems: dict[str, list[str]] = {}
    if not event.get("id"):
        problems["id"] = ["Required."]
    if event.get("type") not in WEBHOOK_KINDS:
        problems["type"] = [f"One of {', '.join(sorted(WEBHOOK_KINDS))}."]
    if not isinstance(event.get("messageId"), str):
        problems["messageId"] = ["Required."]
    try:
        moment = datetime.fromisoformat(str(event.get("timestamp")))
        if moment.tzinfo is None:
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
    if message is None:
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
