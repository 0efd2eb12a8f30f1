from __future__ import annotations

import logging
import time

from redis.exceptions import RedisError
from rest_framework.throttling import SimpleRateThrottle

from .authentication import ApiPrincipal
from .redis_fast import counter_incr

logger = logging.getLogger(__name__)

# After Redis failed, this process counts nothing for a few seconds: a down (or black-holed)
# Redis then costs no connect attempt per request, and the warning is logged once per pause.
REDIS_RETRY_AFTER = 5.0
_redis_down_until = 0.0


class CredentialRateThrottle(SimpleRateThrottle):
    """A request budget per credential (API key, or JWT subject within a tenant);
    anonymous callers are limited by address. The rate is ``API_THROTTLE_RATE``.

    A fixed-window counter (one Redis round trip per request) rather than DRF's sliding history,
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

    def count_key(self, credential_id: str) -> tuple[str, int, float] | None:
        """``(counter, expiry in seconds, now)``: the counter a request of credential
        ``credential_id`` counts against at ``now``, for counting it before this throttle runs
        (the API key's authentication does, in its own Redis round trip, and hands the count
        over with ``counted``); None when this throttle would count nothing (no rate, or
        Redis paused)."""
        if self.rate is None or time.monotonic() < _redis_down_until:
            return None
        now = time.time()
        ident = self.cache_format % {"scope": self.scope, "ident": credential_id}
        return f"{ident}:{int(now // self.duration)}", self.duration + 1, now

    @staticmethod
    def counted(request, key: str, count: int, now: float) -> None:
        """Record that this request was counted at ``key`` (``count_key`` at ``now``): its
        throttle then reads ``count`` instead of counting again."""
        request._rate_counted = (key, count, now)

    def allow_request(self, request, view) -> bool:
        """Fails open: while Redis is unreachable every request is allowed (with a warning
        logged), because a lost rate limit is a smaller harm than an API that refuses every
        call, events included."""
        global _redis_down_until
        if self.rate is None:
            return True
        now = time.time()
        counted = getattr(request, "_rate_counted", None)
        if counted is not None:
            # Counted with the authentication (``count_key``), in the window of that moment.
            counted_key, count, at = counted
            window = int(at // self.duration)
            if counted_key == f"{self.get_cache_key(request, view)}:{window}":
                self.window_ends = max((window + 1) * self.duration - now, 0.0)
                return count <= self.num_requests
        if time.monotonic() < _redis_down_until:
            return True
        window = int(now // self.duration)
        self.window_ends = (window + 1) * self.duration - now
        key = f"{self.get_cache_key(request, view)}:{window}"
        try:
            count = self._count(key)
        except (RedisError, OSError) as exc:
            _redis_down_until = time.monotonic() + REDIS_RETRY_AFTER
            logger.warning(
                "rate limit not applied: Redis is unreachable (%s); retrying in %ss",
                exc,
                REDIS_RETRY_AFTER,
            )
            return True
        return count <= self.num_requests

    def _count(self, key: str) -> int:
        # One Redis round trip on a long-lived client (crm.api.redis_fast).
        return counter_incr(key, timeout=self.duration + 1)

    def wait(self) -> float:
        return getattr(self, "window_ends", self.duration)
