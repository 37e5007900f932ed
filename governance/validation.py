"""Independent validation (docs/design.md, "Model risk management"): a validator's report on one
review round of a version, before its approval. The rules are in governance.rules (can_validate,
validation_allows_approval); this module writes the report, its audit event and, for
`fit_with_conditions`, one finding per condition, in one transaction."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from core import audit
from core.actors import Actor, person
from core.evidence import content_hash, evidence, row_values
from governance import findings, rules
from governance.errors import WorkflowError
from governance.models import VALIDATION_SECTIONS, Conclusion, Severity, ValidationReport
from lifecycle.errors import Forbidden, NotFound, SubmissionInvalid
from lifecycle.models import ModelVersion

MAX_SECTION_CHARS = 50_000
MAX_CONDITIONS = 50
MAX_CONDITION_CHARS = 2_000
# a condition is something to put right while the version runs: owned, due in 30 days
CONDITION_SEVERITY = Severity.MEDIUM


def clean_report(conclusion: Any, sections: Any, conditions: Any) -> tuple[str, dict[str, str], list[str]]:
    """The report's input, checked: SubmissionInvalid naming every bad field."""
    errors: dict[str, list[str]] = {}
    if conclusion not in Conclusion.values:
        errors["conclusion"] = [f"Choose one of {', '.join(Conclusion.values)}."]
    clean_sections: dict[str, str] = {}
    if not isinstance(sections, dict):
        errors["sections"] = ["An object with the sections " + ", ".join(n for n, _ in VALIDATION_SECTIONS) + "."]
    else:
        unknown = sorted(set(sections) - {n for n, _ in VALIDATION_SECTIONS})
        if unknown:
            errors["sections"] = [f"Unknown section(s): {', '.join(map(str, unknown))}."]
        for name, title in VALIDATION_SECTIONS:
            text = sections.get(name)
            if not isinstance(text, str) or not text.strip():
                errors[f"sections.{name}"] = [f"Write the section {title!r}."]
            elif len(text) > MAX_SECTION_CHARS:
                errors[f"sections.{name}"] = [f"At most {MAX_SECTION_CHARS} characters."]
            else:
                clean_sections[name] = text.strip()
    clean_conditions: list[str] = []
    if conditions is None:
        conditions = []
    if not isinstance(conditions, list) or not all(isinstance(c, str) for c in conditions):
        errors["conditions"] = ["A list of texts, one per condition."]
    else:
        clean_conditions = [c.strip() for c in conditions if c.strip()]
        if len(clean_conditions) > MAX_CONDITIONS or any(len(c) > MAX_CONDITION_CHARS for c in clean_conditions):
            errors["conditions"] = [f"At most {MAX_CONDITIONS} conditions of {MAX_CONDITION_CHARS} characters."]
        elif conclusion == Conclusion.FIT_WITH_CONDITIONS and not clean_conditions:
            errors["conditions"] = ["A conclusion fit_with_conditions needs at least one condition."]
        elif conclusion in (Conclusion.FIT_FOR_USE, Conclusion.NOT_FIT) and clean_conditions:
            errors["conditions"] = ["Conditions are given only with the conclusion fit_with_conditions."]
    if errors:
        raise SubmissionInvalid(errors)
    return str(conclusion), clean_sections, clean_conditions


@transaction.atomic
def record_validation(
    version_id: int, *, actor: Actor, conclusion: Any, sections: Any, conditions: Any = None
) -> ValidationReport:
    """Write a validator's report on the version's current review round (the rules:
    governance.rules.can_validate). Each condition of `fit_with_conditions` opens a finding on
    the version, owned by the model's owner."""
    version = ModelVersion.objects.select_for_update().select_related("registered_model").filter(pk=version_id).first()
    if version is None:
        raise NotFound("There is no such version.")
    rule = rules.can_validate(version, actor)
    if not rule:
        raise Forbidden(rule.reason) if rule.forbidden else WorkflowError(rule.reason)
    conclusion, sections, conditions = clean_report(conclusion, sections, conditions)
    report = ValidationReport.objects.create(
        version=version,
        round=version.review_round,
        validator=person(actor),
        validator_username=person(actor).get_username(),
        conclusion=conclusion,
        sections=sections,
        conditions=conditions,
        created_at=timezone.now(),
    )
    audit.record(
        audit.VALIDATION_RECORDED,
        actor=actor,
        target=version,
        data={
            "report": report.pk,
            "round": report.round,
            "conclusion": conclusion,
            "conditions": len(conditions),
            "evidence": evidence(report),
        },
    )
    for number, condition in enumerate(conditions, start=1):
        findings.open_finding(
            version_id=version.pk,
            key=f"validation:{report.pk}:{number}",
            severity=CONDITION_SEVERITY,
            title=f"Validation condition {number}: {condition}",
            description=condition,
            source=f"validation report #{report.pk} by {report.validator_username}",
            actor=actor,
        )
    return report


def report_sha256(report: ValidationReport) -> str:
    """The report's content hash, as its audit event recorded it (bound into the manifest)."""
    return content_hash(row_values(report))


def report_data(report: ValidationReport) -> dict[str, Any]:
    return {
        "id": report.pk,
        "round": report.round,
        "validator": report.validator_username,
        "conclusion": report.conclusion,
        "sections": report.sections,
        "conditions": report.conditions,
        "findings": [
            {"id": f.pk, "title": f.title, "open": f.is_open}
            for f in report.version.findings.filter(key__startswith=f"validation:{report.pk}:").order_by("pk")
        ],
        "created_at": report.created_at,
        "sha256": report_sha256(report),
    }


def reports_of(version: ModelVersion) -> list[ValidationReport]:
    return list(ValidationReport.objects.filter(version=version).select_related("version").order_by("created_at", "pk"))
