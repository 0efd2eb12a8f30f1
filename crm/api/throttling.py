from __future__ import annotations

import time

from django.core.cache import cache
from rest_framework.throttling import SimpleRateThrottle

from .authentication import ApiPrincipal


class CredentialRateThrottle(SimpleRateThrottle):
    """A request budget per credential (API key, or JWT subject within a tenant);
    anonymous callers are limited by address. The rate is ``API_THROTTLE_RATE``.

    A fixed-window counter (one Redis INCR per request) rather than DRF's sliding history,
    which stores and re-serialises every timestamp of the window on every request: at
    thousands of requests a minute that list, not the API, becomes the cost.
    """

    scope = "credential"
    # Set by SimpleRateThrottle.__init__ from the rate (its type stubs do not declare them).
    num_requests: int
    duration: int
    window_ends: float

    def get_cache_key(self, request, view) -> str:
        user = request.user
        ident = user.credential_id if isinstance(user, ApiPrincipal) else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        now = time.time()
        window = int(now // self.duration)
        self.window_ends = (window + 1) * self.duration - now
        key = f"{self.get_cache_key(request, view)}:{window}"
        try:
            count = cache.incr(key)
        except ValueError:  # first request of the window
            # add() loses only to a concurrent first request, whose key incr() then finds.
            count = 1 if cache.add(key, 1, timeout=self.duration + 1) else cache.incr(key)
        return count <= self.num_requests

    def wait(self) -> float:
        return getattr(self, "window_ends", self.duration)
