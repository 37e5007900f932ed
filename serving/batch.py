"""Batch scoring jobs: a stored CSV split into chunks that any number of Celery workers score.

accept_batch() stores and plans the file and pins the version; run_chunk() scores one chunk and
writes its log records, its result lines and the job's counters in ONE transaction keyed by
(job, chunk), so a chunk delivered twice (a worker killed before it acknowledged) neither
duplicates nor loses a row; finish_batch() joins the result once every chunk is in. Each chunk
re-checks at its commit that the version is still servable (on PostgreSQL under FOR SHARE, so a
retirement commits before or after the chunk, never in between): retiring or suspending the
version mid-job refuses every remaining chunk and the job ends `stopped`."""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from core import audit
from core.errors import DomainError
from core.roles import AUDITORS, DATA_SCIENTISTS, RISK_OFFICERS, roles_of
from governance import jobs
from lifecycle.dataset_store import copy_dataset_to
from lifecycle.errors import ArtifactIntegrityError
from lifecycle.models import SERVABLE_STATUSES, Dataset, ModelVersion, RegisteredModel
from serving import batch_inputs, engine, log, personal, selectors
from serving.batch_csv import (
    BatchInputError,
    Chunk,
    csv_field,
    csv_fields,
    id_column_names,
    id_columns_problem,
    json_rows,
    number_texts,
    plan,
    read_chunk,
    schema_problem,
)
from serving.errors import ServingError
from serving.models import BatchChunk, BatchJob, BatchStatus, LogSource, Outcome, PredictionKey, PredictionLog

logger = logging.getLogger(__name__)
PROTOCOL = "csv"


@dataclass(frozen=True)
class Submitter:
    """Who asked for the job (as the log names callers)."""

    caller: str
    user: Any
    api_key: Any


def may_run_batch(user: Any, api_key: Any) -> bool:
    """A client key (bound to no user), or a data scientist or risk officer (in person or through
    a key bound to them)."""
    if api_key is not None and api_key.user_id is None:
        return True
    return bool(roles_of(user) & {DATA_SCIENTISTS, RISK_OFFICERS})


def may_read_batch(job: BatchJob, user: Any, api_key: Any) -> bool:
    """Whoever asked for the job (the same key, or the same person), risk officers and auditors."""
    if api_key is not None and api_key.user_id is None:
        return job.api_key_id == api_key.pk
    if roles_of(user) & {RISK_OFFICERS, AUDITORS}:
        return True
    return getattr(user, "pk", None) is not None and job.user_id == user.pk


def visible_jobs(user: Any) -> Any:
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
            jobs.after_commit("batch_chunk", job.pk, index)
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


class _Stop(Exception):
    """The chunk may not be scored: the version stopped being servable (or the job stopped)."""


def run_chunk(job_id: int, index: int) -> BatchChunk | None:
    """Score chunk `index` of the job, once. None when it was already done (a re-delivery)."""
    job = BatchJob.objects.select_related("version__registered_model").get(pk=job_id)
    if BatchChunk.objects.filter(job=job, index=index).exists():
        return None
    if job.status == BatchStatus.STOPPED:
        return _refuse_chunk(job, index, f"the job stopped: {job.reason}")
    if job.started_at is None:
        with transaction.atomic():
            started_now = BatchJob.objects.filter(pk=job.pk, started_at__isnull=True).update(
                started_at=timezone.now(), status=BatchStatus.RUNNING
            )
            if started_now:  # (governed state: its change is an event with the row's new hash)
                audit.record(audit.BATCH_STARTED, actor=None, target=job, data={"job": str(job.public_id)})
    started = time.perf_counter()
    first_row = index * job.chunk_rows
    n = min(job.chunk_rows, job.rows_total - first_row)
    version = job.version
    keys: list[str] | None = None
    try:
        data = _chunk_bytes(job, index)
        chunk = read_chunk(data, header=job.header, schema=version.input_schema, expected_rows=n)
        if job.business_key_column:
            keys = batch_inputs.column_keys(data, job.header, job.business_key_column, n)
            if keys is None:
                raise BatchInputError("the business-key column could not be read row by row")
    except BatchInputError as exc:
        chunk = _nothing(n, str(exc))
    try:
        result = engine.predict_frame(version, chunk.frame) if len(chunk.good) else None
    except ArtifactIntegrityError as exc:
        return _refuse_chunk(job, index, exc.message)
    except Exception as exc:  # a model that crashes on valid rows: the rows fail, the job goes on
        logger.warning("batch %s chunk %s: the model failed: %s", job.public_id, index, type(exc).__name__)
        message = f"the model could not predict on these rows: {type(exc).__name__}"
        chunk = _nothing(n, message, keep=chunk)
        result = None
    good_keys = [keys[int(p)] for p in chunk.good] if keys is not None else None
    records, indexed = _records(job, index, chunk, result, started, good_keys)
    lines = _result_lines(job, version, first_row, n, chunk, result, records, _id_values(job, index, n))
    try:
        with transaction.atomic():
            log.write_many(records)
            PredictionKey.objects.bulk_create(indexed, batch_size=1000)
            done = BatchChunk.objects.create(
                job=job,
                index=index,
                scored=True,
                rows=n,
                rows_failed=len(chunk.errors),
                result_csv=lines,
                worker=_worker(),
                seconds=round(time.perf_counter() - started, 3),
            )
            _require_servable(version, job)
            _count(job, n, len(chunk.errors))
    except _Stop as stop:
        return _refuse_chunk(job, index, str(stop))
    except IntegrityError:  # the same chunk committed meanwhile by another delivery
        return None
    return done


