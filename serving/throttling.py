from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from serving.models import ApiKey


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Requests per API key (429 beyond the rate); people with sessions are not throttled here.

    A token bucket of `rate` tokens refilled evenly over the period, kept in the cache as two
    numbers. DRF's SimpleRateThrottle keeps every request's timestamp instead: at the default
    600,000/min, a busy key's list grew to tens of thousands of entries, pickled and unpickled on
    every request (a third of a millisecond each time in the serving benchmark). The bucket
    allows the same average rate and a burst of at most `rate` requests. Like DRF's, it reads and
    writes without a lock, so concurrent requests may slip a few over the limit; with the default
    local-memory cache the limit is per process (set CACHE_URL=redis://... to share it)."""

    scope = "api_key"

    def get_rate(self) -> str:
        return settings.SERVING_RATE_PER_KEY

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if isinstance(request.auth, ApiKey):
            return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}
        return None

    def allow_request(self, request: Request, view: Any) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        capacity, period = self.parse_rate(self.rate)
        if capacity is None or not period:
            return True
        if capacity == 0:  # "0/min": nothing gets through
            self.wait_seconds = float(period)
            return False
        per_second = capacity / period
        now = time.time()  # wall clock: a shared cache is read by several processes
        tokens, then = cache.get(key) or (float(capacity), now)
        tokens = min(float(capacity), tokens + (now - then) * per_second)
        if tokens < 1:
            self.wait_seconds = (1 - tokens) / per_second
            cache.set(key, (tokens, now), period)
            return False
        cache.set(key, (tokens - 1, now), period)
        return True

    def wait(self) -> float | None:
        return getattr(self, "wait_seconds", None)
