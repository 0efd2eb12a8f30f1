from __future__ import annotations

from rest_framework.permissions import BasePermission

from .authentication import ApiPrincipal


class IsTenantPrincipal(BasePermission):
    """The caller authenticated with a tenant credential (API key or platform JWT)."""

    message = "Authentication credentials were not provided."

    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, ApiPrincipal)
