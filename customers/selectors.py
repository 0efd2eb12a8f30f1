"""Reads of the customers app, always scoped to a tenant."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from crm.models import Tenant

from .models import CustomerProfile, MergeSuggestion, ProfileStatus

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


def merge_suggestion_list(*, tenant: Tenant) -> QuerySet[MergeSuggestion]:
    return MergeSuggestion.objects.for_tenant(tenant).select_related("profile", "candidate")
