from __future__ import annotations

from rest_framework.throttling import SimpleRateThrottle

from .authentication import ApiPrincipal


class CredentialRateThrottle(SimpleRateThrottle):
    """A request budget per credential (API key, or JWT subject within a tenant);
    anonymous callers are limited by address. The rate is ``API_THROTTLE_RATE``."""

    scope = "credential"

    def get_cache_key(self, request, view) -> str:
        user = request.user
        ident = user.credential_id if isinstance(user, ApiPrincipal) else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
