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
