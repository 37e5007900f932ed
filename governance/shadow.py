"""Shadow challengers: a risk officer puts a version in shadow, monitoring.shadow replays the
production version's traffic through it and records each window's comparison here, and an
approval binds the hash of the comparisons the officer saw (docs/design.md: an approval binds what
was reviewed)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from core import audit
from core.actors import Actor, person
from core.evidence import evidence
from governance import rules
from governance.errors import WorkflowError
from governance.models import Shadow, ShadowComparison
from lifecycle.models import ModelVersion


@transaction.atomic
def start_shadow(version_id: int, *, actor: Actor, justification: str) -> Shadow:
    """Put the version in shadow of its model's production version, audited."""
    version = ModelVersion.objects.select_for_update().select_related("registered_model").get(pk=version_id)
    rule = rules.can_shadow(version, actor)
    if not rule:
        raise WorkflowError(rule.reason, status=403 if rule.forbidden else 409)
    text = (justification or "").strip()
    if not text:
        raise WorkflowError("Putting a version in shadow needs a justification.", field="justification")
    shadow = Shadow.objects.create(
        version=version, started_at=timezone.now(), started_by=person(actor), justification=text
    )
    audit.record(
        audit.SHADOW_STARTED,
        actor=actor,
        target=version,
        data={"shadow": shadow.pk, "justification": text, "evidence": evidence(shadow)},
    )
    return shadow


@transaction.atomic
def end_shadow(shadow_id: int, *, actor: Actor) -> Shadow:
    shadow = Shadow.objects.select_for_update().select_related("version").get(pk=shadow_id)
    rule = rules.can_end_shadow(shadow.version, actor)
    if not rule and shadow.ended_at is None:
        raise WorkflowError(rule.reason, status=403 if rule.forbidden else 409)
    if shadow.ended_at is None:
        shadow.ended_at = timezone.now()
        shadow.ended_by_username = getattr(actor, "username", "") or "system"
        shadow.save(update_fields=["ended_at", "ended_by_username"])
        audit.record(
            audit.SHADOW_ENDED,
            actor=actor,
            target=shadow.version,
            data={"shadow": shadow.pk, "evidence": evidence(shadow)},
        )
    return shadow


def record_comparison(
    shadow: Shadow, *, champion: ModelVersion, start: datetime, end: datetime, rows: int, agreement: float | None,
    differences: dict[str, Any], performance: dict[str, Any], fairness: dict[str, Any],
) -> ShadowComparison:  # fmt: skip
    """Store one window's comparison with its audit event (call inside the transaction that
    wrote the window's shadow records)."""
    comparison = ShadowComparison.objects.create(
        shadow=shadow,
        version=shadow.version,
        champion=champion,
        window_start=start,
        window_end=end,
        rows=rows,
        agreement=agreement,
        differences=differences,
        performance=performance,
        fairness=fairness,
        created_at=timezone.now(),
    )
    audit.record(
        audit.SHADOW_COMPARED,
        actor=None,
        target=shadow.version,
        data={
            "comparison": comparison.pk,
            "champion": f"v{champion.version}",
            "window": [start.isoformat(), end.isoformat()],
            "rows": rows,
            "agreement": agreement,
            "evidence": evidence(comparison),
        },
    )
    return comparison


def latest_comparisons(version: ModelVersion, limit: int = 30) -> list[ShadowComparison]:
    return list(
        ShadowComparison.objects.filter(version=version).select_related("champion").order_by("-window_start")[:limit]
    )


def running_shadows() -> Any:
    return Shadow.objects.filter(ended_at__isnull=True).select_related("version__registered_model")


def side_by_side(comparison: ShadowComparison) -> list[dict[str, Any]]:
    """The comparison's live metrics, one row per metric: production's and the shadow's value,
    each with its 95% interval (for pages and reports)."""
    perf = comparison.performance or {}
    champion, challenger = perf.get("champion") or {}, perf.get("shadow") or {}
    rows = []
    for name, value in (champion.get("metrics") or {}).items():
        rows.append(
            {
                "metric": name,
                "champion": value,
                "champion_interval": (champion.get("intervals") or {}).get(name),
                "shadow": (challenger.get("metrics") or {}).get(name),
                "shadow_interval": (challenger.get("intervals") or {}).get(name),
            }
        )
    return rows


def display(version: ModelVersion, limit: int = 30) -> list[tuple[ShadowComparison, list[dict[str, Any]]]]:
    return [(c, side_by_side(c)) for c in latest_comparisons(version, limit)]
