"""Messaging backends: how the CRM talks to the platform's Messaging service.

``MESSAGING_BACKEND`` chooses one:

- ``local`` (the default, embedded): the CRM is its own messaging system, so there is no
  segment to push (campaign sends come with the campaigns work).
- ``http``: the Messaging service's REST API (contract in docs/messaging.md), with a
  timeout on every call, retries with backoff on connection errors, 429 and 5xx, and an
  ``Idempotency-Key`` on every write so a retried call is applied once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

import requests
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

logger = logging.getLogger(__name__)

SEGMENT_PAGE_SIZE = 5_000


@dataclass(frozen=True)
class Member:
    customer_id: str
    email: str | None
    phone: str | None
    messaging_contact_id: str | None
    first_name: str = ""
    last_name: str = ""


@dataclass(frozen=True)
class Outgoing:
    """One rendered message for one address."""

    channel: str
    to: str
    subject: str = ""
    html: str = ""
    text: str = ""
    body: str = ""
    from_email: str = ""
    idempotency_key: str = ""
    unsubscribe_url: str = ""
    tenant: str = ""


class MessagingError(Exception):
    """The Messaging service refused a call or could not be reached (after retries)."""


class MessagingBackend(Protocol):
    name: str
    #: True when the receiving side applies an idempotency key once (a repeat is a no-op),
    #: so sent rows may be marked per batch; SMTP is not.
    idempotent: bool

    def upsert_segment(
        self, *, segment: Any, members: Iterable[Member], sync_id: str
    ) -> str | None:
        """Create or replace the segment's members; returns the service's segment id."""

    def send(self, message: Outgoing) -> str:
        """Send one message; returns the provider's id. Raises on failure."""

    def send_many(self, messages: list[Outgoing]) -> dict[str, str | Exception]:
        """Idempotent backends only: send a batch; ``{idempotency key: provider id, or the
        error of that message}``. Raises when the whole call failed."""


sms_log = logging.getLogger("crm.sms")


class LocalBackend:
    """Email through Django's email backend (SMTP in production, console in the demo), SMS,
    WhatsApp and push through a log. The Message-ID is the row's stable identity, so a
    repeat after a worker died mid-send is recognised by the receiving side."""

    name = "local"
    idempotent = False

    def upsert_segment(self, *, segment, members, sync_id):
        return None

    def send(self, message: Outgoing) -> str:
        if message.channel != "email":
            sms_log.info(
                "%s to %s [%s]: %s",
                message.channel,
                message.to,
                message.idempotency_key,
                message.body,
            )
            return message.idempotency_key
        domain = message.from_email.rsplit("@", 1)[-1].strip(">") or "crm.local"
        message_id = f"<{message.idempotency_key}@{domain}>"
        headers = {"Message-ID": message_id, "X-CRM-Tenant": message.tenant}
        if message.unsubscribe_url:
            headers["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=message.text,
            from_email=message.from_email,
            to=[message.to],
            headers=headers,
            connection=_email_connection(),
        )
        if message.html:
            email.attach_alternative(message.html, "text/html")
        try:
            email.send(fail_silently=False)
        except Exception:
            dropped = _connection_cache.pop("email", None)
            if dropped is not None:
                dropped.close()
            raise
        return message_id


_connection_cache: dict[str, Any] = {}


def _email_connection():
    """One SMTP connection per process, reopened when it dropped."""
    connection = _connection_cache.get("email")
    if connection is None:
        connection = get_connection()
        _connection_cache["email"] = connection
    try:
        connection.open()
    except Exception:
        _connection_cache.pop("email", None)
        raise
    return connection


def _pages(members: Iterable[Member], size: int) -> Iterator[list[Member]]:
    page: list[Member] = []
    for member in members:
        page.append(member)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page


