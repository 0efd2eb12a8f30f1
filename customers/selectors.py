"""Reads of the customers app, always scoped to a tenant."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q, QuerySet

from crm.models import Tenant

from .models import CustomerProfile, MergeSuggestion, ProfileStatus, ProfileUpdate

HIDDEN_STATUSES = (ProfileStatus.MERGED, ProfileStatus.ERASED)


def customer_list(*, tenant: Tenant) -> QuerySet[CustomerProfile]:
    """Live profiles of a tenant (merged and erased ones are listed only when asked for)."""
    return CustomerProfile.objects.for_tenant(tenant).filter(deleted_at__isnull=True)


def customer_live(*, tenant: Tenant) -> QuerySet[CustomerProfile]:
    """The profiles a detail route may show and a write may change: merged, erased and
    deleted ones answer 404 whatever the request asks for."""
    return CustomerProfile.objects.for_tenant(tenant).live()


def customer_search(queryset: QuerySet[CustomerProfile], text: str) -> QuerySet[CustomerProfile]:
    """Name or email containing ``text`` (case-insensitive; trigram indexes serve it)."""
    words = text.split()
    for word in words:
        queryset = queryset.filter(
            Q(email__icontains=word) | Q(first_name__icontains=word) | Q(last_name__icontains=word)
        )
    return queryset


def customers_updated_since(
    queryset: QuerySet[CustomerProfile], *, tenant: Tenant, since: datetime
) -> QuerySet[CustomerProfile]:
    """Profiles whose data changed at or after ``since`` (their ``updated_at``), found
    through ``ProfileUpdate``'s time index: the profile table has none on ``updated_at``
    (so that a data change can be a HOT update). The profile's own column is compared too,
    so the answer is the profile's ``updated_at`` whatever the index says."""
    recent = ProfileUpdate.objects.filter(tenant=tenant, updated_at__gte=since)
    return queryset.filter(pk__in=recent.values("customer_id"), updated_at__gte=since)


def merge_suggestion_list(*, tenant: Tenant) -> QuerySet[MergeSuggestion]:
    return MergeSuggestion.objects.for_tenant(tenant).select_related("profile", "candidate")
