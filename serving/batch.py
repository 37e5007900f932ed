"""Batch scoring jobs: a stored CSV split into chunks that any number of Celery workers score.

accept_batch() stores and plans the file and pins the version; run_chunk() scores one chunk and
writes its log records, its result lines and the job's counters in ONE transaction keyed by
(job, chunk), so a chunk delivered twice (a worker killed before it acknowledged) neither
duplicates nor loses a row; finish_batch() joins the result once every chunk is in. Each chunk
re-checks at its commit that the version is still servable (on PostgreSQL under FOR SHARE, so a
retirement commits before or after the chunk, never in between): retiring or suspending the
version mid-job refuses every remaining chunk and the job ends `stopped`.

Scoring a chunk is serving.batch_chunks; this module accepts, finishes and reports on jobs."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import tempfile
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core import audit, jobs
from core.actors import Actor, pk_of
from core.errors import DomainError
from core.roles import AUDITORS, DATA_SCIENTISTS, RISK_OFFICERS, roles_of
from lifecycle.dataset_store import copy_dataset_to
from lifecycle.models import Dataset, ModelVersion
from serving import batch_inputs, personal, selectors
from serving.batch_chunks import result_header
from serving.batch_csv import (
    BatchInputError,
    id_column_names,
    id_columns_problem,
    plan,
    schema_problem,
)
from serving.errors import ServingError
from serving.models import ApiKey, BatchChunk, BatchJob, BatchStatus

# the background jobs this module sends (core.jobs; a task registers each)
BATCH_CHUNK = jobs.job("batch_chunk", __name__)


@dataclass(frozen=True)
class Submitter:
    """Who asked for the job (as the log names callers)."""

    caller: str
    user: Any
    api_key: Any


def may_run_batch(user: Actor, api_key: ApiKey | None) -> bool:
    """A client key (bound to no user), or a data scientist or risk officer (in person or through
    a key bound to them)."""
    if api_key is not None and api_key.user_id is None:
        return True
    return bool(roles_of(user) & {DATA_SCIENTISTS, RISK_OFFICERS})


def may_read_batch(job: BatchJob, user: Actor, api_key: ApiKey | None) -> bool:
    """Whoever asked for the job (the same key, or the same person), risk officers and auditors."""
    if api_key is not None and api_key.user_id is None:
        return job.api_key_id == api_key.pk
    if roles_of(user) & {RISK_OFFICERS, AUDITORS}:
        return True
    return pk_of(user) is not None and job.user_id == pk_of(user)


def visible_jobs(user: Actor) -> Any:
    """The jobs a person's page lists: all for risk officers and auditors, their own otherwise."""
    jobs_ = BatchJob.objects.select_related("version__registered_model").order_by("-created_at")
    if roles_of(user) & {RISK_OFFICERS, AUDITORS}:
        return jobs_
    user_id = getattr(user, "pk", None)
    return jobs_.filter(user_id=user_id) if user_id is not None else jobs_.none()


def accept_batch(
    *,
    model_name: str,
    version_number: int | None,
    submitter: Submitter,
    upload: Any = None,
    dataset_id: Any = None,
    business_key_column: str = "",
    id_columns: list[str] | str | None = None,
) -> BatchJob:
    """Resolve the servable version, store the CSV (or a decrypted copy of a stored dataset), plan its chunks
    and queue them. Anything wrong with the file is a named ServingError and leaves nothing. The
    rule of who may is enforced here too, not only by the API and the page."""
    if not may_run_batch(submitter.user, submitter.api_key):
        raise ServingError(
            "Batch jobs are for data scientists, risk officers and client API keys.", status=403, code="forbidden"
        )
    version = selectors.get_servable_version(model_name, version_number)
    key_column = (business_key_column or "").strip()
    ids = id_column_names(id_columns)
    public_id, kek_id, wrapped = uuid.uuid4(), "", None
    if personal.declares_personal(version):  # personal data: never in clear under MEDIA_ROOT
        local, name, dataset = _input_file(upload, dataset_id, local=True)
        with local:
            found = _planned(local, version, dataset, key_column, ids)
            stored, kek_id, wrapped = batch_inputs.store_encrypted(local, job_id=public_id, sha256=found.sha256)
    else:
        stored, name, dataset = _input_file(upload, dataset_id)
        try:
            with default_storage.open(stored, "rb") as handle:
                found = _planned(handle, version, dataset, key_column, ids)
        except BaseException:  # whatever failed, no input file is left without a job
            default_storage.delete(stored)  # the job's own copy (an upload, or a stored dataset decrypted)
            raise
    try:
        return _create_job(
            submitter, model_name, version, stored, name, dataset, found, public_id, kek_id, wrapped, key_column, ids
        )
    except BaseException:  # the job's rows rolled back: its input file goes too (not a committed job's)
        if not BatchJob.objects.filter(input_file=stored).exists():
            default_storage.delete(stored)
        raise


