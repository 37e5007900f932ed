"""Actions never vanish: each action that applies to a version's status is shown, and
the ones the rules refuse now are shown disabled with the rule's own message
(governance.rules, the one home of each rule; the workflow asks the same predicates)."""

from __future__ import annotations

from dataclasses import dataclass

from core.actors import Actor
from core.roles import RISK_OFFICERS, has_role
from governance import rules
from lifecycle.models import ModelVersion, Status

# the statuses in which each action of rules.ACTIONS is one a reviewer would look for
APPLIES: dict[str, frozenset[str]] = {
    "approve": frozenset({Status.IN_REVIEW}),
    "reject": frozenset({Status.IN_REVIEW}),
    "request_changes": frozenset({Status.IN_REVIEW}),
    "deploy": frozenset({Status.APPROVED}),
    "rollback": frozenset({Status.PRODUCTION}),
    "suspend": frozenset({Status.APPROVED, Status.PRODUCTION}),
    "reinstate": frozenset({Status.SUSPENDED}),
    "recertify": frozenset({Status.APPROVED, Status.PRODUCTION}),
    "shadow": frozenset({Status.APPROVED}),
    "retire": frozenset({Status.APPROVED, Status.PRODUCTION, Status.SUSPENDED}),
}


@dataclass(frozen=True)
class Blocked:
    code: str
    reason: str


def blocked_actions(version: ModelVersion, actor: Actor) -> list[Blocked]:
    """The actions that apply to the version's status but that `actor` may not take now, each
    with the refusing rule's message, in the order pages show the buttons."""
    if not has_role(actor, RISK_OFFICERS):
        return []
    found = []
    for code, rule in rules.ACTIONS:
        if version.status not in APPLIES.get(code, frozenset()):
            continue
        answer = rule(version, actor)
        if not answer:
            found.append(Blocked(code, answer.reason))
    return found
