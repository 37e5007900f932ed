"""The model risk management records (docs/decisions-mrm.md): independent
validation reports, overlays, change classifications, retraining requests and fairness
requirements. Django finds them through governance.models, which imports them."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from core import ledger


class Conclusion(models.TextChoices):
    FIT_FOR_USE = "fit_for_use", "Fit for use"
    FIT_WITH_CONDITIONS = "fit_with_conditions", "Fit with conditions"
    NOT_FIT = "not_fit", "Not fit"


VALIDATION_SECTIONS: tuple[tuple[str, str], ...] = (
    ("conceptual_soundness", "Conceptual soundness"),
    ("data", "Data"),
    ("outcomes_analysis", "Outcomes analysis (benchmark and sensitivity)"),
    ("limitations", "Limitations"),
    ("compensating_controls", "Compensating controls"),
)


@ledger.evidence()
class ValidationReport(models.Model):
    """A validator's independent report on one review round of a version (docs/design.md, "Model risk
    management"): written once with its audit event, never changed; a later report supersedes
    it. The latest report of the round is bound into the version manifest; `not_fit` blocks
    approval and each condition of `fit_with_conditions` opened a finding."""

    version = models.ForeignKey("lifecycle.ModelVersion", on_delete=models.PROTECT, related_name="validations")
    round = models.PositiveIntegerField()
    validator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    validator_username = models.CharField(max_length=150)
    conclusion = models.CharField(max_length=20, choices=Conclusion.choices)
    sections = models.JSONField(help_text="{section: text} for each of VALIDATION_SECTIONS")
    # each condition opened a finding keyed "validation:<report id>:<n>" (n from 1)
    conditions = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(conclusion__in=[c.value for c in Conclusion]), name="validation_conclusion_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"Validation of {self.version} by {self.validator_username}: {self.conclusion}"

    def section_list(self) -> list[dict[str, str]]:
        return [{"name": n, "title": t, "text": self.sections.get(n, "")} for n, t in VALIDATION_SECTIONS]


class OverlayKind(models.TextChoices):
    LIMITATION = "limitation", "Limitation"
    OVERLAY = "overlay", "Overlay (post-model adjustment)"


@ledger.governed()
class Overlay(models.Model):
    """The limitations and overlays register of a model (docs/design.md, "Model risk management"): a
    known limitation, or a post-model adjustment made to its answers, with an owner, a reason,
    the adjustment and an expiry. In force from `starts_at` until it expires or is withdrawn;
    shown on every decision receipt and report while in force. Its expiry opens a finding
    (governance.overlays.open_expiry_findings, a periodic task)."""

    registered_model = models.ForeignKey("lifecycle.RegisteredModel", on_delete=models.PROTECT, related_name="overlays")
    kind = models.CharField(max_length=12, choices=OverlayKind.choices)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField()
    adjustment = models.TextField()
    starts_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    recorded_by_username = models.CharField(max_length=150)
    created_at = models.DateTimeField()
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_by_username = models.CharField(max_length=150, blank=True)
    withdraw_justification = models.TextField(blank=True)
    # the finding its expiry opened (set once, by the periodic task, with its event)
    expiry_finding = models.ForeignKey(
        "governance.Finding", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["registered_model", "expires_at", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(expires_at__gt=models.F("starts_at")), name="overlay_expires_after_start"
            ),
            models.CheckConstraint(
                condition=models.Q(withdrawn_at__isnull=True) | ~models.Q(withdraw_justification=""),
                name="withdrawn_overlay_has_justification",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} on {self.registered_model_id}"

    def in_force_at(self, moment: Any) -> bool:
        return self.starts_at <= moment < self.expires_at and (self.withdrawn_at is None or moment < self.withdrawn_at)


@ledger.evidence()
class ChangeClassification(models.Model):
    """How a version's change from its parent was classified when its checks finished (one per
    review round): material or not, and the written rules that made it so."""

    version = models.ForeignKey("lifecycle.ModelVersion", on_delete=models.PROTECT, related_name="classifications")
    round = models.PositiveIntegerField()
    parent = models.ForeignKey(
        "lifecycle.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    material = models.BooleanField()
    # [{"rule": ..., "material": bool, "detail": ...}] for every rule, in order
    reasons = models.JSONField()
    policy_delta = models.FloatField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["version", "round"]
        constraints = [models.UniqueConstraint(fields=["version", "round"], name="one_classification_per_round")]

    def __str__(self) -> str:
        return f"{'material' if self.material else 'non-material'} change: {self.version_id} round {self.round}"


@ledger.governed()
class RetrainingRequest(models.Model):
    """A retraining asked for from a finding, assigned to the model's owner and
    closed by a new version that names it (its lineage: `answered_by`)."""

    finding = models.ForeignKey("governance.Finding", on_delete=models.PROTECT, related_name="retraining_requests")
    registered_model = models.ForeignKey(
        "lifecycle.RegisteredModel", on_delete=models.PROTECT, related_name="retraining_requests"
    )
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField()
    requested_by_username = models.CharField(max_length=150)
    opened_at = models.DateTimeField()
    answered_by = models.ForeignKey(
        "lifecycle.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="answers"
    )
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(closed_at__isnull=True, answered_by__isnull=True)
                | models.Q(closed_at__isnull=False, answered_by__isnull=False),
                name="retraining_closed_by_a_version",
            )
        ]

    def __str__(self) -> str:
        return f"retraining request #{self.pk} of {self.registered_model_id}"

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


# a model's fairness requirements, changed only by governance.services.set_fairness_requirements,
# each change an audit event with its content hash
@ledger.governed()
class FairnessRequirement(models.Model):
    """What risk officers require of a model's fairness check: the sensitive features every
    version must measure (its data scientist may add others, never leave one out), and the small
    groups they waived, each with its justification ({feature: {group: justification}})."""

    registered_model = models.OneToOneField(
        "lifecycle.RegisteredModel", on_delete=models.PROTECT, related_name="fairness_requirement"
    )
    features = models.JSONField(default=list, blank=True)
    waivers = models.JSONField(default=dict, blank=True)
    justification = models.TextField()
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"fairness requirements of {self.registered_model}"
