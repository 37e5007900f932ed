from __future__ import annotations

from django.db import models

from core import ledger


@ledger.operational("derived: which seals were folded into the hourly counts, rebuilt from the sealed log")
class FoldedSeal(models.Model):
    """A seal whose records were folded into the hourly counts, once (the unique seal makes a
    second fold of the same seal fail and roll back)."""

    seal = models.OneToOneField("serving.PredictionSeal", on_delete=models.PROTECT, related_name="+")
    folded_at = models.DateTimeField(auto_now_add=True)
    records = models.PositiveIntegerField(default=0)
    rows = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"seal #{self.seal_id} folded"


@ledger.operational("derived bin counts, rebuilt from the sealed log at any time")
class HourlyCounts(models.Model):
    """Bin counts of one version's answered rows in one hour, per profile feature, accumulated
    from sealed records: a window (or a year) reads these, not the log. Derived data: it can be
    rebuilt from the sealed log at any time."""

    version = models.ForeignKey("lifecycle.ModelVersion", on_delete=models.PROTECT, related_name="+")
    hour = models.DateTimeField()
    rows = models.PositiveBigIntegerField(default=0)
    counts = models.JSONField(default=dict)
    profile_sha256 = models.CharField(max_length=64)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "hour"], name="one_count_per_version_hour")]

    def __str__(self) -> str:
        return f"{self.rows} rows of version #{self.version_id} at {self.hour:%Y-%m-%d %H:00}"


class Level(models.TextChoices):
    OK = "ok", "OK"
    WARN = "warn", "Warning"
    ALERT = "alert", "Alert"


@ledger.evidence()
class MonitoringWindow(models.Model):
    """The monitoring result of one version over [start, end): drift per feature and of the
    prediction, live performance and fairness from the outcomes, and the alerts it raised.
    Stored once, with its audit event and evidence."""

    version = models.ForeignKey("lifecycle.ModelVersion", on_delete=models.PROTECT, related_name="monitoring_windows")
    start = models.DateTimeField()
    end = models.DateTimeField()
    computed_at = models.DateTimeField(auto_now_add=True)
    rows = models.PositiveBigIntegerField(default=0)
    profile_sha256 = models.CharField(max_length=64)
    drift = models.JSONField(default=dict)
    prediction_drift = models.JSONField(default=dict)
    performance = models.JSONField(default=dict)
    fairness = models.JSONField(default=dict)
    alerts = models.JSONField(default=list)
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.OK)

    class Meta:
        ordering = ["version", "start"]
        constraints = [models.UniqueConstraint(fields=["version", "start", "end"], name="one_window_per_range")]

    def __str__(self) -> str:
        return f"{self.version} {self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M}: {self.level}"


class KpiMetric(models.TextChoices):
    APPROVAL_RATE = "approval_rate", "Approval rate (share of favourable decisions)"
    DEFAULT_RATE = "default_rate_among_approved", "Default rate among approved (outcome not favourable)"


@ledger.governed()
class KpiDefinition(models.Model):
    """A business KPI of a model, computed from its logged decisions and their
    reported outcomes (monitoring.kpis) with a lower and/or upper bound; a breach over a window
    with at least `min_rows` rows opens a finding."""

    registered_model = models.ForeignKey("lifecycle.RegisteredModel", on_delete=models.PROTECT, related_name="kpis")
    name = models.SlugField(max_length=64)
    metric = models.CharField(max_length=40, choices=KpiMetric.choices)
    favourable = models.JSONField(help_text='The decision that is good news for the person, e.g. 1 or "good".')
    min_value = models.FloatField(null=True, blank=True)
    max_value = models.FloatField(null=True, blank=True)
    min_rows = models.PositiveIntegerField(default=30)
    window_days = models.PositiveIntegerField(default=30)
    created_by_username = models.CharField(max_length=150)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["registered_model", "name"]
        constraints = [
            models.UniqueConstraint(fields=["registered_model", "name"], name="one_kpi_name_per_model"),
            models.CheckConstraint(
                condition=models.Q(min_value__isnull=False) | models.Q(max_value__isnull=False),
                name="kpi_has_a_bound",
            ),
        ]

    def __str__(self) -> str:
        return f"KPI {self.name} of {self.registered_model_id}"
