"""API scopes: what a credential (API key or platform JWT) may do.

Every API view declares ``required_scopes``: a mapping from ``"read"`` (GET, HEAD, OPTIONS)
and ``"write"`` (every other method) to a scope, with optional overrides per viewset action
(``{"erase": PRIVACY_ERASE}``). ``ANY_CREDENTIAL`` (None) lets any valid credential of the
tenant through. ``crm.api.permissions.HasRequiredScope`` enforces it on every route; a view
that declares nothing is refused (and a test walks every route to keep it so).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

TENANT_READ = "tenant:read"
TENANT_ADMIN = "tenant:admin"
CUSTOMERS_READ = "customers:read"
CUSTOMERS_WRITE = "customers:write"
EVENTS_WRITE = "events:write"
MARKETING_READ = "marketing:read"
MARKETING_WRITE = "marketing:write"
PRIVACY_ERASE = "privacy:erase"
PRIVACY_EXPORT = "privacy:export"
ANALYTICS_READ = "analytics:read"
SOCIAL_READ = "social:read"
SOCIAL_WRITE = "social:write"

SCOPES: dict[str, str] = {
    TENANT_READ: "Read the tenant's clubs",
    TENANT_ADMIN: "Create and change the tenant's clubs",
    CUSTOMERS_READ: "Read customers, their timeline, notes, consents and merge suggestions",
    CUSTOMERS_WRITE: "Resolve, change and merge customers; write notes; decide suggestions",
    EVENTS_WRITE: "Send events",
    MARKETING_READ: "Read segments, templates and campaigns",
    MARKETING_WRITE: "Create, change, send and delete segments, templates and campaigns",
    PRIVACY_ERASE: "Erase a customer's personal data",
    PRIVACY_EXPORT: "Export everything held about a customer (subject-access request)",
    ANALYTICS_READ: "Read analytics: member counts, score distributions and trends, campaign "
    "and event volumes (aggregates, no personal data)",
    SOCIAL_READ: "Read social connections, posts, publications and promotions",
    SOCIAL_WRITE: "Disconnect accounts; create, schedule and cancel posts and promotions",
}
ALL_SCOPES: tuple[str, ...] = tuple(SCOPES)

# What an API key gets when its creator names no scopes: a platform service that sends events
# and resolves, reads and updates customers. Marketing, club administration and erasure are
# granted only when asked for.
DEFAULT_API_KEY_SCOPES: tuple[str, ...] = (
    TENANT_READ,
    CUSTOMERS_READ,
    CUSTOMERS_WRITE,
    EVENTS_WRITE,
)

ANY_CREDENTIAL = None
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class UndeclaredScope(LookupError):
    """The view does not say which scope the method (or action) needs."""


def required_scope(view: Any, method: str) -> str | None:
    """The scope ``view`` needs for ``method`` (None: any credential of the tenant).

    Raises ``UndeclaredScope`` when the view declares nothing for it.
    """
    declared: Mapping[str, str | None] | None = getattr(view, "required_scopes", None)
    if declared is None:
        raise UndeclaredScope(f"{type(view).__name__} declares no required_scopes")
    action = getattr(view, "action", None)
    if action and action in declared:
        return declared[action]
    kind = "read" if method.upper() in SAFE_METHODS else "write"
    if kind not in declared:
        raise UndeclaredScope(f"{type(view).__name__} declares no {kind!r} scope")
    return declared[kind]


def unknown_scopes(scopes: Iterable[str]) -> list[str]:
    return sorted(set(scopes) - set(SCOPES))
