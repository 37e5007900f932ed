"""/metrics. Thin: parse, call one function, render."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from integrations import metrics


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    return metrics.metrics_view(request)
