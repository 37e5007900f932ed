"""The ledger proven both ways (docs/ledger.md): every evidence and governed row, and every role
membership, must still say what the audit chain recorded of it (core.evidence), and every row
the chain recorded must still exist. Reads every layer's tables, so it lives at the top."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.models import Group
from django.db import models

from core import ledger
from core.evidence import Recorded, columns, content_hash, differs, latest_row_hashes
from core.role_changes import MEMBERSHIP, membership_key, membership_values
from core.roles import ALL_ROLES


def evidence_tables() -> list[tuple[type[models.Model], models.Q]]:
    """The tables whose rows are proven one by one by the chain (core.ledger: evidence and
    governed, proof by event), and which of their rows are proven now."""
    return [(entry.model, entry.rows()) for entry in ledger.proven_entries()]


@dataclass
class EvidenceVerification:
    ok: bool
    rows_checked: int
    message: str
    failures: list[str] = field(default_factory=list)
    # row keys that failed, so a report can refuse to print them as proven
    broken_rows: set[str] = field(default_factory=set)


def _check(key: str, values: dict[str, object], recorded: Recorded | None) -> str:
    if recorded is None:
        return f"{key} was never recorded in the audit trail"
    if differs(values, recorded):
        return f"{key} differs from what audit event #{recorded.seq} recorded"
    return ""


def verify_evidence(limit: int = 20) -> EvidenceVerification:
    """Prove the ledger both ways: every proven row (core.ledger) equals the content hash of the
    latest audit event that recorded it, every row the chain recorded still exists (a deletion
    is named with the event that recorded the row), and no proven row exists that no event
    recorded. Names the first problems (at most `limit`). One pass over the chain and one over
    each table: the cost grows with the rows."""
    latest = latest_row_hashes()
    failures: list[str] = []
    broken: set[str] = set()
    checked = 0
    for model, which in evidence_tables():
        label = model._meta.label_lower
        proven_ids = set(model._default_manager.filter(which).values_list("pk", flat=True)) if which else None
        present: set[str] = set()
        for values in model._default_manager.order_by("pk").values(*columns(model)).iterator(chunk_size=2000):
            key = f"{label}:{values['id']}"
            present.add(key)
            recorded = latest.get(key)
            if recorded is None and proven_ids is not None and values["id"] not in proven_ids:
                continue  # not evidence yet (a queued check, a live key)
            checked += 1
            problem = _check(key, values, recorded)
            if problem:
                broken.add(key)
                failures.append(problem)
        prefix = label + ":"
        for key in sorted(k for k in latest if k.startswith(prefix) and k not in present):
            checked += 1
            broken.add(key)
            failures.append(f"{key} was deleted (audit event #{latest[key].seq} recorded it)")
    members = {
        (user_id, role)
        for role, user_id in Group.objects.filter(name__in=ALL_ROLES).values_list("name", "user__id")
        if user_id is not None
    }
    recorded_members = {key for key in latest if key.startswith(MEMBERSHIP + ":")}
    for user_id, role in sorted(members):
        recorded_members.discard(membership_key(user_id, role))
        checked += 1
        key = membership_key(user_id, role)
        problem = _check(key, membership_values(user_id, role, True), latest.get(key))
        if problem:
            broken.add(key)
            failures.append(f"the {role} role of user #{user_id}: {problem}")
    for key in sorted(recorded_members):  # recorded as granted, but no longer a member
        _, member, role = key.split(":")
        recorded = latest[key]
        checked += 1
        if content_hash(membership_values(int(member), role, False), recorded.fields) != recorded.sha256:
            broken.add(key)
            failures.append(f"the {role} role of user #{member} was removed without a recorded revocation")
    if failures:
        more = f" (and {len(failures) - limit} more)" if len(failures) > limit else ""
        return EvidenceVerification(
            False, checked, "Evidence BROKEN: " + "; ".join(failures[:limit]) + more, failures, broken
        )
    return EvidenceVerification(True, checked, f"{checked} evidence rows match the audit trail")
