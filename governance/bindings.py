"""What an approval is bound to: the hashes of the artifact, the model card and the check
results the officer saw. An approval whose hashes no longer match is void."""

from __future__ import annotations

import hashlib
from typing import Any

from core.canonical import canonical_json
from governance.models import CheckRun, CheckStatus, Decision, DecisionKind
from lifecycle.models import ModelVersion


def sha256_json(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def round_checks(version: ModelVersion) -> list[CheckRun]:
    return list(CheckRun.objects.filter(version=version, round=version.review_round).order_by("kind"))


def checks_hash(version: ModelVersion) -> str:
    return sha256_json(
        [{"kind": c.kind, "status": c.status, "metrics": c.metrics, "policy": c.policy} for c in round_checks(version)]
    )


def current(version: ModelVersion) -> dict[str, str]:
    return {
        "artifact_sha256": version.artifact_sha256,
        "card_sha256": version.card.content_hash(),
        "checks_sha256": checks_hash(version),
    }


def failing_checks(version: ModelVersion) -> list[CheckRun]:
    """Gating checks of the current round that did not pass."""
    return [c for c in round_checks(version) if c.gating and c.status != CheckStatus.PASSED]


def is_void(decision: Decision, bound: dict[str, str]) -> bool:
    return any(getattr(decision, key) != value for key, value in bound.items())


def valid_approvals(version: ModelVersion) -> list[Decision]:
    """Approvals of the current round, one per officer, still bound to what is there now."""
    bound = current(version)
    approvals = Decision.objects.filter(version=version, round=version.review_round, kind=DecisionKind.APPROVE)
    seen: dict[int, Decision] = {}
    for decision in approvals:
        if not is_void(decision, bound):
            seen.setdefault(decision.actor_id, decision)
    return list(seen.values())
