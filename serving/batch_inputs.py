"""A batch job's input file where it is personal data: a personal version's input is stored
encrypted like a dataset (lifecycle.encrypted_csv, a data key of its own wrapped by the KEK),
read chunk by chunk without decrypting the rest, and deleted when the job ends (the job keeps
its SHA-256). A batch may name a business-key column: its rows' keys, read here, are logged and
indexed as a real-time answer's are, so lookup and a subject's erasure reach them."""

from __future__ import annotations

import csv
import functools
import io
import tempfile
import uuid
from datetime import datetime, timedelta
from typing import IO, Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from core import audit, envelope
from lifecycle import encrypted_csv
from serving.errors import ServingError
from serving.models import BatchJob, LegalHold

CONTEXT = b"batch-input-key\x1f"


def _identity(job_id: uuid.UUID | str, sha256: str) -> bytes:
    # a file (or a wrapped key) copied to another job does not open there
    return encrypted_csv.identity(name=f"batch-{job_id}", version=0, sha256=sha256)


def store_encrypted(source: IO[bytes], *, job_id: uuid.UUID, sha256: str) -> tuple[str, str, bytes]:
    """Encrypt the plaintext in `source` (a local temporary file, never under MEDIA_ROOT) into
    storage; returns (stored name, KEK id, wrapped data key)."""
    ident = _identity(job_id, sha256)
    data_key = AESGCM.generate_key(bit_length=256)
    try:
        kek_id, wrapped = envelope.wrap(data_key, context=CONTEXT + ident)
    except envelope.KekUnavailable as exc:
        raise ServingError(exc.message, status=503, code="keys_unavailable") from None
    source.seek(0)
    with tempfile.TemporaryFile() as sealed:
        encrypted_csv.encrypt_stream(source, sealed, data_key, ident)
        sealed.seek(0)
        name = default_storage.save(f"batches/inputs/{job_id}.csv.enc", File(sealed))
    return name, kek_id, wrapped


def read_input(job: BatchJob, start: int, end: int) -> bytes:
    """Plaintext bytes [start, end) of the job's input, as stored (in clear or encrypted)."""
    if not job.input_file:
        raise ServingError("The job's input was deleted when it ended.", status=410, code="input_deleted")
    with default_storage.open(job.input_file, "rb") as handle:
        if not job.input_key_id:
            handle.seek(start)
            return handle.read(end - start)
        ident = _identity(job.public_id, job.input_sha256)
        try:
            key = envelope.unwrap(
                job.input_key_id,
                bytes(job.input_key_wrapped or b""),
                context=CONTEXT + ident,
                what=f"The input of batch {job.public_id}",
                its="its key",
            )
        except envelope.KekUnavailable as exc:
            raise ServingError(exc.message, status=503, code="keys_unavailable") from None
        return encrypted_csv.read_range(handle, key, ident, start=start, end=end, plain_size=job.input_bytes)


def delete_input_on_commit(job: BatchJob) -> None:
    """A personal input is deleted once the job's end commits; the job row keeps its SHA-256."""
    name = job.input_file
    transaction.on_commit(lambda: default_storage.delete(name))


def spool(upload: Any) -> IO[bytes]:
    """The upload's bytes in a local temporary file (outside MEDIA_ROOT)."""
    handle = tempfile.TemporaryFile()  # noqa: SIM115 (the caller closes it)
    for part in upload.chunks():
        handle.write(part)
    handle.seek(0)
    return handle


def column_keys(data: bytes, header: list[str], column: str, expected_rows: int) -> list[str] | None:
    """Each row's value of the business-key column, as text (None if the rows cannot be read as
    `expected_rows` records)."""
    index = header.index(column)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8", errors="replace"), newline="")))
    rows = [r for r in rows if r]
    if len(rows) != expected_rows:
        return None
    return [(r[index].strip() if index < len(r) else "")[:200] for r in rows]


def column_values(data: bytes, header: list[str], columns: list[str], expected_rows: int) -> list[list[str]] | None:
    """Each named column's values as sent, one list per column (None if the rows cannot be read
    as `expected_rows` records): the id columns a result line repeats."""
    indices = [header.index(c) for c in columns]
    rows = [r for r in csv.reader(io.StringIO(data.decode("utf-8", errors="replace"), newline="")) if r]
    if len(rows) != expected_rows:
        return None
    return [[r[i] if i < len(r) else "" for r in rows] for i in indices]


@transaction.atomic
def expire_results(*, retention_days: int, now: datetime | None = None) -> int:
    """Retention for batch results of personal versions: a result finished more than the policy's
    days ago is deleted (the job keeps its SHA-256), except under a legal hold; one audit event
    per job. Returns how many results were deleted."""
    cutoff = (now or timezone.now()) - timedelta(days=retention_days)
    held = set(LegalHold.objects.filter(released_at__isnull=True).values_list("model_name", flat=True))
    due = (
        BatchJob.objects.select_for_update(of=("self",))
        .filter(finished_at__lt=cutoff)
        .select_related("version")
        .exclude(result_file="")
        .exclude(model_name__in=held)
    )
    expired = 0
    for job in due:
        if not job.version.personal_features:  # (an empty list is not null)
            continue
        name = job.result_file
        transaction.on_commit(functools.partial(default_storage.delete, name))
        job.result_file = ""
        job.save(update_fields=["result_file"])
        audit.record(
            audit.BATCH_RESULT_EXPIRED,
            actor=None,
            target=job,
            data={"job": str(job.public_id), "result_sha256": job.result_sha256, "retention_days": retention_days},
        )
        expired += 1
    return expired
