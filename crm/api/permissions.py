from __future__ import annotations

from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

from crm.scopes import UndeclaredScope, required_scope

from .authentication import ApiPrincipal


class IsTenantPrincipal(BasePermission):
    """The caller authenticated with a tenant credential (API key or platform JWT)."""

    message = "Authentication credentials were not provided."

    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, ApiPrincipal)

    def grants(self, scopes: tuple[str, ...], view, method: str) -> bool:
        """Whether a tenant credential holding ``scopes`` passes ``has_permission`` (asked
        before the principal exists, crm.api.authentication; never raises)."""
        return True


class HasRequiredScope(IsTenantPrincipal):
    """A tenant credential that holds the scope the view declares for this method or action
    (``required_scopes``, see ``crm.scopes``). The API's default permission: every route
    goes through it. A view that declares no scope is refused, never let through."""

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        if self.grants(request.user.scopes, view, request.method):
            return True
        raise PermissionDenied(_refusal(view, request.method))

    def grants(self, scopes: tuple[str, ...], view, method: str) -> bool:
        try:
            needed = required_scope(view, method)
        except UndeclaredScope:
            return False
        return needed is None or needed in scopes


def _refusal(view, method: str) -> str:
    """Why ``HasRequiredScope`` refuses a tenant credential (only asked once it has)."""
    try:
        needed = required_scope(view, method)
    except UndeclaredScope:
        return "This route declares no scope."
    return f"This credential lacks the {needed!r} scope."
