from __future__ import annotations

from django.conf import settings
from django.db import models

from core import ledger
from lifecycle.models import ModelVersion, RiskTier


@ledger.governed()
class Policy(models.Model):
    """Thresholds and approvals per risk tier, edited by risk officers in the admin (each change
    is an audit event). Every CheckRun copies the values it used."""

    name = models.SlugField(max_length=50, unique=True, default="default")
    min_accuracy = models.FloatField(default=0.70)
    min_balanced_accuracy = models.FloatField(default=0.60)
    min_roc_auc = models.FloatField(default=0.70)
    min_f1 = models.FloatField(default=0.60)
    max_mae = models.FloatField(null=True, blank=True, help_text="Regression; empty means no bound.")
    max_rmse = models.FloatField(null=True, blank=True, help_text="Regression; empty means no bound.")
    min_r2 = models.FloatField(default=0.0)
    max_fairness_difference = models.FloatField(default=0.10)
    min_fairness_ratio = models.FloatField(default=0.80)
    min_group_size = models.PositiveIntegerField(default=30)
    min_reproducibility_agreement = models.FloatField(default=0.95)
    # No gate passes for lack of evidence: a model with no sensitive feature named fails the
    # fairness check unless its effective tier's waiver is set here (a change is audited).
    fairness_waived_low = models.BooleanField(
        default=False, help_text="Low-tier models without a sensitive feature pass fairness (waived)."
    )
    fairness_waived_medium = models.BooleanField(
        default=False, help_text="Medium-tier models without a sensitive feature pass fairness (waived)."
    )
    fairness_waived_high = models.BooleanField(
        default=False, help_text="High-tier models without a sensitive feature pass fairness (waived)."
    )
    # Reproducibility below the agreement fails; for these tiers the failure blocks approval.
    reproducibility_gating_low = models.BooleanField(default=False, help_text="A failed refit blocks approval.")
    reproducibility_gating_medium = models.BooleanField(default=False, help_text="A failed refit blocks approval.")
    reproducibility_gating_high = models.BooleanField(default=True, help_text="A failed refit blocks approval.")
    approvals_low = models.PositiveSmallIntegerField(default=1)
    approvals_medium = models.PositiveSmallIntegerField(default=1)
    approvals_high = models.PositiveSmallIntegerField(default=2)
    # Monitoring after go-live (docs/design.md, "Monitoring"): PSI of a feature or of the prediction
    # at or above psi_warn warns, at or above psi_alert alerts and opens a finding.
    psi_warn = models.FloatField(default=0.10)
    psi_alert = models.FloatField(default=0.25)
    # A monitoring window closes once its time (MONITOR_WINDOW) is up and it holds this many rows,
    # or once it spans monitor_max_window_days, whichever comes first: a low-volume model gets
    # longer windows rather than none. Drift alerts need this many rows.
    monitor_min_rows = models.PositiveIntegerField(
        default=500, help_text="Rows a monitoring window needs to close early and to raise drift alerts."
    )
    monitor_max_window_days = models.PositiveIntegerField(
        default=30, help_text="The longest monitoring window: it closes then whatever its rows."
    )
    # A shift too small for PSI's bins warns too when it is both certain and material (KS, or a
    # chi-square over the categories, below this p-value, with at least this effect size).
    drift_max_pvalue = models.FloatField(default=0.001)
    drift_min_ks_statistic = models.FloatField(default=0.05)
    drift_min_category_shift = models.FloatField(
        default=0.05, help_text="Share of rows moved between categories (total variation distance)."
    )
    # An approval lapses after this many days unless recertified; reminders go out before.
    recertify_after_days_low = models.PositiveIntegerField(default=730)
    recertify_after_days_medium = models.PositiveIntegerField(default=365)
    recertify_after_days_high = models.PositiveIntegerField(default=180)
    recertify_reminder_days = models.PositiveIntegerField(default=30)
    on_expiry = models.CharField(
        max_length=10,
        choices=[("suspend", "Suspend the version"), ("warn", "Refuse to serve and warn, without suspending")],
        default="suspend",
    )
    # Personal data in the prediction log is erased this long after its month ends (never less
    # than the AI Act's six months of logs, art. 26(6)), unless a legal hold is in force.
    personal_data_retention_days = models.PositiveIntegerField(default=730)
    # Model risk management: an independent validation report (governance.validation) must
    # exist for the current review round before a version of a model of these tiers is approved.
    validation_required_low = models.BooleanField(default=False, help_text="Approval needs a validation report.")
    validation_required_medium = models.BooleanField(default=False, help_text="Approval needs a validation report.")
    validation_required_high = models.BooleanField(default=True, help_text="Approval needs a validation report.")
    # Change materiality (governance.materiality): a validation metric moving more than this
    # between a version and its parent makes the change material; with the lighter path on, a
    # non-material change is approved by one officer at any tier.
    material_metric_delta = models.FloatField(default=0.02)
    non_material_single_approval = models.BooleanField(
        default=False, help_text="A non-material change needs one approval whatever the tier."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "policies"
        constraints = [
            models.CheckConstraint(condition=models.Q(approvals_low__gte=1), name="policy_approvals_low_min_1"),
            models.CheckConstraint(
                condition=models.Q(personal_data_retention_days__gte=183), name="policy_retention_at_least_183_days"
            ),
            models.CheckConstraint(condition=models.Q(approvals_medium__gte=1), name="policy_approvals_medium_min_1"),
            models.CheckConstraint(condition=models.Q(approvals_high__gte=2), name="policy_approvals_high_min_2"),
        ]

    def __str__(self) -> str:
        return f"Policy {self.name}"

    def approvals_for(self, tier: str) -> int:
        return {"low": self.approvals_low, "medium": self.approvals_medium, "high": self.approvals_high}[tier]

    def recertify_after_days(self, tier: str) -> int:
        return int(getattr(self, f"recertify_after_days_{RiskTier(tier).value}"))

    def validation_required_for(self, tier: str) -> bool:
        return bool(getattr(self, f"validation_required_{RiskTier(tier).value}"))

    def fairness_waived_for(self, tier: str) -> bool:
        return bool(getattr(self, f"fairness_waived_{RiskTier(tier).value}"))

    def gates(self, kind: str, *, tier: str) -> bool:
        """Whether a check of this kind blocks approval for a model of this tier (ONNX never
        does: see governance.workflow.ADVISORY_CHECKS)."""
        if kind == CheckKind.REPRODUCIBILITY:
            return bool(getattr(self, f"reproducibility_gating_{RiskTier(tier).value}"))
        return True

    def values(self) -> dict[str, float | int | None]:
        return {f.name: getattr(self, f.name) for f in self._meta.fields if f.name not in ("id", "name", "updated_at")}


class CheckKind(models.TextChoices):
    VALIDATION = "validation", "Validation"
    FAIRNESS = "fairness", "Fairness"
    REPRODUCIBILITY = "reproducibility", "Reproducibility"
    ONNX = "onnx", "ONNX engine"
    # The reference profile monitoring compares live traffic with (docs/design.md, "Monitoring").
    PROFILE = "profile", "Reference profile"


class CheckStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    ERROR = "error", "Error"
    # Not enough evidence to decide (e.g. fewer than two groups large enough to compare): it
    # blocks approval like a failure, until an explicit, audited override.
    INCONCLUSIVE = "inconclusive", "Inconclusive"


FINISHED_CHECK_STATUSES = (CheckStatus.PASSED, CheckStatus.FAILED, CheckStatus.ERROR, CheckStatus.INCONCLUSIVE)


@ledger.evidence(
    which=lambda: models.Q(status__in=FINISHED_CHECK_STATUSES),
    runtime=("SELECT", "INSERT", "UPDATE"),
    reason="written queued, proven once finished",
)
class CheckRun(models.Model):
    """One check of one submission round of a version: inputs, metrics, the policy values used,
    verdict and timings. A re-delivered task finds it finished and does nothing."""

    version = models.ForeignKey("lifecycle.ModelVersion", on_delete=models.PROTECT, related_name="checks")
    round = models.PositiveIntegerField(help_text="Which submission of the version this check belongs to.")
    kind = models.CharField(max_length=20, choices=CheckKind.choices)
    status = models.CharField(max_length=20, choices=CheckStatus.choices, default=CheckStatus.QUEUED)
    gating = models.BooleanField(default=True, help_text="A failure blocks approval without override.")
    warning = models.TextField(blank=True)
    inputs = models.JSONField(default=dict)
    metrics = models.JSONField(default=dict)
    policy = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["version", "round", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["version", "round", "kind"], name="one_check_per_kind_per_round")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} check of {self.version} (round {self.round}): {self.status}"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_CHECK_STATUSES


