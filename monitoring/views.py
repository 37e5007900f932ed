"""The monitoring tab of a version (data scientists, risk officers, auditors): drift per feature
over the windows, live metrics with their intervals, fairness per group, alerts and findings,
and how often people override its decisions."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from core.roles import RISK_OFFICERS, has_role
from governance import rules
from governance.policies import active_policy
from lifecycle.views import visible_version
from monitoring import charts, selectors
from monitoring.models import Level


@login_required
def version_monitoring(request: HttpRequest, name: str, version: int) -> HttpResponse:
    v = visible_version(request, name, version)
    windows = list(selectors.windows_of(v))[-60:]
    policy = active_policy()
    latest = windows[-1] if windows else None
    alerts = [(w, a) for w in reversed(windows) for a in w.alerts if a.get("level") in (Level.ALERT, Level.WARN)][:50]
    minimums: dict[str, float | None] = {
        "accuracy": policy.min_accuracy,
        "balanced_accuracy": policy.min_balanced_accuracy,
        "roc_auc": policy.min_roc_auc,
        "f1": policy.min_f1,
        "r2": policy.min_r2,
    }
    is_officer = has_role(request.user, RISK_OFFICERS)
    context: dict[str, Any] = {
        "v": v,
        "windows": windows,
        "latest": latest,
        "latest_drift": sorted(latest.drift.items(), key=lambda kv: -(kv[1].get("psi") or 0)) if latest else [],
        "alerts": alerts,
        "findings": selectors.findings_of(v),
        "psi_charts": charts.psi_multiples(windows, warn=policy.psi_warn, alert=policy.psi_alert),
        "metric_charts": charts.metric_multiples(windows, minimums),
        "fairness_charts": charts.fairness_multiples(windows),
        "policy": policy,
        "monitor_window": settings.MONITOR_WINDOW,
        "expired": rules.approval_expired(v),
        "review_url": reverse("admin:governance_versionreview_change", args=[v.pk]) if is_officer else "",
        "can_recertify": bool(rules.can_recertify(v, request.user)) if is_officer else False,
        "overrides": selectors.override_rates(v, windows=windows),
    }
    return render(request, "monitoring/version.html", context)
