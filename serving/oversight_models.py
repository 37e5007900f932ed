"""Human oversight and contestation (docs/design.md, "Human oversight and contestation";
serving.oversight): the routing rules, the queue and the contests. Django finds these models
through serving.models, which imports them."""

from __future__ import annotations

from django.db import models

from core import ledger
from serving.models import ApiKey, DecisionReview, PredictionLog


class OversightReason(models.TextChoices):
    ADVERSE = "adverse", "Adverse decision"
    NEAR_THRESHOLD = "near_threshold", "Score near the threshold"
    SEGMENT = "segment", "Named segment"
    CONTEST = "contest", "Contested by the person"


@ledger.governed()
class OversightRule(models.Model):
    """Which of a model's decisions go to the human-oversight queue, set by a risk officer."""

    model_name = models.CharField(max_length=64, unique=True)
    adverse = models.BooleanField(default=True, help_text="Route every adverse decision.")
    band = models.FloatField(
        null=True, blank=True, help_text="Route a score within this distance of the 0.5 threshold."
    )
    segments = models.JSONField(default=dict, blank=True, help_text='{"feature": ["value", ...]}: rows to route.')
    due_hours = models.PositiveIntegerField(default=72)
    active = models.BooleanField(default=True)
    changed_by_username = models.CharField(max_length=150)
    justification = models.TextField()

    def __str__(self) -> str:
        return f"oversight rule of {self.model_name}"


@ledger.operational("where the routing sweep has reached in a model's log: derived, recomputable from the records")
class OversightCursor(models.Model):
    model_name = models.CharField(max_length=64, unique=True)
    last_record = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.model_name} routed up to record {self.last_record}"


@ledger.evidence()
class Contestation(models.Model):
    """An affected person's contestation of one decision (AI Act art. 86, GDPR art. 22(3)),
    sent by the client application that received it; answered by a case officer by respond_by."""

    record = models.ForeignKey(
        PredictionLog, on_delete=models.PROTECT, related_name="contestations", db_constraint=False
    )
    row = models.PositiveIntegerField()
    statement = models.TextField()
    received_at = models.DateTimeField()
    respond_by = models.DateTimeField()
    caller = models.CharField(max_length=150)
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["received_at", "pk"]

    def __str__(self) -> str:
        return f"contestation #{self.pk} of {self.record_id}.{self.row}"


@ledger.evidence()
class OversightItem(models.Model):
    """A decision routed to the human-oversight queue (by a rule, or by a contestation). Open
    until a person reviews the decision after it was routed (or answers the contestation)."""

    record = models.ForeignKey(
        PredictionLog, on_delete=models.PROTECT, related_name="oversight_items", db_constraint=False
    )
    row = models.PositiveIntegerField()
    reason = models.CharField(max_length=16, choices=OversightReason.choices)
    detail = models.CharField(max_length=300, blank=True)
    contestation = models.OneToOneField(
        Contestation, null=True, blank=True, on_delete=models.PROTECT, related_name="item"
    )
    # the reviews the row had when it was routed: a later one resolves the item
    reviews_before = models.PositiveIntegerField(default=0)
    routed_at = models.DateTimeField()
    due_at = models.DateTimeField()

    class Meta:
        ordering = ["routed_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["record", "row"], condition=models.Q(contestation__isnull=True), name="one_routing_per_row"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_reason_display()}: {self.record_id}.{self.row}"


@ledger.evidence()
class ContestationAnswer(models.Model):
    """A case officer's answer to a contestation, with the review (confirmed or corrected
    decision) it gave. Written once."""

    contestation = models.OneToOneField(Contestation, on_delete=models.PROTECT, related_name="answer")
    review = models.ForeignKey(DecisionReview, on_delete=models.PROTECT, related_name="+")
    text = models.TextField()
    answered_by = models.CharField(max_length=150)
    answered_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"answer to contestation #{self.contestation_id}"