class DecisionKind(models.TextChoices):
    APPROVE = "approve", "Approval"
    REJECT = "reject", "Rejected"
    REQUEST_CHANGES = "request_changes", "Changes requested"
    DEPLOY = "deploy", "Deployed"
    ROLLBACK = "rollback", "Rolled back"
    RETIRE = "retire", "Retired"
    SUSPEND = "suspend", "Suspended"
    REINSTATE = "reinstate", "Reinstated"
    RECERTIFY = "recertify", "Recertified"


@ledger.evidence()
class Decision(models.Model):
    """A person's decision on a version, with the justification and, for approvals, the
    hashes of what they reviewed and the tier they approved for. Neither the version's creator
    nor its submitter can ever approve it (database constraints)."""

    version = models.ForeignKey("lifecycle.ModelVersion", on_delete=models.PROTECT, related_name="decisions")
    round = models.PositiveIntegerField()
    kind = models.CharField(max_length=20, choices=DecisionKind.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    actor_username = models.CharField(max_length=150)
    submitter = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    creator = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    justification = models.TextField()
    override = models.BooleanField(default=False, help_text="Approved although a check failed.")
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    card_sha256 = models.CharField(max_length=64, blank=True)
    checks_sha256 = models.CharField(max_length=64, blank=True)
    risk_tier = models.CharField(max_length=10, blank=True, help_text="The effective tier approved for.")
    profile_sha256 = models.CharField(max_length=64, blank=True, help_text="The reference profile approved.")
    # Recertification: the frozen monitoring evidence and open findings the officer decided on.
    snapshot = models.JSONField(default=dict, blank=True)
    snapshot_sha256 = models.CharField(max_length=64, blank=True)
    # Set on the decision that completed an approval or a recertification: the new expiry.
    approval_expires_at = models.DateTimeField(null=True, blank=True)
    # The shadow comparisons the officer saw (those with id <= shadow_through), when the version
    # ran in shadow: their hash (governance.shadow.comparisons_hash); "" when none existed.
    shadow_sha256 = models.CharField(max_length=64, blank=True)
    # The personal-data declaration approved (personal features and subject field); "" when none.
    personal_sha256 = models.CharField(max_length=64, blank=True)
    # The version manifest the officer decided on (governance.manifest); "" on decisions given
    # before manifests existed, which are bound by the hashes above only.
    manifest_sha256 = models.CharField(max_length=64, blank=True)
    shadow_through = models.PositiveBigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(kind=DecisionKind.APPROVE) | ~models.Q(actor=models.F("submitter")),
                name="submitter_never_approves",
            ),
            models.CheckConstraint(
                condition=~models.Q(kind__in=[DecisionKind.APPROVE, DecisionKind.REINSTATE, DecisionKind.RECERTIFY])
                | ~models.Q(actor=models.F("creator")),
                name="creator_never_approves",
            ),
            models.UniqueConstraint(
                fields=["version", "round", "actor"],
                condition=models.Q(kind=DecisionKind.APPROVE),
                name="one_approval_per_officer_per_round",
            ),
            models.CheckConstraint(condition=~models.Q(justification=""), name="decision_has_justification"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.version} by {self.actor_username}"


