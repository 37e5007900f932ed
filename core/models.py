"""The audit trail's rows. Written only through core.audit."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from core import ledger


@ledger.evidence(
    proof=ledger.Proof.CHAIN,
    # no INSERT: on PostgreSQL the runtime role appends only through core_audit_append (core.audit)
    runtime=("SELECT",),
    reason="the audit chain proves itself: each event hashes the one before (core.audit.verify_chain)",
)
class AuditEvent(models.Model):
    """One entry of the append-only, hash-chained audit trail. Written only by
    core.audit.record(); on PostgreSQL triggers refuse UPDATE, DELETE and TRUNCATE, and an INSERT
    whose seq and prev_hash do not follow the chain head."""

    seq = models.PositiveBigIntegerField(unique=True)
    created_at = models.DateTimeField()
    # SET_NULL plus a copied username: deleting a person never deletes what they did.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=100, db_index=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=300, blank=True)
    data = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    # HMAC-SHA256 of `hash` under AUDIT_MAC_KEY, a key held outside the database (core.audit).
    mac = models.CharField(max_length=64, default="")

    class Meta:
        # The tables keep the names they had in the governance app: the move copied no row.
        db_table = "governance_auditevent"
        ordering = ["seq"]
        indexes = [models.Index(fields=["target_type", "target_id"], name="governance__target__e5d48d_idx")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.target_repr}"


@ledger.evidence(
    proof=ledger.Proof.CHAIN,
    # moved by the append's trigger, locked by core_audit_head (core.audit): the runtime role only reads it
    runtime=("SELECT",),
    reason="equals the last event (core.audit.verify_chain)",
)
class AuditChainHead(models.Model):
    """A single row holding the chain's last sequence number and hash. Appends lock it
    (SELECT ... FOR UPDATE, on PostgreSQL inside core_audit_head), which serialises writers even
    when the table is empty."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="0" * 64)

    class Meta:
        db_table = "governance_auditchainhead"

    def __str__(self) -> str:
        return f"audit chain head #{self.seq}"