def _create_job(
    submitter: Any, model_name: str, version: ModelVersion, stored: str, name: str, dataset: Dataset | None,
    found: Any, public_id: uuid.UUID, kek_id: str, wrapped: Any, key_column: str, ids: list[str],
) -> BatchJob:  # fmt: skip
    with transaction.atomic():
        job = BatchJob.objects.create(
            public_id=public_id,
            input_key_id=kek_id,
            input_key_wrapped=wrapped,
            business_key_column=key_column,
            id_columns=ids,
            model_name=model_name,
            version=version,
            input_file=stored,
            input_name=name[:255],
            input_sha256=found.sha256,
            input_bytes=found.end,
            dataset=dataset,
            header=found.header,
            offsets=found.offsets,
            chunk_rows=settings.BATCH_CHUNK_ROWS,
            rows_total=found.rows_total,
            chunks_total=len(found.offsets),
            caller=submitter.caller[:150],
            user=submitter.user if getattr(submitter.user, "pk", None) else None,
            api_key=submitter.api_key,
        )
        audit.record(
            audit.BATCH_ACCEPTED,
            actor=submitter.user if getattr(submitter.user, "pk", None) else None,
            target=job,
            data={
                "job": str(job.public_id),
                "model": model_name,
                "version": version.version,
                "caller": job.caller,
                "input_sha256": job.input_sha256,
                "input_bytes": job.input_bytes,
                "rows": job.rows_total,
                "chunks": job.chunks_total,
                "dataset": dataset.pk if dataset else None,
            },
        )
        for index in range(job.chunks_total):
            jobs.after_commit(BATCH_CHUNK, job.pk, index)
    return job


def _planned(handle: Any, version: ModelVersion, dataset: Dataset | None, key_column: str, ids: list[str]) -> Any:
    """The file's plan, or a named 400: unreadable, not the dataset's bytes any more, missing an
    input column or the named business-key column."""
    try:
        found = plan(handle, chunk_rows=settings.BATCH_CHUNK_ROWS)
        if dataset is not None and found.sha256 != dataset.sha256:
            raise BatchInputError(f"The stored file of dataset {dataset} no longer has its recorded SHA-256.")
        problem = schema_problem(found.header, version.input_schema)
        if problem:
            raise BatchInputError(problem)
        if key_column and key_column not in found.header:
            raise BatchInputError(f"The file has no business-key column {key_column[:100]!r}.")
        problem = id_columns_problem(found.header, ids, result_header(version), version.personal_features)
        if problem:
            raise BatchInputError(problem)
    except BatchInputError as exc:
        raise ServingError(str(exc), status=400, code="invalid_batch") from None
    return found


def _input_file(upload: Any, dataset_id: Any, local: bool = False) -> tuple[Any, str, Dataset | None]:
    """The job's input: stored as it is (its name), or with `local` a temporary file outside
    MEDIA_ROOT (a handle), for a personal version's input to be encrypted before it is stored."""
    if (upload is None) == (dataset_id is None):
        raise ServingError(
            'Send the rows as a CSV file in "data", or the id of a stored dataset in "dataset" (one of the two).',
            status=400,
            code="invalid_batch",
        )
    if upload is not None:
        if upload.size > settings.BATCH_MAX_BYTES:
            raise ServingError(
                f"The file has {upload.size} bytes; a batch takes at most {settings.BATCH_MAX_BYTES}.",
                status=413,
                code="too_large",
            )
        if local:
            return batch_inputs.spool(upload), os.path.basename(getattr(upload, "name", "") or "upload.csv"), None
        # A temporary upload is moved, not copied, by the file system storage.
        stored = default_storage.save(f"batches/inputs/{uuid.uuid4()}.csv", upload)
        return stored, os.path.basename(getattr(upload, "name", "") or "upload.csv"), None
    if isinstance(dataset_id, bool) or not isinstance(dataset_id, int):
        raise ServingError('"dataset" must be the id (a number) of a stored dataset.', status=400, code="invalid_batch")
    dataset = Dataset.objects.filter(pk=dataset_id).first()
    if dataset is None:
        raise ServingError(f"There is no dataset {dataset_id}.", status=404, code="not_found")
    return _dataset_copy(dataset, local), f"{dataset.name} v{dataset.version}", dataset


