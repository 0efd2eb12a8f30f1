"""Tenancy in one place: the tenant-owned base model and its scoped queryset.

Every row of every domain table carries ``tenant``; reads go through
``Model.objects.for_tenant(tenant)``, which the base API view and the admin mixin call for
you. A system check (``crm.checks``) refuses a tenant-owned model without this manager.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .models import Tenant


class TenantQuerySet(models.QuerySet):
    """A queryset whose callers say which tenant they act for."""

    def for_tenant(self, tenant: Tenant | Any) -> TenantQuerySet:
        if tenant is None:
            raise ValueError("for_tenant() needs a tenant; None would match nothing by accident")
        return self.filter(tenant=tenant)

    def for_tenants(self, tenant_ids: Iterable[Any]) -> TenantQuerySet:
        return self.filter(tenant_id__in=list(tenant_ids))


class TenantManager(models.Manager.from_queryset(TenantQuerySet)):  # type: ignore[misc]
    """Default manager of tenant-owned models."""


class TimestampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


def tenant_led_key() -> models.ForeignKey:
    """The ``tenant`` field of a tenant-owned model whose every index starts with the tenant:
    a key with no index of its own. Django's default index on ``tenant_id`` would repeat
    the lead of the composite ones, one more index entry for every row written
    (``tests/customers/test_profile_indexes.py`` keeps the write-heavy tables free of such
    repeats)."""
    return models.ForeignKey(
        "crm.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False
    )


class TenantOwnedModel(TimestampedModel):
    """Base of every row that belongs to a tenant. Unique keys and lookup indexes start with
    ``tenant`` so the data can later be distributed by tenant (Citus). A lookup by a row's
    own globally unique id (a profile's aliases by ``profile_id``) needs no tenant prefix:
    under Citus indexes live per shard, only unique keys must hold the tenant."""

    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+")

    objects = TenantManager()

    class Meta:
        abstract = True
