"""Per API key: a rate (SERVING_RATE_PER_KEY) and a daily quota of prediction requests
(API_KEY_DAILY_QUOTA), counted in Django's cache so that every process sharing the cache (Redis,
CACHE_URL=redis://...) shares the counts; the default local-memory cache counts per process.

When the shared cache cannot be reached, serving goes on: the counts fail open to a bucket in
this process (each worker then allows the rate and the quota on its own) for
THROTTLE_FALLBACK_SECONDS before the shared cache is tried again, and a warning says so once per
outage (docs/operations-limits.md)."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import BaseCache, cache
from django.core.cache.backends.locmem import LocMemCache
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from serving.errors import ServingError
from serving.models import ApiKey, Disposition
from serving.predict import Caller, PredictionRequest, log_refusal

DAY = 86_400
THROTTLE_FALLBACK_SECONDS = 30
logger = logging.getLogger(__name__)
_local = LocMemCache("serving-throttle-fallback", {"OPTIONS": {"MAX_ENTRIES": 100_000}})
_shared_down_until = 0.0


def reset_fallback() -> None:
    """Forget an outage of the shared cache and the per-process counts (tests)."""
    global _shared_down_until
    _shared_down_until = 0.0
    _local.clear()


def _counts() -> BaseCache:
    return _local if time.monotonic() < _shared_down_until else cache


def _fall_back(exc: Exception) -> None:
    global _shared_down_until
    _shared_down_until = time.monotonic() + THROTTLE_FALLBACK_SECONDS
    logger.warning(
        "The shared cache (CACHE_URL) is unreachable (%s: %s): API-key rates and daily quotas are counted "
        "per process for the next %d s; predictions are still answered and logged.",
        type(exc).__name__,
        exc,
        THROTTLE_FALLBACK_SECONDS,
    )


def _tolerant(operation: Any) -> Any:
    """Run operation(store) on the shared cache, or on this process's bucket when it is down
    (any error of the cache backend: a refused connection, a timeout, a lost server)."""
    store = _counts()
    if store is _local:
        return operation(_local)
    try:
        return operation(store)
    except Exception as exc:  # (redis.exceptions.* and OSError: never a 500 for a counter)
        _fall_back(exc)
        return operation(_local)


class DailyQuotaExceeded(exceptions.Throttled):
    default_code = "daily_quota_exceeded"


def _count(key: str, timeout: int) -> int:
    """Add one to a shared counter and return it: add() creates it only if missing, incr() is
    atomic in Redis and under a lock in local memory (an eviction in between starts it anew)."""

    def count(store: BaseCache) -> int:
        store.add(key, 0, timeout)
        try:
            return store.incr(key)
        except ValueError:
            store.set(key, 1, timeout)
            return 1

    return _tolerant(count)


def _uncount(key: str) -> None:
    def uncount(store: BaseCache) -> None:
        with contextlib.suppress(ValueError):  # expired meanwhile: nothing to give back
            store.decr(key)

    _tolerant(uncount)


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Requests per API key (429 beyond the rate, 429 daily_quota_exceeded beyond the day's
    quota); people with sessions are not throttled here.

    The rate is a sliding window of two fixed windows, each a counter kept with cache.add/incr
    (no read-modify-write, so concurrent processes never lose a count): the estimate is this
    window's count plus the previous window's, weighted by how much of it still overlaps the last
    `period` seconds. A refused request is given back, so a client that keeps trying is not
    locked out for longer. Refusals by the rate are not logged (the rate is what bounds the log's
    growth); a request beyond the day's quota is refused and logged like any other refusal."""

    scope = "api_key"

    def get_rate(self) -> str:
        return settings.SERVING_RATE_PER_KEY

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if isinstance(request.auth, ApiKey):
            return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}
        return None

    def allow_request(self, request: Request, view: Any) -> bool:
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        if self.rate is not None and not self._within_rate(key):
            return False
        if settings.API_KEY_DAILY_QUOTA > 0 and request.method == "POST":
            self._within_quota(request, view, key)
        return True

    def _within_rate(self, key: str) -> bool:
        capacity, period = self.parse_rate(self.rate)
        if capacity is None or not period:
            return True
        if capacity == 0:  # "0/min": nothing gets through
            self.wait_seconds = float(period)
            return False
        now = time.time()  # wall clock: a shared cache is read by several processes
        window = int(now // period)
        elapsed = now - window * period
        current_key = f"{key}:{window}"
        current = _count(current_key, 2 * period + 1)
        previous = _tolerant(lambda store: store.get(f"{key}:{window - 1}", 0))
        if previous * (period - elapsed) / period + current <= capacity:
            return True
        _uncount(current_key)
        self.wait_seconds = _wait(capacity, period, elapsed, previous, current - 1)
        return False

    def _within_quota(self, request: Request, view: Any, key: str) -> None:
        quota = settings.API_KEY_DAILY_QUOTA
        now = time.time()
        day = int(now // DAY)
        day_key = f"{key}:day:{day}"
        if _count(day_key, DAY + 3600) <= quota:
            return
        _uncount(day_key)
        wait = (day + 1) * DAY - now  # the quota starts again at midnight UTC
        message = f"This API key has used its quota of {quota} prediction requests for today (UTC)."
        refusal = ServingError(message, status=429, code=DailyQuotaExceeded.default_code)
        caller = Caller(user=request.user, api_key=request.auth if isinstance(request.auth, ApiKey) else None)
        prediction = PredictionRequest(
            caller,
            str(view.kwargs.get("name", "")),
            "v2" if request.path.startswith("/v2/") else "v1",
            request_id=request.headers.get("X-Request-ID", ""),
        )
        error = log_refusal(prediction, refusal, Disposition.REFUSED)
        if error is not refusal:  # even the refusal could not be logged: 503, as for any request
            raise error
        raise DailyQuotaExceeded(wait=wait, detail=message)

    def wait(self) -> float | None:
        return getattr(self, "wait_seconds", None)


def _wait(capacity: int, period: int, elapsed: float, previous: int, current: int) -> float:
    """Seconds until one more request fits the sliding window (Retry-After)."""
    remaining = period - elapsed
    if previous > 0:
        # within this window: previous * (remaining - w) / period + current + 1 <= capacity
        needed = remaining - (capacity - current - 1) * period / previous
        if needed <= remaining:
            return max(needed, 0.0)
    # in the next window, this window's count becomes the weighted one
    if current <= 0:
        return remaining
    return remaining + max(0.0, period * (1 - (capacity - 1) / current))
