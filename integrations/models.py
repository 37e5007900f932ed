"""Webhook endpoints, their deliveries and every attempt, and the outbox's watermark."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from core import ledger


@ledger.governed()
class WebhookEndpoint(models.Model):
    """A URL that receives signed events (Standard Webhooks). The secret signs every request; it is
    shown once when created or rotated, never again."""

    name = models.CharField(max_length=100)
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=100, editable=False, help_text="whsec_ + base64 of 32 random bytes")
    event_types = models.JSONField(default=list, help_text="The event types this endpoint receives.")
    is_active = models.BooleanField(default=True)
    # Events up to this audit sequence number (the chain head when the endpoint was created) are
    # history: an endpoint announces what happens after it exists.
    start_seq = models.PositiveBigIntegerField(default=0, editable=False)
    disabled_reason = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_by_username = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "webhook endpoint"

    def __str__(self) -> str:
        return self.name


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (gave up)"
    CANCELLED = "cancelled", "Cancelled (endpoint disabled)"


@ledger.operational("delivery bookkeeping; what it announces is an audit event")
class WebhookDelivery(models.Model):
    """One event for one endpoint: the exact bytes signed and sent, and when to try next."""

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.PROTECT, related_name="deliveries")
    message_id = models.CharField(max_length=40, help_text="webhook-id: the same for every attempt")
    event_type = models.CharField(max_length=60)
    audit_seq = models.PositiveBigIntegerField(help_text="The audit event this delivery announces.")
    payload = models.TextField(help_text="The JSON body, exactly as signed.")
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "audit_seq"], name="one_delivery_per_event_and_endpoint")
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], condition=Q(status=DeliveryStatus.PENDING), name="webhook_delivery_due"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} #{self.audit_seq} to {self.endpoint}"


@ledger.operational("delivery bookkeeping: one row per try")
class WebhookAttempt(models.Model):
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.PROTECT, related_name="attempt_set")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.FloatField()
    error = models.CharField(max_length=500, blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="attempt_number_unique")]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@ledger.operational("the outbox's watermark over the chain")
class OutboxCursor(models.Model):
    """One row: the last audit event the webhook outbox has turned into deliveries."""

    last_seq = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"webhook outbox at audit event #{self.last_seq}"