def _dataset_copy(dataset: Dataset, local: bool = False) -> Any:
    """The job's own input: the stored dataset decrypted and verified, stored as an uploaded CSV
    is (batch inputs follow the batch job's storage, not the dataset's key), or with `local` the
    temporary file itself."""
    spool = tempfile.TemporaryFile()  # noqa: SIM115 (returned open, or closed below)
    try:
        copy_dataset_to(dataset, spool)
    except DomainError as exc:  # a destroyed key (410), a wrong LOG_KEK (503), a changed file (409)
        spool.close()
        raise ServingError(exc.message, status=exc.status, code=exc.code, details=exc.details) from None
    spool.seek(0)
    if local:
        return spool
    with spool:
        return default_storage.save(f"batches/inputs/{uuid.uuid4()}.csv", File(spool))


@transaction.atomic
def finish_batch(job_id: int) -> BatchJob:
    """Join the chunks' lines into the result CSV, record its SHA-256 with an audit event, and
    end the job (`completed`, or `stopped` with its reason). Once: a second call changes nothing."""
    job = BatchJob.objects.select_for_update().select_related("version").get(pk=job_id)
    if job.result_sha256 or job.chunks_done < job.chunks_total:
        return job
    digest = hashlib.sha256()
    with tempfile.TemporaryFile() as spool:
        head = io.StringIO()
        csv.writer(head, lineterminator="\n").writerow(result_header(job.version, job.id_columns))
        for text in [head.getvalue()]:
            digest.update(text.encode())
            spool.write(text.encode())
        for part in (
            BatchChunk.objects.filter(job=job)
            .order_by("index")
            .values_list("result_csv", flat=True)
            .iterator(chunk_size=4)
        ):
            data = part.encode()
            digest.update(data)
            spool.write(data)
        spool.seek(0)
        job.result_file = default_storage.save(f"batches/results/{job.public_id}.csv", File(spool))
    job.result_sha256 = digest.hexdigest()
    job.finished_at = timezone.now()
    if job.status != BatchStatus.STOPPED:
        job.status = BatchStatus.COMPLETED
    fields = ["result_file", "result_sha256", "finished_at", "status"]
    if job.input_key_id and job.input_file:  # a personal input: gone with the job (its SHA-256 stays)
        batch_inputs.delete_input_on_commit(job)
        job.input_file = ""
        fields.append("input_file")
    job.save(update_fields=fields)
    audit.record(
        audit.BATCH_FINISHED,
        actor=None,
        target=job,
        data={
            "job": str(job.public_id),
            "status": job.status,
            "reason": job.reason,
            "rows": job.rows_total,
            "rows_failed": job.rows_failed,
            "input_sha256": job.input_sha256,
            "result_sha256": job.result_sha256,
        },
    )
    return job


def unscored_rows(job: BatchJob) -> list[list[int]]:
    """The rows (1-based, inclusive ranges) of the chunks a stopped job did not score."""
    ranges: list[list[int]] = []
    for index, rows in job.chunks.filter(scored=False).order_by("index").values_list("index", "rows"):
        first = index * job.chunk_rows + 1
        if ranges and ranges[-1][1] + 1 == first:
            ranges[-1][1] = first + rows - 1
        else:
            ranges.append([first, first + rows - 1])
    return ranges


def progress(job: BatchJob) -> dict[str, Any]:
    """What the progress bar shows: rows done of total, rows per second, seconds left."""
    elapsed = ((job.finished_at or timezone.now()) - job.started_at).total_seconds() if job.started_at else 0.0
    rate = job.rows_done / elapsed if elapsed > 0 else 0.0
    left = (job.rows_total - job.rows_done) / rate if rate > 0 and not job.finished_at else None
    return {
        "rows_done": job.rows_done,
        "rows_total": job.rows_total,
        "rows_failed": job.rows_failed,
        "percent": round(100 * job.rows_done / job.rows_total, 1) if job.rows_total else 100.0,
        "rows_per_second": round(rate, 1),
        "seconds_left": round(left, 1) if left is not None else None,
    }


def stranded_chunks() -> list[tuple[int, int]]:
    """(job, chunk) pairs of unfinished jobs with no chunk written for longer than a chunk may
    take (the task time limit) plus the broker's redelivery delay: they were never delivered."""
    quiet = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + settings.BATCH_STRANDED_AFTER_SECONDS)
    cutoff = timezone.now() - quiet
    out = []
    for job in BatchJob.objects.filter(
        status__in=[BatchStatus.QUEUED, BatchStatus.RUNNING, BatchStatus.STOPPED]
    ).filter(result_sha256="", created_at__lt=cutoff):
        latest = job.chunks.order_by("-created_at").values_list("created_at", flat=True).first()
        if latest is not None and latest > cutoff:
            continue
        done = set(job.chunks.values_list("index", flat=True))
        out += [(job.pk, i) for i in range(job.chunks_total) if i not in done]
    return out


def unfinished_complete_jobs() -> list[int]:
    """Jobs whose every chunk is in but whose result was never joined (its task was lost)."""
    return list(BatchJob.objects.filter(result_sha256="", chunks_done=F("chunks_total")).values_list("pk", flat=True))
