"""Long compliance work (verifying the trail, rendering reports) done by a Celery worker: the
request writes a ReportJob and polls it; the worker stores the result file and its SHA-256."""

from __future__ import annotations

import os
import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from core import ledger


class JobKind(models.TextChoices):
    VERIFY = "verify", "Audit trail verification"
    PERIOD_REPORT = "period_report", "Period report"
    VERSION_REPORT = "version_report", "Version compliance report"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


FINISHED = (JobStatus.DONE, JobStatus.FAILED)


@ledger.operational("a request for work and its progress; verdicts and reports are audit events")
class ReportJob(models.Model):
    """One request for a verification or a report. Written by compliance.jobs only; a finished
    job (done or failed) is never changed again, so its finished audit event stays true."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=20, choices=JobKind.choices)
    # what to produce: {"version_id", "model", "version"} or {"since", "until"} (ISO 8601); {} to verify
    parameters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.CharField(max_length=200, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    result_file = models.CharField(max_length=255, blank=True)
    result_sha256 = models.CharField(max_length=64, blank=True)
    result_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    # what the job page shows of the result (the verification's verdict and messages)
    summary = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(status=JobStatus.DONE) | ~models.Q(result_sha256=""),
                name="reportjob_done_has_result",
            ),
            models.CheckConstraint(
                condition=~models.Q(status=JobStatus.FAILED) | ~models.Q(error=""),
                name="reportjob_failed_says_why",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.public_id}"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def verdict(self) -> str:
        """A finished verification's outcome, "PASSED" or "FAILED" (what its badge says instead of
        "Done"); "" for a report or a verification not finished yet."""
        if self.kind != JobKind.VERIFY or self.status != JobStatus.DONE:
            return ""
        return "PASSED" if (self.summary or {}).get("ok") is True else "FAILED"

    @property
    def result_name(self) -> str:
        return os.path.basename(self.result_file)

    @property
    def result_content_type(self) -> str:
        return "application/json" if self.result_file.endswith(".json") else "application/pdf"


class IncidentSeverity(models.TextChoices):
    """EU AI Act art. 73: the reporting deadline depends on what happened."""

    SERIOUS = "serious", "Serious incident (15 days)"
    DEATH = "death", "Death of a person (10 days)"
    WIDESPREAD = "widespread", "Widespread infringement or serious critical-infrastructure disruption (2 days)"


# Days from the moment of awareness to the report's deadline (art. 73(2), (3), (4)).
REPORT_DAYS = {IncidentSeverity.SERIOUS: 15, IncidentSeverity.DEATH: 10, IncidentSeverity.WIDESPREAD: 2}


@ledger.evidence()
class Incident(models.Model):
    """A serious incident (EU AI Act art. 73), written once by compliance.incidents with its audit
    event. The evidence freeze is the signed checkpoint taken at registration: its note (text)
    is kept here, and it verifies against the public key and the audit chain at any later time."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    registered_model = models.ForeignKey("lifecycle.RegisteredModel", on_delete=models.PROTECT, related_name="+")
    # the version in production when the provider became aware, if any (governance.history)
    version = models.ForeignKey("lifecycle.ModelVersion", null=True, on_delete=models.PROTECT, related_name="+")
    severity = models.CharField(max_length=12, choices=IncidentSeverity.choices)
    aware_at = models.DateTimeField()
    report_due = models.DateTimeField()
    summary = models.TextField()
    corrective_actions = models.TextField(blank=True)
    # the decisions concerned: prediction ids "<record>.<row>" of logged answers
    prediction_ids = models.JSONField(default=list, blank=True)
    checkpoint = models.TextField(help_text="The signed checkpoint note written at registration.")
    checkpoint_seq = models.PositiveBigIntegerField()
    registered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    registered_by_username = models.CharField(max_length=150)
    registered_at = models.DateTimeField()

    class Meta:
        ordering = ["-aware_at", "-pk"]

    def __str__(self) -> str:
        return f"Incident {self.public_id} ({self.severity}) on {self.registered_model_id}"


@ledger.evidence()
class ControlAttestation(models.Model):
    """A risk officer's statement that a control of the library (compliance/controls.yaml) is met
    for a model where no evidence query proves it; written once with its audit event, in force
    from `attested_at` (a later attestation of the same control supersedes it)."""

    registered_model = models.ForeignKey("lifecycle.RegisteredModel", on_delete=models.PROTECT, related_name="+")
    control_id = models.CharField(max_length=40)
    statement = models.TextField()
    attested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    attested_by_username = models.CharField(max_length=150)
    attested_at = models.DateTimeField()

    class Meta:
        ordering = ["registered_model", "control_id", "-attested_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.control_id} attested by {self.attested_by_username}"