def _nothing(n: int, message: str, keep: Chunk | None = None) -> Chunk:
    """A chunk none of whose n rows is scored, each with `message` (or its own problem)."""
    errors = {**dict.fromkeys(range(n), message), **(keep.errors if keep else {})}
    return Chunk(
        frame=pd.DataFrame(), good=np.zeros(0, dtype=np.int64), errors=errors, raw_bad=keep.raw_bad if keep else []
    )


def _chunk_bytes(job: BatchJob, index: int) -> bytes:
    start = job.offsets[index]
    end = job.offsets[index + 1] if index + 1 < len(job.offsets) else job.input_bytes
    return batch_inputs.read_input(job, start, end)


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


def _require_servable(version: ModelVersion, job: BatchJob) -> None:
    """At the chunk's commit: the pinned version still has its artifact, a servable status and
    an unexpired approval, and the job was not stopped. On PostgreSQL the version row is read
    FOR SHARE, so a retirement waits for this commit (or this read waits for it)."""
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(ModelVersion._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR SHARE", [version.pk])  # noqa: S608
            # (and the model's row: a stop commits before or after this chunk, never in between)
            models_table = connection.ops.quote_name(RegisteredModel._meta.db_table)
            cursor.execute(f"SELECT 1 FROM {models_table} WHERE id = %s FOR SHARE", [version.registered_model_id])  # noqa: S608
    status, sha256, manifest_sha256, expires, suspended_reason = (
        ModelVersion.objects.filter(pk=version.pk)
        .values_list("status", "artifact_sha256", "manifest_sha256", "approval_expires_at", "suspended_reason")
        .get()
    )
    label = f"{job.model_name} v{version.version}"
    if sha256 != version.artifact_sha256:
        raise _Stop(f"{label}'s artifact changed since the job started")
    if manifest_sha256 != version.manifest_sha256:
        raise _Stop(f"{label}'s version manifest changed since the chunk was loaded")
    if status not in SERVABLE_STATUSES:
        why = f": {suspended_reason}" if status == "suspended" and suspended_reason else ""
        raise _Stop(f"{label} is {status} and no longer served{why}")
    if expires is not None and expires <= timezone.now():
        raise _Stop(f"{label}'s approval expired")
    if BatchJob.objects.filter(pk=job.pk, status=BatchStatus.STOPPED).exists():
        raise _Stop("the job stopped")
    # The model's kill switch: stopped, only its fallback scores, so a job pinned to another
    # version stops here rather than mixing two versions' answers in one result.
    stopped_at, fallback_id = (
        RegisteredModel.objects.filter(pk=version.registered_model_id)
        .values_list("stopped_at", "fallback_version_id")
        .get()
    )
    if stopped_at is not None and fallback_id != version.pk:
        raise _Stop(f"model_stopped: {job.model_name} was stopped by risk officers")


def _count(job: BatchJob, rows: int, failed: int) -> None:
    """Add the chunk to the job's counters (the row lock is held from here to the commit only);
    the chunk that completes the job asks for the result."""
    BatchJob.objects.filter(pk=job.pk).update(
        rows_done=F("rows_done") + rows, rows_failed=F("rows_failed") + failed, chunks_done=F("chunks_done") + 1
    )
    counts = BatchJob.objects.filter(pk=job.pk).values_list("chunks_done", "chunks_total").get()
    if counts[0] == counts[1]:
        jobs.after_commit("batch_finish", job.pk)


def _records(
    job: BatchJob, index: int, chunk: Chunk, result: Any, started: float, keys: list[str] | None = None
) -> tuple[list[PredictionLog], list[PredictionKey]]:
    """The chunk's log records: answered rows in records of BATCH_RECORD_ROWS rows (with their
    business keys, as the serving path logs and indexes them), and one `invalid` record holding
    the bad rows as sent, with each one's problem."""
    version = job.version
    per = settings.BATCH_RECORD_ROWS
    out = []
    indexed: list[PredictionKey] = []
    texts = json_rows(chunk.frame, version.input_schema) if len(chunk.good) else []
    for start in range(0, len(texts), per):
        outputs: dict[str, Any] = {"predictions": result.labels[start : start + per]}
        if result.probabilities is not None:
            outputs["probabilities"] = result.probabilities[start : start + per]
            outputs["classes"] = version.classes
        record_id = uuid.uuid4()
        stored_keys = keys[start : start + per] if keys is not None else None
        if personal.declares_personal(version):  # personal values encrypted under their subject's key
            rows = chunk.frame.iloc[start : start + per].to_dict(orient="records")
            protected, stored_keys = personal.protect(version, job.model_name, rows, stored_keys, record_id)
            inputs = log.dump_json(protected)
        else:
            inputs = "[" + ",".join(texts[start : start + per]) + "]"
        n = len(texts[start : start + per])
        record = _record(
            job, index, Outcome.OK, inputs, outputs, result.engine, "", started, rows=n, public_id=record_id,
            business_keys=stored_keys,
        )  # fmt: skip
        out.append(record)
        indexed += [
            PredictionKey(record_id=record_id, row=i, key=log.index_key(k)[:200])
            for i, k in enumerate(stored_keys or [])
        ]
    if chunk.errors:
        first = index * job.chunk_rows + 1
        problems = "; ".join(f"row {first + i}: {e}" for i, e in sorted(chunk.errors.items())[:50])
        more = f" (and {len(chunk.errors) - 50} more)" if len(chunk.errors) > 50 else ""
        reason = f"invalid_input: {len(chunk.errors)} rows of chunk {index} do not match the schema: {problems}{more}"
        bad = personal.redact(version, chunk.raw_bad)
        out.append(_record(job, index, Outcome.INVALID, bad, {}, "", reason, started))
    return out, indexed


def _record(
    job: BatchJob, index: int, outcome: str, inputs: Any, outputs: dict[str, Any], engine_name: str, reason: str,
    started: float, rows: int = 0, public_id: uuid.UUID | None = None, business_keys: list[str] | None = None,
) -> PredictionLog:  # fmt: skip
    """One log record of the chunk; `inputs` of an answered record is its JSON text already."""
    ok = outcome == Outcome.OK
    record = PredictionLog(
        public_id=public_id or uuid.uuid4(),
        created_at=timezone.now(),
        model_name=job.model_name,
        version=job.version,
        version_number=job.version.version,
        api_key=job.api_key,
        user=job.user,
        caller=job.caller,
        request_id=f"batch:{job.public_id}:{index}",
        protocol=PROTOCOL,
        outcome=outcome,
        reason=reason[:5000],
        n_rows=rows if ok else 0,
        inputs_json=inputs if ok else log.dump_json(log.json_safe(inputs)),
        outputs_json=log.dump_json(outputs),
        engine=engine_name,
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
        source=LogSource.BATCH,
        batch_job=job,
        batch_chunk=index,
        business_keys_json=log.dump_json(business_keys) if business_keys else "",
    )
    return log.sealed_form(record)


def result_header(version: ModelVersion, id_columns: list[str] | None = None) -> list[str]:
    probabilities = [f"probability_{c}" for c in version.classes] if version.task == "classification" else []
    return ["row", *(id_columns or []), "prediction", *probabilities, "prediction_id", "error"]


def _id_values(job: BatchJob, index: int, n: int) -> list[list[str]]:
    """The chunk's id-column values as sent (blank when its rows cannot be read one by one)."""
    if not job.id_columns:
        return []
    try:
        values = batch_inputs.column_values(_chunk_bytes(job, index), job.header, job.id_columns, n)
    except (DomainError, OSError):
        values = None
    return values if values is not None else [[""] * n for _ in job.id_columns]


def _result_lines(
    job: BatchJob, version: ModelVersion, first_row: int, n: int, chunk: Chunk, result: Any,
    records: list[PredictionLog], kept: list[list[str]],
) -> str:  # fmt: skip
    """The chunk's result lines, in input order: a scored row has its prediction, probabilities
    and prediction id; a bad row its error. Built column by column (floats as orjson writes
    them: the shortest text that reads back the same number)."""
    width = len(result_header(version)) - 1  # prediction, probabilities..., prediction_id, error
    fields: list[list[str]] = [[""] * n for _ in range(width)]
    good = chunk.good.tolist()
    if result is not None and good:
        per = settings.BATCH_RECORD_ROWS
        numbers = list(map(str, range(per)))
        prefixes = [f"{r.public_id}." for r in records if r.outcome == Outcome.OK]
        ids = [prefix + number for j, prefix in enumerate(prefixes) for number in numbers[: len(good) - j * per]]
        probabilities = (
            np.asarray(result.probabilities, dtype=float).T.tolist() if result.probabilities is not None else []
        )
        scored = [csv_fields(result.labels), *map(number_texts, probabilities[: width - 3]), ids]  # columns 0..width-2
        for c, column in enumerate(scored):
            if len(good) == n:  # every row scored: the column as it is
                fields[c] = column
                continue
            target = fields[c]
            for k, position in enumerate(good):
                target[position] = column[k]
    for i, problem in chunk.errors.items():
        fields[width - 1][i] = csv_field(problem)
    rows = map(str, range(first_row + 1, first_row + n + 1))
    fields = [csv_fields(column) for column in kept] + fields  # the id columns, after "row"
    line = ",".join(["%s"] * (len(fields) + 1)) + "\n"
    return "".join(map(line.__mod__, zip(rows, *fields, strict=True)))


def _refuse_chunk(job: BatchJob, index: int, reason: str) -> BatchChunk | None:
    """Record the chunk as refused (a `refused` log record, its rows marked not scored) and stop
    the job, in one transaction; None if the chunk was done meanwhile. The chunk that stops the
    job refuses every chunk not yet written too, so that the result (the rows answered, and
    every other row named "not scored") does not wait for chunks that may never be delivered."""
    try:
        with transaction.atomic():
            done = _write_refused_chunk(job, index, reason)
            stopping = BatchJob.objects.filter(pk=job.pk).exclude(status=BatchStatus.STOPPED)
            if stopping.update(status=BatchStatus.STOPPED, reason=reason[:5000]):
                audit.record(
                    audit.BATCH_STOPPED,
                    actor=None,
                    target=job,
                    data={"job": str(job.public_id), "chunk": index, "reason": reason},
                )
                written = set(BatchChunk.objects.filter(job=job).values_list("index", flat=True))
                for other in sorted(set(range(job.chunks_total)) - written):
                    try:
                        with transaction.atomic():  # (a savepoint: a chunk committed meanwhile is kept)
                            _write_refused_chunk(job, other, reason)
                    except IntegrityError:
                        continue
    except IntegrityError:
        return None
    return done


def _write_refused_chunk(job: BatchJob, index: int, reason: str) -> BatchChunk:
    first_row = index * job.chunk_rows
    n = min(job.chunk_rows, job.rows_total - first_row)
    message = f"not scored: {reason}"
    lines = _result_lines(job, job.version, first_row, n, _nothing(n, message), None, [], _id_values(job, index, n))
    why = f"version_not_servable: rows {first_row + 1}-{first_row + n}: {reason}"
    record = _record(job, index, Outcome.REFUSED, [], {}, "", why, time.perf_counter())
    done = BatchChunk.objects.create(
        job=job, index=index, scored=False, rows=n, rows_failed=n, result_csv=lines, reason=reason[:5000],
        worker=_worker(),
    )  # fmt: skip
    log.write_many([record])
    _count(job, n, n)
    return done


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