@ledger.evidence(
    runtime=("SELECT", "INSERT", "UPDATE"), reason="ended once, by the deploy or rollback that replaces it"
)
class Deployment(models.Model):
    """When a version was in production, who put it there and how it ended: answers
    "which version was in production on date X, approved by whom"."""

    registered_model = models.ForeignKey(
        "lifecycle.RegisteredModel", on_delete=models.PROTECT, related_name="deployments"
    )
    version = models.ForeignKey("lifecycle.ModelVersion", on_delete=models.PROTECT, related_name="deployments")
    deployed_at = models.DateTimeField()
    deployed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    end_reason = models.CharField(max_length=20, blank=True)

    class Meta:
        ordering = ["-deployed_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["registered_model"],
                condition=models.Q(ended_at__isnull=True),
                name="one_open_deployment_per_model",
            )
        ]

    def __str__(self) -> str:
        return f"{self.version} in production from {self.deployed_at:%Y-%m-%d %H:%M}"


class VersionReview(ModelVersion):
    """The risk officers' view of versions in the admin (the review queue)."""

    class Meta:
        proxy = True
        verbose_name = "version review"
        verbose_name_plural = "review queue"


class Severity(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


@ledger.evidence(runtime=("SELECT", "INSERT", "UPDATE"), reason="updated and closed by audited services only")
class Finding(models.Model):
    """An issue found about a version after go-live (a monitoring alert, or raised by a risk
    officer), owned by someone until closed with a justification. An open high finding blocks
    approval, deployment and recertification of the version (governance.rules)."""

    version = models.ForeignKey("lifecycle.ModelVersion", on_delete=models.PROTECT, related_name="findings")
    severity = models.CharField(max_length=10, choices=Severity.choices)
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    # What raised it, e.g. "drift:age" or "performance:accuracy": an open finding with the same
    # key takes later alerts instead of a new finding opening for every window.
    key = models.CharField(max_length=200)
    source = models.CharField(max_length=200, blank=True, help_text="The monitoring window that raised it.")
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="owned_findings"
    )
    due_at = models.DateTimeField()
    opened_at = models.DateTimeField()
    opened_by_username = models.CharField(max_length=150, default="system")
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by_username = models.CharField(max_length=150, blank=True)
    close_justification = models.TextField(blank=True)

    class Meta:
        ordering = ["-opened_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "key"], condition=models.Q(closed_at__isnull=True), name="one_open_finding_per_key"
            ),
            models.CheckConstraint(
                condition=models.Q(closed_at__isnull=True) | ~models.Q(close_justification=""),
                name="closed_finding_has_justification",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_severity_display()} finding on {self.version}: {self.title}"

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


