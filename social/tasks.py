"""Celery tasks of the social app: thin, JSON-only, idempotent; each calls one service.

``social.publish_due`` and ``social.refresh_tokens`` are beat sweeps (queue ``default``);
``social.publish`` runs one claimed publication (queue ``social``, so slow platform calls
never hold up the other queues). A lost ``social.publish`` message is harmless: its row
stays PUBLISHING and the sweep verifies it on the platform after ``STALE_AFTER``."""

from __future__ import annotations

from celery import shared_task

from crm.models import Tenant
from crm.tasks import TenantTask

from .connections import connections_refresh_due, oauth_purge_expired
from .promotion import competition_event_handle
from .publishers import publication_publish, publications_claim_due


@shared_task(name="social.publish_due", ignore_result=True)
def publish_due() -> int:
    """Beat, every minute: claim due publications (SKIP LOCKED) and queue each."""
    claims = publications_claim_due()
    for claim in claims:
        publish.delay(
            claim.tenant_id,
            publication_id=claim.publication_id,
            claim_id=claim.claim_id,
            verify=claim.verify,
        )
    return len(claims)


@shared_task(base=TenantTask, name="social.publish", ignore_result=True)
def publish(tenant: Tenant, *, publication_id: int, claim_id: str, verify: bool = False) -> str:
    return publication_publish(publication_id=publication_id, claim_id=claim_id, verify=verify)


@shared_task(name="social.refresh_tokens", ignore_result=True)
def refresh_tokens() -> dict[str, int]:
    """Beat, every five minutes: refresh tokens that expire soon, one refresher per row;
    forget connect flows nobody finished."""
    counts = connections_refresh_due()
    counts["purged"] = oauth_purge_expired()
    return counts


@shared_task(base=TenantTask, name="social.competition_event", ignore_result=True)
def competition_event(tenant: Tenant, *, type: str, payload: dict) -> str | None:
    """A competition was published, changed or cancelled: promote, move or cancel."""
    promotion = competition_event_handle(tenant=tenant, type=type, payload=payload)
    return str(promotion.pk) if promotion else None
