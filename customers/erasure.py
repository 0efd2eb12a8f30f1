"""Erasure (the right to be forgotten, GDPR art. 17 / POPIA s24).

``customer_erase`` removes a person's personal data from the tenant in one transaction: the
profile keeps its id and the ERASED status with every personal field blanked; aliases,
activities, notes, the consent history and merge suggestions are deleted; sync-log rows and
merge audits lose their payloads; other apps erase their rows through hooks registered in
``crm.registry`` (marketing: memberships, messages' addresses, interactions). What stays is a
suppression stub per address (so an import or event with the same email cannot
re-subscribe them) and an ``Erasure`` audit row (who, when, counts; no personal data).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from crm.audit import AuditAction, audit_record
from crm.models import Tenant
from crm.registry import erase_hooks

from .models import (
    CHANNELS,
    Activity,
    AliasKind,
    ConsentRecord,
    CustomerProfile,
    Erasure,
    IdentityAlias,
    MergeSuggestion,
    Note,
    ProfileMerge,
    ProfileStatus,
    SyncLogEntry,
)


def customer_erase(
    *,
    tenant: Tenant,
    customer: CustomerProfile,
    actor: str,
    reason: str = "",
    ip: str | None = None,
) -> Erasure:
    with transaction.atomic():
        profile = CustomerProfile.objects.for_tenant(tenant).select_for_update().get(pk=customer.pk)
        if not profile.is_live:
            # Erased: nothing left. Merged: the person lives on in the winner, and erasing
            # the winner erases the profiles merged into it too.
            raise ValidationError({"customer": [f"This customer is {profile.status.lower()}."]})
        # Profiles merged into this one are the same person: their rows go too.
        merged = list(
            CustomerProfile.objects.for_tenant(tenant)
            .filter(merged_into=profile)
            .values_list("pk", "email", "phone")
        )
        people = [profile.pk, *(pk for pk, _, _ in merged)]
        aliases = IdentityAlias.objects.for_tenant(tenant).filter(profile=profile)
        emails = {profile.email, *(email for _, email, _ in merged)} | set(
            aliases.filter(kind=AliasKind.EMAIL).values_list("value", flat=True)
        )
        phones = {profile.phone, *(phone for _, _, phone in merged)} | set(
            aliases.filter(kind=AliasKind.PHONE).values_list("value", flat=True)
        )
        addresses = {
            "email": sorted(a for a in emails if a),
            "sms": sorted(a for a in phones if a),
            "whatsapp": sorted(a for a in phones if a),
        }
        scope: dict[str, int] = {}
        for name, hook in erase_hooks().items():
            scope[name] = hook(tenant=tenant, customer=profile, addresses=addresses)
        scope["aliases"], _ = aliases.delete()
        scope["activities"], _ = (
            Activity.objects.for_tenant(tenant).filter(customer=profile).delete()
        )
        scope["notes"], _ = Note.objects.for_tenant(tenant).filter(customer=profile).delete()
        scope["consent_records"], _ = (
            ConsentRecord.objects.for_tenant(tenant).filter(customer=profile).delete()
        )
        scope["merge_suggestions"], _ = (
            MergeSuggestion.objects.for_tenant(tenant)
            .filter(Q(profile_id__in=people) | Q(candidate_id__in=people))
            .delete()
        )
        scope["sync_log_scrubbed"] = (
            SyncLogEntry.objects.for_tenant(tenant)
            .filter(profile_id__in=people)
            .update(identity={}, payload={}, error="")
        )
        scope["merge_audits_scrubbed"] = (
            ProfileMerge.objects.for_tenant(tenant)
            .filter(Q(loser_id__in=people) | Q(winner_id__in=people))
            .update(loser_snapshot={})
        )
        scope["merged_profiles_erased"] = len(merged)
        CustomerProfile.objects.for_tenant(tenant).filter(pk__in=people).update(
            **_blank_values(now=timezone.now())
        )
        erasure = Erasure.objects.create(
            tenant=tenant, customer_id=profile.pk, actor=actor, reason=reason[:255], scope=scope
        )
        audit_record(
            tenant=tenant,
            actor=actor,
            action=AuditAction.CUSTOMER_ERASED,
            object_type="customers.CustomerProfile",
            object_id=profile.pk,
            ip=ip,
            detail={"erasure_id": erasure.pk, "reason": reason[:255]},
        )
        return erasure


def _blank_values(*, now) -> dict:
    """Every personal column back to its default; the row keeps its id, tenant, creation
    time and currency, and becomes ERASED."""
    values = {}
    for field in CustomerProfile._meta.concrete_fields:
        if field.primary_key or field.name in ("tenant", "created_at", "currency"):
            continue
        default = field.get_default()
        if default is None and not field.null:
            continue
        values[field.attname] = default
    for channel in CHANNELS:
        values[f"{channel}_opt_in"] = False
    values.update(status=ProfileStatus.ERASED, deleted_at=now, updated_at=now)
    return values