@ledger.evidence()
class FindingComment(models.Model):
    """A comment on a finding (append-only, like the decisions)."""

    finding = models.ForeignKey(Finding, on_delete=models.PROTECT, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    author_username = models.CharField(max_length=150)
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"comment by {self.author_username} on finding #{self.finding_id}"


@ledger.governed()
class Shadow(models.Model):
    """A version put "in shadow" by a risk officer: the production version's logged inputs of each
    window are replayed through it (monitoring.shadow), never answering anyone, and compared."""

    version = models.ForeignKey("lifecycle.ModelVersion", on_delete=models.PROTECT, related_name="shadows")
    started_at = models.DateTimeField()
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    justification = models.TextField()
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by_username = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["version"], condition=models.Q(ended_at__isnull=True), name="one_running_shadow_per_version"
            )
        ]

    def __str__(self) -> str:
        return f"shadow of {self.version}"

    @property
    def is_running(self) -> bool:
        return self.ended_at is None


@ledger.evidence()
class ShadowComparison(models.Model):
    """Evidence: how the shadow version answered one window of the production version's traffic
    next to how production did (agreement, score differences, and where outcomes arrived both
    versions' live metrics and fairness). Written once with its audit event."""

    shadow = models.ForeignKey(Shadow, on_delete=models.PROTECT, related_name="comparisons")
    version = models.ForeignKey("lifecycle.ModelVersion", on_delete=models.PROTECT, related_name="+")
    champion = models.ForeignKey("lifecycle.ModelVersion", on_delete=models.PROTECT, related_name="+")
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    rows = models.PositiveIntegerField()
    agreement = models.FloatField(null=True, blank=True)
    # distribution of shadow score - production score per row (positive-class probability, or
    # the predicted value for regressors): mean, standard deviation, quantiles, histogram
    differences = models.JSONField(default=dict)
    # {"n_outcomes", "champion": {...metrics}, "shadow": {...}} and the same for fairness
    performance = models.JSONField(default=dict)
    fairness = models.JSONField(default=dict)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["window_start", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["shadow", "window_start", "window_end"], name="one_comparison_per_shadow_window"
            )
        ]

    def __str__(self) -> str:
        return f"shadow comparison of {self.version_id} vs {self.champion_id} ({self.window_start:%Y-%m-%d})"


# The model risk management records live in their own module; Django finds models through this
# one. Imported last, so that the ledger registers the tables in the order they were written.
from governance.mrm_models import (  # noqa: E402, F401
    VALIDATION_SECTIONS,
    ChangeClassification,
    Conclusion,
    FairnessRequirement,
    Overlay,
    OverlayKind,
    RetrainingRequest,
    ValidationReport,
)
