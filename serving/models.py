from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db import models

from core import ledger


@ledger.governed(unhashed=("last_used_at",))
class ApiKey(models.Model):
    """A client's API key. Only the SHA-256 of the key is stored; the key is shown once."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="The key's first characters, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="api_keys",
        help_text="A key bound to a user acts with that user's roles.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by_username = models.CharField(max_length=150, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Disposition(models.TextChoices):
    """What became of a request (its log record's `outcome`): answered, refused, invalid or failed.
    Not to be confused with a prediction's outcome, the actual value reported later
    (PredictionOutcome)."""

    OK = "ok", "Answered"
    REFUSED = "refused", "Refused"
    INVALID = "invalid", "Invalid input"
    ERROR = "error", "Failed"


class LogSource(models.TextChoices):
    API = "api", "Request"
    BATCH = "batch", "Batch job"
    SHADOW = "shadow", "Shadow replay"
    # a vendor or external model's decision, reported by the client that received it
    EXTERNAL = "external", "External decision"


class BatchStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    STOPPED = "stopped", "Stopped"


@ledger.governed(unhashed=("rows_done", "rows_failed", "chunks_done"))
class BatchJob(models.Model):
    """A scoring job over a stored CSV, split into chunks that any worker scores (serving.batch).
    The version is pinned when the job is accepted; each chunk re-checks that it is still
    servable at its commit."""

    public_id = models.UUIDField(unique=True, editable=False)
    model_name = models.CharField(max_length=64)
    version = models.ForeignKey("lifecycle.ModelVersion", on_delete=models.PROTECT, related_name="batch_jobs")
    status = models.CharField(max_length=10, choices=BatchStatus.choices, default=BatchStatus.QUEUED)
    reason = models.TextField(blank=True)
    input_file = models.CharField(max_length=255)
    input_name = models.CharField(max_length=255, blank=True)
    input_sha256 = models.CharField(max_length=64)
    input_bytes = models.PositiveBigIntegerField()
    # A personal version's input is stored encrypted (lifecycle.encrypted_csv) under a data key
    # wrapped by the KEK, and deleted when the job ends (input_file becomes ""; the SHA-256 stays).
    input_key_id = models.CharField(max_length=64, blank=True)
    input_key_wrapped = models.BinaryField(null=True, blank=True)
    # The input column holding each row's business key (found and erased by subject like a
    # real-time answer's keys); "" when the batch names none.
    business_key_column = models.CharField(max_length=200, blank=True)
    # Input columns copied as they are into each result line (after "row"), so the result joins
    # back to the caller's records by their own ids.
    id_columns = models.JSONField(default=list, blank=True)
    dataset = models.ForeignKey("lifecycle.Dataset", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    header = models.JSONField()
    # byte offset of each chunk's first row in the input file (the last chunk ends at its end)
    offsets = models.JSONField()
    chunk_rows = models.PositiveIntegerField()
    rows_total = models.PositiveBigIntegerField()
    rows_done = models.PositiveBigIntegerField(default=0)
    rows_failed = models.PositiveBigIntegerField(default=0)
    chunks_total = models.PositiveIntegerField()
    chunks_done = models.PositiveIntegerField(default=0)
    result_file = models.CharField(max_length=255, blank=True)
    result_sha256 = models.CharField(max_length=64, blank=True)
    caller = models.CharField(max_length=150)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(rows_done__lte=models.F("rows_total")), name="batch_rows_bounded"
            ),
            models.CheckConstraint(
                condition=models.Q(chunks_done__lte=models.F("chunks_total")), name="batch_chunks_bounded"
            ),
        ]

    def __str__(self) -> str:
        return f"batch {self.public_id} of {self.model_name}"

    @property
    def is_finished(self) -> bool:
        return self.status in (BatchStatus.COMPLETED, BatchStatus.STOPPED) and bool(self.result_sha256)


@ledger.operational("a job's progress: its rows are proven by the sealed prediction log")
class BatchChunk(models.Model):
    """One scored (or refused) chunk of a job, written in one transaction with its log records:
    the (job, index) constraint makes a re-delivered chunk a no-op."""

    job = models.ForeignKey(BatchJob, on_delete=models.PROTECT, related_name="chunks")
    index = models.PositiveIntegerField()
    scored = models.BooleanField(help_text="False: refused (the version stopped being servable, or the job stopped)")
    rows = models.PositiveIntegerField()
    rows_failed = models.PositiveIntegerField(default=0)
    # The chunk's lines of the result CSV (without the header), in input order.
    result_csv = models.TextField(blank=True)
    reason = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True)
    seconds = models.FloatField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job_id", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="one_result_per_chunk")]

    def __str__(self) -> str:
        return f"chunk {self.index} of {self.job_id}"


@ledger.evidence(
    proof=ledger.Proof.SEAL,
    runtime=("SELECT", "INSERT", "UPDATE"),
    reason="each seal's root is an audit event; verify_audit recomputes it from the records",
)
class PredictionSeal(models.Model):
    """A Merkle root (RFC 6962) over a batch of prediction records, also written to the audit
    trail: any later change to a sealed record changes the recomputed root."""

    created_at = models.DateTimeField(auto_now_add=True)
    root = models.CharField(max_length=64)
    tree_size = models.PositiveIntegerField()
    first_record = models.PositiveBigIntegerField()
    last_record = models.PositiveBigIntegerField()
    audit_seq = models.PositiveBigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"seal #{self.pk} of {self.tree_size} records, root {self.root[:12]}…"


@ledger.evidence(proof=ledger.Proof.SEAL, reason="a seal's stored tree levels, recomputed by verification")
class SealTree(models.Model):
    """What an inclusion proof needs, written with its seal: every level of the seal's Merkle tree
    (leaves first, 32-byte hashes end to end) and its record ids as runs of consecutive ids, so
    a proof reads its O(log n) path hashes instead of recomputing n leaves. Derived data: the
    seal's audit event holds its SHA-256, verification recomputes trees from the records, and a
    stored path that does not lead to the root is never returned."""

    seal = models.OneToOneField(PredictionSeal, primary_key=True, on_delete=models.PROTECT, related_name="tree")
    # On PostgreSQL stored out of line uncompressed (migration 0010), so substring() fetches
    # only the TOAST chunks that hold the path.
    levels = models.BinaryField()
    # (first id, count) pairs, two big-endian unsigned 64-bit integers each, in leaf order
    record_runs = models.BinaryField()

    def __str__(self) -> str:
        return f"proof tree of seal #{self.seal_id}"


@ledger.evidence(
    proof=ledger.Proof.SEAL,
    runtime=("SELECT", "INSERT", "UPDATE"),
    reason="too many to chain one by one: MAC'd at the write, sealed into Merkle trees",
)
class PredictionLog(models.Model):
    """One served (or refused) request, written before the answer leaves. Row i of a record has
    the prediction id "<public_id>.<i>". Append-only: on PostgreSQL a trigger refuses DELETE and
    any UPDATE except attaching an unsealed record to its seal.

    On PostgreSQL the table is partitioned by month of created_at (serving.partitions, migration
    0022): its primary key there is (id, created_at) and public_id is indexed, not unique (a
    random UUID). No table references it by a database constraint (PostgreSQL would need the
    partition key in every referencing row): the records that outcomes, explanations, reviews,
    contestations, oversight items and business keys name are proven by the seals and by each
    referencing row's own audit event instead (docs/decisions-integrity.md)."""

    public_id = models.UUIDField(unique=True, editable=False)
    created_at = models.DateTimeField(db_index=True)
    model_name = models.CharField(max_length=64)
    version = models.ForeignKey(
        "lifecycle.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="predictions",
        db_index=False,  # the (version, created_at) index serves lookups by version
    )
    version_number = models.PositiveIntegerField(null=True, blank=True)
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    caller = models.CharField(max_length=150)
    request_id = models.CharField(max_length=200, blank=True)
    protocol = models.CharField(max_length=4)
    outcome = models.CharField(max_length=10, choices=Disposition.choices)
    reason = models.TextField(blank=True)
    n_rows = models.PositiveIntegerField(default=0)
    # Canonical JSON text (sorted keys), written once and hashed as is: storing text instead of
    # jsonb keeps the database from re-parsing 1,000-row batches on the serving path.
    inputs_json = models.TextField(default="[]")
    outputs_json = models.TextField(default="{}")
    engine = models.CharField(max_length=10, blank=True)
    latency_ms = models.FloatField(default=0)
    leaf_hash = models.CharField(max_length=64)
    # HMAC-SHA256 of the leaf under LOG_MAC_KEY (outside the database); empty on records written
    # before MACs existed, which are proven by their seals alone.
    mac = models.CharField(max_length=64, blank=True, default="")
    seal = models.ForeignKey(PredictionSeal, null=True, blank=True, on_delete=models.PROTECT, related_name="records")
    # The client's business keys, one per row (canonical JSON list; "" when none were sent).
    # Covered by the leaf only when present, so records written before keys existed re-hash
    # identically; looked up through PredictionKey's index.
    business_keys_json = models.TextField(blank=True, default="")
    # Where the record came from: a request, a batch job's chunk, or a shadow replay (never
    # returned to anyone). Covered by the leaf only when not "api", as business keys are.
    source = models.CharField(max_length=8, choices=LogSource.choices, default=LogSource.API)
    batch_job = models.ForeignKey(
        BatchJob, null=True, blank=True, on_delete=models.PROTECT, related_name="records", db_index=False
    )
    batch_chunk = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        # Every index is written by every answer's INSERT, so only what lookups use: exact
        # matches (no LIKE pattern indexes), and the key and user indexes (which keep deleting
        # a key or a user from scanning the log) hold only the rows that name one.
        indexes = [
            models.Index(fields=["version", "created_at"]),
            models.Index(fields=["model_name"], name="serving_log_model_name"),
            models.Index(fields=["request_id"], name="serving_log_request_id"),
            models.Index(fields=["api_key"], name="serving_log_api_key", condition=models.Q(api_key__isnull=False)),
            models.Index(fields=["user"], name="serving_log_user", condition=models.Q(user__isnull=False)),
            models.Index(
                fields=["batch_job", "batch_chunk"],
                name="serving_log_batch",
                condition=models.Q(batch_job__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model_name} v{self.version_number} {self.outcome} {self.public_id}"

    @property
    def inputs(self) -> Any:
        return json.loads(self.inputs_json)

    @property
    def outputs(self) -> Any:
        return json.loads(self.outputs_json)

    @property
    def business_keys(self) -> list[str]:
        return json.loads(self.business_keys_json) if self.business_keys_json else []


@ledger.evidence()
class PredictionOutcome(models.Model):
    """Ground truth that arrived later for one predicted row (the log itself never changes)."""

    # Not a database foreign key: see PredictionLog (a partitioned log is referenced by no constraint).
    record = models.ForeignKey(PredictionLog, on_delete=models.PROTECT, related_name="actuals", db_constraint=False)
    row = models.PositiveIntegerField()
    actual = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)
    reported_by = models.CharField(max_length=150)
    # Sensitive attributes that are not model inputs, sent with the outcome for live fairness.
    sensitive = models.JSONField(default=dict, blank=True)
    # 0: the outcome as first reported; 1, 2, ...: audited corrections, each a new row (none is
    # ever changed). Live metrics read the highest seq of each predicted row.
    seq = models.PositiveIntegerField(default=0)
    justification = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["record", "row", "seq"], name="one_outcome_per_seq")]

    def __str__(self) -> str:
        kind = f"correction {self.seq} of the outcome" if self.seq else "outcome"
        return f"{kind} of {self.record.public_id}.{self.row}"


