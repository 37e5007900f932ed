from __future__ import annotations

import hashlib
import json
from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse

from core import ledger


class RiskTier(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class ModelKind(models.TextChoices):
    """Inventory: in-house models have a skops artifact and are served here; vendor and
    external ones are documented, validated and monitored through reported outcomes, never served."""

    IN_HOUSE = "in_house", "In-house"
    VENDOR = "vendor", "Vendor"
    EXTERNAL = "external", "External"


class Task(models.TextChoices):
    CLASSIFICATION = "classification", "Classification"
    REGRESSION = "regression", "Regression"


class Status(models.TextChoices):
    DRAFT = "draft", "Draft"
    CHECKING = "checking", "Checking"
    IN_REVIEW = "in_review", "In review"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    PRODUCTION = "production", "Production"
    RETIRED = "retired", "Retired"
    SUSPENDED = "suspended", "Suspended"


SERVABLE_STATUSES = (Status.APPROVED, Status.PRODUCTION)

slug_validator = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$",
    "Use lowercase letters, digits and hyphens (it becomes part of API URLs), e.g. credit-risk.",
)


@ledger.governed()
class RegisteredModel(models.Model):
    name = models.CharField(max_length=64, unique=True, validators=[slug_validator])
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # Proposed by the data scientist who registers the model; a risk officer sets the effective
    # tier (governance.services.set_risk_tier, audited). Until then the proposed tier is in force.
    risk_tier = models.CharField("proposed risk tier", max_length=10, choices=RiskTier.choices, default=RiskTier.MEDIUM)
    effective_risk_tier = models.CharField(max_length=10, choices=RiskTier.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The inventory (docs/design.md, "Model risk management"): what kind of model, what for, and the
    # materiality inputs a tier is proposed from (lifecycle.materiality.proposed_tier).
    kind = models.CharField(max_length=10, choices=ModelKind.choices, default=ModelKind.IN_HOUSE)
    purpose = models.TextField(blank=True)
    exposure = models.PositiveBigIntegerField(null=True, blank=True, help_text="Money at stake per year (EUR).")
    decisions_per_year = models.PositiveBigIntegerField(null=True, blank=True)
    affected_people = models.PositiveBigIntegerField(null=True, blank=True, help_text="People decided on per year.")
    # The kill switch (governance.killswitch, audited): a pre-designated approved version that
    # answers while the model is stopped; stopped, every request gets the fallback or 503.
    fallback_version = models.ForeignKey(
        "ModelVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    stopped_at = models.DateTimeField(null=True, blank=True)
    stopped_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("lifecycle:model-detail", args=[self.name])

    @property
    def is_stopped(self) -> bool:
        return self.stopped_at is not None

    @property
    def effective_tier(self) -> str:
        """The tier in force: the one a risk officer set, else the proposed one."""
        return self.effective_risk_tier or self.risk_tier


@ledger.governed()
class ModelDependency(models.Model):
    """One model uses another's output (the inventory's dependencies): recorded by
    lifecycle.services.register_model with the model's registration event, never removed."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="dependencies")
    depends_on = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="dependents")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model", "depends_on"]
        constraints = [
            models.UniqueConstraint(fields=["model", "depends_on"], name="one_dependency_per_pair"),
            models.CheckConstraint(condition=~Q(model=models.F("depends_on")), name="no_self_dependency"),
        ]

    def __str__(self) -> str:
        return f"{self.model_id} depends on {self.depends_on_id}"


@ledger.governed()
class Dataset(models.Model):
    """A stored CSV, identified by name + sequential version and by its SHA-256."""

    name = models.CharField(max_length=100, validators=[slug_validator])
    version = models.PositiveIntegerField()
    file = models.FileField(upload_to="datasets/", max_length=255)
    sha256 = models.CharField(max_length=64, db_index=True)
    size_bytes = models.PositiveBigIntegerField()
    row_count = models.PositiveIntegerField()
    columns = models.JSONField(help_text="[{'name': ..., 'dtype': ...}, ...] in file order")
    description = models.TextField(blank=True)
    source = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="dataset_name_version_unique")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def column_names(self) -> list[str]:
        return [c["name"] for c in self.columns]

    @property
    def stored_key(self) -> DatasetKey | None:
        """The data key its file is encrypted with; None for a dataset stored in clear before
        encryption at rest (manage.py encrypt_datasets)."""
        try:
            return self.data_key
        except DatasetKey.DoesNotExist:
            return None

    @property
    def key_destroyed_at(self) -> Any:
        key = self.stored_key
        return key.destroyed_at if key is not None else None

    @property
    def at_rest(self) -> str:
        """How its file is stored, as pages show it."""
        key = self.stored_key
        if key is None:
            return "stored in clear (before encryption at rest)"
        if key.destroyed_at is not None:
            return f"key destroyed on {key.destroyed_at:%Y-%m-%d}"
        return "encrypted"


@ledger.evidence(
    which=lambda: Q(destroyed_at__isnull=False),
    runtime=("SELECT", "INSERT", "UPDATE"),
    reason="a destroyed dataset key stays destroyed; live keys are wrapped by the key encryption key",
)
class DatasetKey(models.Model):
    """The data key of one dataset's file (lifecycle.dataset_store): AES-256-GCM, stored wrapped by
    the key encryption key LOG_KEK, as the log's subject keys are. Destroying it (a risk officer,
    governance.datasets, audited) clears `wrapped`: the file can never be read again, while the
    dataset's name, SHA-256 and lineage stay."""

    dataset = models.OneToOneField(Dataset, on_delete=models.PROTECT, related_name="data_key")
    wrapped = models.BinaryField(null=True)
    kek_id = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    destroyed_at = models.DateTimeField(null=True, blank=True)
    destroyed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    justification = models.TextField(blank=True)

    class Meta:
        constraints = [
            # a destroyed key keeps nothing that could open the file; a live one has its bytes
            models.CheckConstraint(
                condition=Q(destroyed_at__isnull=True, wrapped__isnull=False)
                | Q(destroyed_at__isnull=False, wrapped__isnull=True),
                name="dataset_key_live_or_destroyed",
            ),
        ]

    def __str__(self) -> str:
        return f"Key of dataset {self.dataset_id}"


@ledger.governed()
class ModelVersion(models.Model):
    registered_model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT, db_index=True)

    artifact = models.FileField(upload_to="artifacts/", max_length=255)
    artifact_sha256 = models.CharField(max_length=64)
    artifact_size = models.PositiveBigIntegerField()
    artifact_types = models.JSONField(default=list, help_text="Every type the skops file asked for.")
    estimator_class = models.CharField(max_length=300)
    sklearn_version = models.CharField(max_length=40, blank=True)
    params = models.JSONField(default=dict, help_text="get_params(deep=False), as JSON")
    task = models.CharField(max_length=20, choices=Task.choices)
    input_schema = models.JSONField(help_text="[{'name': ..., 'dtype': ...}, ...] in the model's order")
    classes = models.JSONField(default=list, blank=True)

    label_column = models.CharField(max_length=200)
    sensitive_features = models.JSONField(default=list, blank=True)
    # Input fields holding personal data: stored encrypted per data subject in the prediction log
    # (serving.personal); the subject is the value of `subject_field` (an input, or
    # "business_key": the key the client sent with the row).
    personal_features = models.JSONField(default=list, blank=True)
    subject_field = models.CharField(max_length=200, blank=True)
    training_dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="+")
    evaluation_dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="+")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    code_repository = models.CharField(max_length=500, blank=True)
    code_commit = models.CharField(max_length=64, blank=True)

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    submitted_at = models.DateTimeField(null=True, blank=True)
    # Why and when the version was last suspended (written by governance.workflow with its status).
    suspended_reason = models.TextField(blank=True)
    suspended_at = models.DateTimeField(null=True, blank=True)
    review_round = models.PositiveIntegerField(
        default=0, help_text="How many times it was submitted; checks and approvals belong to one round."
    )
    # When the approval lapses unless recertified (written by governance.workflow at approval
    # and recertification from the policy's period for the tier); serving refuses after it.
    approval_expires_at = models.DateTimeField(null=True, blank=True)
    # Decisions: the class that is good news for the person the model decides on
    # (None: the last of `classes`), and the data scientist's reason text per input feature for
    # adverse-action notices. Fixed at creation, like the artifact.
    favourable_class = models.JSONField(null=True, blank=True)
    reason_texts = models.JSONField(default=dict, blank=True)
    expiry_reminded_at = models.DateTimeField(null=True, blank=True)
    # The SHA-256 of the version manifest its approvals bound (governance.manifest), written with
    # the status by the workflow; every answer's guarded INSERT checks the row still carries the
    # one the serving process verified when it loaded the version.
    manifest_sha256 = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["registered_model__name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["registered_model", "version"], name="version_number_unique"),
            # At most one production version per registered model, enforced by the database.
            models.UniqueConstraint(
                fields=["registered_model"],
                condition=Q(status=Status.PRODUCTION),
                name="one_production_version_per_model",
            ),
            models.CheckConstraint(condition=Q(status__in=[s.value for s in Status]), name="version_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.registered_model.name} v{self.version}"

    def get_absolute_url(self) -> str:
        return reverse("lifecycle:version-detail", args=[self.registered_model.name, self.version])

    @property
    def is_servable(self) -> bool:
        return self.status in SERVABLE_STATUSES

    @property
    def is_editable(self) -> bool:
        return self.status == Status.DRAFT

    @property
    def favourable(self) -> Any:
        """The declared favourable class, or the last of `classes` (None for a regressor)."""
        if self.favourable_class is not None:
            return self.favourable_class
        return self.classes[-1] if self.classes else None

    @property
    def feature_names(self) -> list[str]:
        return [c["name"] for c in self.input_schema]

    def lineage(self) -> list[ModelVersion]:
        """The parent chain, nearest first (bounded: a chain cannot loop, parents are older)."""
        chain: list[ModelVersion] = []
        node = self.parent
        while node is not None and len(chain) < 1000:
            chain.append(node)
            node = node.parent
        return chain


CARD_SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("model_details", "Model details", "Who built it, when, version, type, training algorithm, licence, contact."),
    ("intended_use", "Intended use", "Primary uses and users the model was built for."),
    ("out_of_scope_uses", "Out-of-scope uses", "Uses the model must not be put to."),
    ("factors", "Factors", "Groups, instruments and environments the evaluation looked at."),
    ("metrics", "Metrics", "Which performance measures, decision thresholds and why."),
    ("evaluation_data_notes", "Evaluation data", "Datasets, motivation, preprocessing."),
    ("training_data_notes", "Training data", "Datasets, motivation, preprocessing."),
    ("ethical_considerations", "Ethical considerations", "Sensitive data, risks, mitigations."),
    ("caveats_and_recommendations", "Caveats and recommendations", "Known limits and advice."),
)
CARD_FIELDS = tuple(name for name, _, _ in CARD_SECTIONS)


@ledger.governed()
class ModelCard(models.Model):
    """The model card of one version (Mitchell et al. 2019). Quantitative analyses are the
    check results themselves and are shown beside the card, not typed into it."""

    version = models.OneToOneField(ModelVersion, on_delete=models.PROTECT, related_name="card")
    model_details = models.TextField(blank=True)
    intended_use = models.TextField(blank=True)
    out_of_scope_uses = models.TextField(blank=True)
    factors = models.TextField(blank=True)
    metrics = models.TextField(blank=True)
    evaluation_data_notes = models.TextField(blank=True)
    training_data_notes = models.TextField(blank=True)
    ethical_considerations = models.TextField(blank=True)
    caveats_and_recommendations = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Model card of {self.version}"

    def as_dict(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in CARD_FIELDS}

    def sections(self) -> list[dict[str, Any]]:
        return [{"name": n, "title": t, "text": getattr(self, n)} for n, t, _ in CARD_SECTIONS]

    def content_hash(self) -> str:
        """SHA-256 of the card's text; an approval binds to it."""
        blob = json.dumps(self.as_dict(), sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()


@ledger.evidence()
class MlflowImport(models.Model):
    """The MLflow lineage of a version imported from an MLflow model directory (evidence: written
    once, with its content hash in the audit event)."""

    version = models.OneToOneField(ModelVersion, on_delete=models.PROTECT, related_name="mlflow_import")
    run_id = models.CharField(max_length=64, blank=True)
    model_uuid = models.CharField(max_length=64, blank=True)
    mlflow_version = models.CharField(max_length=40, blank=True)
    sklearn_version = models.CharField(max_length=40, blank=True)
    serialization_format = models.CharField(max_length=20)
    signature = models.JSONField(default=dict, help_text="{'inputs': [...], 'outputs': [...]} from MLmodel")
    pip_requirements = models.JSONField(default=list)
    mlmodel_sha256 = models.CharField(max_length=64)
    source_path = models.CharField(max_length=500, blank=True)
    utc_time_created = models.CharField(max_length=40, blank=True)
    imported_by_username = models.CharField(max_length=150)
    imported_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "MLflow import"

    def __str__(self) -> str:
        return f"MLflow run {self.run_id or '?'} -> {self.version}"