class HttpBackend:
    name = "http"
    idempotent = True

    def __init__(self, base_url: str, api_key: str, timeout: float = 10.0, retries: int = 4):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        retry = Retry(
            total=retries,
            backoff_factor=0.5,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=frozenset({"GET", "PUT", "POST", "DELETE"}),  # every write is keyed
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))
        self.session.headers.update({"Authorization": f"Bearer {api_key}"})

    def _put(self, path: str, body: dict, key: str) -> dict:
        try:
            response = self.session.put(
                f"{self.base_url}{path}",
                json=body,
                headers={"Idempotency-Key": key},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise MessagingError(f"Messaging unreachable: {exc}") from exc
        if response.status_code >= 400:
            raise MessagingError(
                f"Messaging answered {response.status_code}: {response.text[:300]}"
            )
        return response.json() if response.content else {}

    def upsert_segment(self, *, segment, members, sync_id):
        """``PUT /v1/segments/{id}`` (name), then the members page by page
        (``PUT /v1/segments/{id}/members/{sync_id}/{page}``); the last page says ``final``,
        which makes the service replace the old member list with the pages of this sync."""
        path = f"/v1/segments/{segment.pk}"
        answer = self._put(
            path,
            {"tenantId": segment.tenant.slug, "name": segment.name},
            f"segment:{segment.pk}:{sync_id}",
        )
        pages = list(_pages(members, SEGMENT_PAGE_SIZE)) or [[]]
        for number, page in enumerate(pages, start=1):
            self._put(
                f"{path}/members/{sync_id}/{number}",
                {
                    "final": number == len(pages),
                    "members": [
                        {
                            "customerId": m.customer_id,
                            "email": m.email,
                            "phone": m.phone,
                            "messagingContactId": m.messaging_contact_id,
                            "firstName": m.first_name,
                            "lastName": m.last_name,
                        }
                        for m in page
                    ],
                },
                f"segment:{segment.pk}:{sync_id}:{number}",
            )
        return str(answer.get("id") or segment.pk)

    def send_many(self, messages: list[Outgoing]) -> dict[str, str | Exception]:
        """``POST /v1/messages/batch``: one call per batch; every message carries its own
        idempotency key (a repeat of any of them is a no-op), the call one for the batch."""
        batch_key = (
            "batch:"
            + hashlib.sha256("|".join(m.idempotency_key for m in messages).encode()).hexdigest()[
                :32
            ]
        )
        try:
            response = self.session.post(
                f"{self.base_url}/v1/messages/batch",
                json={"messages": [_wire(m) for m in messages]},
                headers={"Idempotency-Key": batch_key},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise MessagingError(f"Messaging unreachable: {exc}") from exc
        if response.status_code >= 400:
            raise MessagingError(
                f"Messaging answered {response.status_code}: {response.text[:300]}"
            )
        results: dict[str, str | Exception] = {}
        for item in response.json().get("results", []):
            key = item.get("idempotencyKey")
            if item.get("status") == "accepted":
                results[key] = str(item.get("id") or key)
            else:
                results[key] = MessagingError(item.get("error") or "rejected")
        for message in messages:
            results.setdefault(message.idempotency_key, MessagingError("no answer for it"))
        return results

    def send(self, message: Outgoing) -> str:
        """``PUT /v1/messages/{idempotency key}``: the key makes a repeat a no-op."""
        answer = self._put(
            f"/v1/messages/{message.idempotency_key}",
            _wire(message),
            message.idempotency_key,
        )
        return str(answer.get("id") or message.idempotency_key)


def _wire(message: Outgoing) -> dict[str, Any]:
    return {
        "idempotencyKey": message.idempotency_key,
        "tenantId": message.tenant,
        "channel": message.channel,
        "to": message.to,
        "subject": message.subject,
        "html": message.html,
        "text": message.text,
        "body": message.body,
        "from": message.from_email,
        "unsubscribeUrl": message.unsubscribe_url,
    }


@cache
def get_backend() -> MessagingBackend:
    if settings.MESSAGING_BACKEND == "http":
        return HttpBackend(
            settings.MESSAGING_URL, settings.MESSAGING_API_KEY, settings.MESSAGING_TIMEOUT
        )
    return LocalBackend()