@ledger.operational(
    "a lookup index of the sealed log's business keys, derived from the records; erasure removes a subject's rows"
)
class PredictionKey(models.Model):
    """The lookup index of business keys: one row per keyed row of a record. The key itself is
    proven by the record's leaf (business_keys_json); this table only finds it. Written in the
    same transaction as the record.

    Its created_at is its record's, so on PostgreSQL (partitioned by month like the log,
    migration 0023) a record's keys lie in the record's month and retention drops them with it;
    there the primary key is (id, created_at) and one_key_per_row is (record, row, created_at),
    which, a record having one created_at, still allows one key per record's row."""

    record = models.ForeignKey(
        PredictionLog,
        to_field="public_id",
        on_delete=models.PROTECT,
        related_name="keys",
        db_index=False,
        db_constraint=False,
    )
    row = models.PositiveIntegerField()
    key = models.CharField(max_length=200)
    created_at = models.DateTimeField()  # the record's

    class Meta:
        indexes = [models.Index(fields=["key"], name="serving_key_lookup")]
        constraints = [models.UniqueConstraint(fields=["record", "row"], name="one_key_per_row")]

    def __str__(self) -> str:
        return f"{self.key} -> {self.record_id}.{self.row}"


@ledger.evidence()
class Explanation(models.Model):
    """The explanation of one logged row, computed once (from the logged inputs, the immutable
    artifact and the evaluation data) and stored: every later call returns this row. Evidence:
    its content hash is chained in its audit event."""

    record = models.ForeignKey(
        PredictionLog, on_delete=models.PROTECT, related_name="explanations", db_constraint=False
    )
    row = models.PositiveIntegerField()
    method = models.CharField(max_length=100)
    # canonical JSON of the whole explanation, as returned by the API
    payload_json = models.TextField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["record", "row"], name="one_explanation_per_row")]

    def __str__(self) -> str:
        return f"explanation of {self.record_id}.{self.row}"

    @property
    def payload(self) -> Any:
        return json.loads(self.payload_json)


