"""Reads of the shared kernel."""

from __future__ import annotations

import time
import uuid

from .models import StaffMembership, Tenant


def staff_roles(*, user) -> dict[uuid.UUID, str]:
    """``{tenant_id: role}`` for a staff user's active tenants, read once per request (the
    result is kept on the user object, which lives as long as the request)."""
    if not getattr(user, "is_authenticated", False):
        return {}
    roles = getattr(user, "_crm_staff_roles", None)
    if roles is None:
        roles = dict(
            StaffMembership.objects.filter(user=user, tenant__is_active=True).values_list(
                "tenant_id", "role"
            )
        )
        user._crm_staff_roles = roles
    return roles


def staff_tenant_ids(*, user) -> list[uuid.UUID]:
    """Ids of the tenants a staff user may see (empty for a user with no membership)."""
    return list(staff_roles(user=user))


def staff_tenant_ids_with_role(*, user, roles: tuple[str, ...]) -> list[uuid.UUID]:
    """Ids of the tenants where the user holds one of ``roles``."""
    return [tenant_id for tenant_id, role in staff_roles(user=user).items() if role in roles]


def tenant_by_reference(*, reference: str) -> Tenant | None:
    """A tenant by its id (UUID) or its slug, as platform JWTs and events name it."""
    try:
        return Tenant.objects.filter(pk=uuid.UUID(str(reference)), is_active=True).first()
    except ValueError:
        return Tenant.objects.filter(slug=reference, is_active=True).first()


# Tenants change rarely and are read on every API request; each process keeps them for a
# minute. Saving a tenant clears this process's copy at once (crm.apps connects it); other
# processes catch up within TENANT_CACHE_SECONDS. Whether a tenant is active is checked in
# the authenticating query itself, never from this cache.
TENANT_CACHE_SECONDS = 60.0
_tenant_cache: dict[uuid.UUID, tuple[float, Tenant]] = {}


def tenant_cached(*, tenant_id: uuid.UUID) -> Tenant | None:
    now = time.monotonic()
    entry = _tenant_cache.get(tenant_id)
    if entry is not None and now - entry[0] < TENANT_CACHE_SECONDS:
        return entry[1]
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is not None:
        _tenant_cache[tenant_id] = (now, tenant)
    return tenant


def tenant_cache_clear(**kwargs) -> None:
    _tenant_cache.clear()
