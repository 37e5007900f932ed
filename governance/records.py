"""A version's full public record: the registry's part plus its checks and decisions. Plain
data (no HTTP): the API renders it and the compliance reports embed exactly the same."""

from __future__ import annotations

from typing import Any

from governance import materiality, review, rules, validation
from lifecycle.models import ModelVersion
from lifecycle.records import version_record


def version_data(v: ModelVersion) -> dict[str, Any]:
    """The full public record of a version."""
    return {
        **version_record(v),
        "checks": [
            {
                "kind": c.kind,
                "round": c.round,
                "status": c.status,
                "gating": c.gating,
                "metrics": c.metrics,
                "policy": c.policy,
                "warning": c.warning,
                "error": c.error,
                "started_at": c.started_at,
                "finished_at": c.finished_at,
                "duration_ms": c.duration_ms,
            }
            for c in v.checks.filter(round=v.review_round).order_by("kind")
        ],
        "decisions": [
            {
                "kind": row["decision"].kind,
                "round": row["decision"].round,
                "by": row["decision"].actor_username,
                "at": row["decision"].created_at,
                "justification": row["decision"].justification,
                "override": row["decision"].override,
                "void": row["void"],
                "artifact_sha256": row["decision"].artifact_sha256,
                "card_sha256": row["decision"].card_sha256,
                "checks_sha256": row["decision"].checks_sha256,
            }
            for row in review.decisions_for_display(v)
        ],
        # the retraining requests this version answered (monitoring -> the next version)
        "answers_retraining_requests": [r.pk for r in v.answers.order_by("pk")],
        # change materiality against the parent, for the current round
        "change": materiality.classification_data(v),
        # independent validation: every report, the one in force (bound in the manifest) named
        "validation": {
            "in_force": getattr(rules.latest_validation(v), "pk", None),
            "reports": [validation.report_data(r) for r in validation.reports_of(v)],
        },
    }