class ReviewAction(models.TextChoices):
    CONFIRMED = "confirmed", "Confirmed"
    OVERRIDDEN = "overridden", "Overridden"


@ledger.evidence()
class DecisionReview(models.Model):
    """A person's review of one automated decision (AI Act art. 14): confirmed or overridden,
    with the final decision and a justification. Several per row, kept in order (`seq`)."""

    record = models.ForeignKey(PredictionLog, on_delete=models.PROTECT, related_name="reviews", db_constraint=False)
    row = models.PositiveIntegerField()
    seq = models.PositiveIntegerField()
    action = models.CharField(max_length=10, choices=ReviewAction.choices)
    automated_decision = models.JSONField(null=True)
    final_decision = models.JSONField(null=True)
    justification = models.TextField()
    reviewer = models.CharField(max_length=150)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["record_id", "row", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["record", "row", "seq"], name="review_order_unique"),
            models.CheckConstraint(
                condition=models.Q(action__in=["confirmed", "overridden"]), name="review_action_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"review {self.seq} of {self.record_id}.{self.row}: {self.action}"


@ledger.evidence(
    which=lambda: models.Q(erased_at__isnull=False),
    runtime=("SELECT", "INSERT", "UPDATE"),
    reason="an erased subject key stays erased; live keys are wrapped by LOG_KEK",
)
class SubjectKey(models.Model):
    """The data key of one data subject's personal values in one model's log, for one UTC month
    (so retention can erase whole months). Stored wrapped (AES-256-GCM) by the key encryption
    key LOG_KEK; erasure clears `wrapped` and the values it encrypted read "[erased]" forever."""

    model_name = models.CharField(max_length=64)
    # HMAC-SHA256 of the subject's value under the log's MAC key: found by value, never stored
    subject_hash = models.CharField(max_length=64)
    month = models.DateField(help_text="The first day of the UTC month whose records it encrypts.")
    wrapped = models.BinaryField(null=True)
    kek_id = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    erased_at = models.DateTimeField(null=True, blank=True)
    erased_because = models.CharField(max_length=20, blank=True)  # "request" or "retention"

    class Meta:
        # Every lookup by subject asks for its live keys: the partial unique index serves them
        # (a second index on (model, subject) only cost each new subject's INSERT).
        constraints = [
            models.UniqueConstraint(
                fields=["model_name", "subject_hash", "month"],
                condition=models.Q(erased_at__isnull=True),
                name="one_live_key_per_subject_month",
            )
        ]

    def __str__(self) -> str:
        return f"key {self.pk} of a subject of {self.model_name} ({self.month:%Y-%m})"


@ledger.governed()
class LegalHold(models.Model):
    """A risk officer's legal hold on one model's log: while it is in force no personal data of
    the model is erased, on request (409 legal_hold) or by retention."""

    model_name = models.CharField(max_length=64)
    reason = models.TextField()
    placed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    placed_at = models.DateTimeField(auto_now_add=True)
    released_at = models.DateTimeField(null=True, blank=True)
    released_by_username = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-placed_at"]

    def __str__(self) -> str:
        return f"legal hold on {self.model_name}{'' if self.released_at is None else ' (released)'}"


# Human oversight and contestation: their own module, found by Django through this one.
from serving.oversight_models import (  # noqa: E402, F401
    Contestation,
    ContestationAnswer,
    OversightCursor,
    OversightItem,
    OversightReason,
    OversightRule,
)
