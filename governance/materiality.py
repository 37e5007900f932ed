"""Change materiality: each new version is classified against its parent by
written rules when its checks finish, and the class and its reasons are evidence shown in review.

A change is material when any of these holds:
- `first_version`: it has no parent;
- `estimator_family`: the estimators in its artifact (the model classes, not the preprocessing)
  differ from the parent's;
- `features`: input features were added or removed;
- `training_data`: it was trained on other data (another dataset hash);
- `metrics`: a validation metric moved by more than the policy's `material_metric_delta`;
- `tier`: the model's tier in force differs from the tier the parent was approved for.

With the policy's `non_material_single_approval`, a non-material change is approved by one risk
officer at any tier (governance.rules.approvals_required)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from governance.models import ChangeClassification, CheckKind, CheckRun, CheckStatus, Decision, DecisionKind, Policy
from lifecycle.models import ModelVersion

# modules whose classes are models rather than preprocessing
ESTIMATOR_MODULES = (
    "sklearn.linear_model",
    "sklearn.ensemble",
    "sklearn.tree",
    "sklearn.svm",
    "sklearn.neighbors",
    "sklearn.neural_network",
    "sklearn.naive_bayes",
    "sklearn.discriminant_analysis",
    "sklearn.gaussian_process",
    "xgboost",
    "lightgbm",
    "catboost",
)


def family(version: ModelVersion) -> list[str]:
    types = {t for t in [*version.artifact_types, version.estimator_class] if isinstance(t, str)}
    return sorted(t for t in types if t.startswith(ESTIMATOR_MODULES))


def _validation_metrics(version: ModelVersion) -> dict[str, float]:
    check = (
        CheckRun.objects.filter(
            version=version, kind=CheckKind.VALIDATION, status__in=[CheckStatus.PASSED, CheckStatus.FAILED]
        )
        .order_by("-round")
        .first()
    )
    metrics = (check.metrics or {}).get("metrics", {}) if check is not None else {}
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


def _approved_tier(version: ModelVersion) -> str:
    decision = (
        Decision.objects.filter(version=version, kind=DecisionKind.APPROVE)
        .exclude(risk_tier="")
        .order_by("-pk")
        .first()
    )
    return decision.risk_tier if decision is not None else ""


def classify(version: ModelVersion, policy: Policy) -> tuple[bool, list[dict[str, Any]]]:
    """(material, reasons): every rule with its verdict and what it saw."""
    parent = version.parent
    if parent is None:
        return True, [{"rule": "first_version", "material": True, "detail": "No parent version to compare with."}]
    reasons = []
    mine, theirs = family(version), family(parent)
    reasons.append(
        {
            "rule": "estimator_family",
            "material": mine != theirs,
            "detail": f"{', '.join(theirs) or 'none'} → {', '.join(mine) or 'none'}",
        }
    )
    added = sorted(set(version.feature_names) - set(parent.feature_names))
    removed = sorted(set(parent.feature_names) - set(version.feature_names))
    reasons.append(
        {
            "rule": "features",
            "material": bool(added or removed),
            "detail": f"added: {', '.join(added) or 'none'}; removed: {', '.join(removed) or 'none'}",
        }
    )
    same_data = version.training_dataset.sha256 == parent.training_dataset.sha256
    reasons.append(
        {
            "rule": "training_data",
            "material": not same_data,
            "detail": f"{parent.training_dataset} → {version.training_dataset}"
            + (" (same content)" if same_data else ""),
        }
    )
    now, before = _validation_metrics(version), _validation_metrics(parent)
    moved = {k: round(now[k] - before[k], 6) for k in sorted(set(now) & set(before))}
    beyond = {k: d for k, d in moved.items() if abs(d) > policy.material_metric_delta}
    reasons.append(
        {
            "rule": "metrics",
            "material": bool(beyond) or not moved,
            "detail": (
                f"changes {moved} (policy delta {policy.material_metric_delta})"
                if moved
                else "no validation metrics to compare (treated as material)"
            ),
        }
    )
    tier, approved = version.registered_model.effective_tier, _approved_tier(parent)
    reasons.append(
        {
            "rule": "tier",
            "material": tier != approved,
            "detail": f"parent approved for {approved or 'no tier (never approved)'}; now {tier}",
        }
    )
    return any(r["material"] for r in reasons), reasons


def record_classification(version: ModelVersion, policy: Policy) -> ChangeClassification:
    """Classify the version's current round and store it; the caller's audit event (the
    workflow's, as the version enters review) carries its evidence, in the same transaction."""
    material, reasons = classify(version, policy)
    return ChangeClassification.objects.create(
        version=version,
        round=version.review_round,
        parent=version.parent,
        material=material,
        reasons=reasons,
        policy_delta=policy.material_metric_delta,
        created_at=timezone.now(),
    )


def current(version: ModelVersion) -> ChangeClassification | None:
    return ChangeClassification.objects.filter(version=version, round=version.review_round).first()


def classification_data(version: ModelVersion) -> dict[str, Any] | None:
    row = current(version)
    if row is None:
        return None
    return {"material": row.material, "reasons": row.reasons, "parent": row.parent_id, "round": row.round}
