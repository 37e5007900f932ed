"""What an approval is bound to: the hashes of the artifact, the model card and the check
results the officer saw, and the effective risk tier. An approval whose bindings no longer match
is void, and a void approval serves nothing."""

from __future__ import annotations

import hashlib
from typing import Any

from core.canonical import canonical_json
from core.evidence import content_hash, row_values
from governance import manifest
from governance.models import CheckKind, CheckRun, CheckStatus, Decision, DecisionKind, ShadowComparison
from lifecycle.models import ModelVersion


def sha256_json(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def round_checks(version: ModelVersion) -> list[CheckRun]:
    return list(CheckRun.objects.filter(version=version, round=version.review_round).order_by("kind"))


def checks_hash(version: ModelVersion) -> str:
    return sha256_json(
        [{"kind": c.kind, "status": c.status, "metrics": c.metrics, "policy": c.policy} for c in round_checks(version)]
    )


def profile_hash(version: ModelVersion) -> str:
    """The hash of the round's reference profile, recomputed from what is stored ("" when the
    round has none: versions approved before profiles existed bound nothing)."""
    check = CheckRun.objects.filter(version=version, round=version.review_round, kind=CheckKind.PROFILE).first()
    if check is None or "profile" not in check.metrics:
        return ""
    return sha256_json(check.metrics["profile"])


def personal_hash(version: ModelVersion) -> str:
    """The hash of the version's personal-data declaration ("" when it declares none, so
    approvals given before declarations existed still hold)."""
    if not version.personal_features and not version.subject_field:
        return ""
    return sha256_json({"personal_features": sorted(version.personal_features), "subject_field": version.subject_field})


def current(version: ModelVersion) -> dict[str, str]:
    """What an approval given now would bind: the hashes of the artifact, the card, the round's
    check results (ONNX file hash included) and its reference profile, and the model's
    effective risk tier."""
    return {
        "artifact_sha256": version.artifact_sha256,
        "card_sha256": version.card.content_hash(),
        "checks_sha256": checks_hash(version),
        "profile_sha256": profile_hash(version),
        "personal_sha256": personal_hash(version),
        "risk_tier": version.registered_model.effective_tier,
        "manifest_sha256": manifest.sha256(version),
    }


BINDING_NAMES = {
    "artifact_sha256": "the artifact",
    "card_sha256": "the model card",
    "checks_sha256": "the check results",
    "profile_sha256": "the reference profile",
    "personal_sha256": "the personal-data declaration",
    "risk_tier": "the effective risk tier",
    "manifest_sha256": "the version manifest",
}


def comparisons_hash(version_id: int, *, through: int | None) -> str:
    """SHA-256 over the content hashes of the version's shadow comparisons up to id `through`
    (as stored now), in order; "" when there are none."""
    if through is None:
        return ""
    rows = ShadowComparison.objects.filter(version_id=version_id, pk__lte=through).order_by("pk")
    return sha256_json([{"id": c.pk, "sha256": content_hash(row_values(c))} for c in rows])


def shadow_binding(version: ModelVersion) -> dict[str, Any]:
    """What an approval given now binds of the shadow evidence: the hash of every comparison so
    far and the last one's id, so windows compared later add evidence without voiding it."""
    last = ShadowComparison.objects.filter(version=version).order_by("-pk").values_list("pk", flat=True).first()
    return {"shadow_through": last, "shadow_sha256": comparisons_hash(version.pk, through=last)}


def shadow_changed(decision: Decision) -> bool:
    """Do the shadow comparisons the decision bound no longer hash as they did?"""
    if not decision.shadow_sha256:
        return False
    return comparisons_hash(decision.version_id, through=decision.shadow_through) != decision.shadow_sha256


def _differs(decision: Decision, key: str, value: str) -> bool:
    # a decision given before manifests existed binds the hashes it has (docs/ledger.md)
    if key == "manifest_sha256" and not decision.manifest_sha256:
        return False
    return bool(getattr(decision, key) != value)


def changed_since(decision: Decision, bound: dict[str, str]) -> list[str]:
    """What changed after the decision was given, in words (empty: it still binds)."""
    changed = [BINDING_NAMES[key] for key, value in bound.items() if _differs(decision, key, value)]
    changed += ["the shadow comparisons"] if shadow_changed(decision) else []
    # the manifest covers the rest: named only when nothing more precise is
    return [c for c in changed if c != BINDING_NAMES["manifest_sha256"]] or changed


def failing_checks(version: ModelVersion) -> list[CheckRun]:
    """Gating checks of the current round that did not pass. A check that was advisory at
    submission gates if the policy it recorded makes it gating for the model's tier now (an
    officer may raise the tier during review)."""
    tier = version.registered_model.effective_tier
    return [c for c in round_checks(version) if c.status != CheckStatus.PASSED and (c.gating or _gates_now(c, tier))]


def _gates_now(check: CheckRun, tier: str) -> bool:
    return check.kind == CheckKind.REPRODUCIBILITY and bool(check.policy.get(f"reproducibility_gating_{tier}"))


def is_void(decision: Decision, bound: dict[str, str]) -> bool:
    return any(_differs(decision, key, value) for key, value in bound.items()) or shadow_changed(decision)


def valid_approvals(version: ModelVersion) -> list[Decision]:
    """Approvals of the current round, one per officer, still bound to what is there now."""
    bound = current(version)
    approvals = Decision.objects.filter(version=version, round=version.review_round, kind=DecisionKind.APPROVE)
    seen: dict[int, Decision] = {}
    for decision in approvals:
        if not is_void(decision, bound):
            seen.setdefault(decision.actor_id, decision)
    return list(seen.values())
