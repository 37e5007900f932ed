from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from serving.models import ApiKey


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Requests per API key (429 beyond the rate); people with sessions are not throttled here."""

    scope = "api_key"

    def get_rate(self) -> str:
        return settings.SERVING_RATE_PER_KEY

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if isinstance(request.auth, ApiKey):
            return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}
        return None
