"""Helpers of the customers tests."""

from __future__ import annotations

from customers.identity import IdentityHints
from customers.services import Resolution, identity_resolve


def resolve(tenant, create: bool = True, **raw) -> Resolution:
    """Resolve raw hints the way the API does (normalised in the tenant's region)."""
    hints = IdentityHints.parse(raw, phone_region=tenant.default_phone_region)
    return identity_resolve(tenant=tenant, hints=hints, create=create, source="test")


def person(tenant, **raw):
    return resolve(tenant, **raw).profile
