"""Scoring one chunk of a batch job (serving.batch accepts and finishes the job): its log
records, result lines and the job's counters written in ONE transaction keyed by (job, chunk),
the version re-checked at that commit, and a chunk refused once the version or the job stopped."""

from __future__ import annotations

import gc
import logging
import os
import socket
import time
import uuid
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from core import audit, jobs
from core.errors import DomainError
from lifecycle.errors import ArtifactIntegrityError
from lifecycle.models import SERVABLE_STATUSES, ModelVersion, RegisteredModel
from serving import batch_inputs, engine, log, personal
from serving.batch_csv import (
    BatchInputError,
    Chunk,
    csv_field,
    csv_fields,
    interleave,
    json_records,
    number_texts,
    read_chunk,
)
from serving.models import BatchChunk, BatchJob, BatchStatus, Disposition, LogSource, PredictionKey, PredictionLog
from serving.writers import writer

logger = logging.getLogger(__name__)
PROTOCOL = "csv"
# the background job this module sends when a job's last chunk is done (core.jobs; a task registers it)
BATCH_FINISH = jobs.job("batch_finish", __name__)


class _Stop(Exception):
    """The chunk may not be scored: the version stopped being servable (or the job stopped)."""


def run_chunk(job_id: int, index: int) -> BatchChunk | None:
    """Score chunk `index` of the job, once. None when it was already done (a re-delivery)."""
    # The chunk's objects die by reference counting; the collector, left on, ran its passes over
    # the chunk's short-lived containers again and again. It runs again once the chunk is done.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _run_chunk(job_id, index)
    finally:
        if enabled:
            gc.enable()


def _run_chunk(job_id: int, index: int) -> BatchChunk | None:
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
    writer().share_servable(version)  # (and the model's row: a stop commits before or after this chunk)
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
        jobs.after_commit(BATCH_FINISH, job.pk)


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
    texts = json_records(chunk.frame, version.input_schema, per) if len(chunk.good) else []
    for start, text in zip(range(0, len(chunk.good), per), texts, strict=True):
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
            inputs = text
        n = len(result.labels[start : start + per])
        record = _record(
            job, index, Disposition.OK, inputs, outputs, result.engine, "", started, rows=n, public_id=record_id,
            business_keys=stored_keys,
        )  # fmt: skip
        out.append(record)
        indexed += [
            PredictionKey(record_id=record_id, row=i, key=log.index_key(k)[:200], created_at=record.created_at)
            for i, k in enumerate(stored_keys or [])
        ]
    if chunk.errors:
        first = index * job.chunk_rows + 1
        problems = "; ".join(f"row {first + i}: {e}" for i, e in sorted(chunk.errors.items())[:50])
        more = f" (and {len(chunk.errors) - 50} more)" if len(chunk.errors) > 50 else ""
        reason = f"invalid_input: {len(chunk.errors)} rows of chunk {index} do not match the schema: {problems}{more}"
        bad = personal.redact(version, chunk.raw_bad)
        out.append(_record(job, index, Disposition.INVALID, bad, {}, "", reason, started))
    return out, indexed


def _record(
    job: BatchJob, index: int, outcome: str, inputs: Any, outputs: dict[str, Any], engine_name: str, reason: str,
    started: float, rows: int = 0, public_id: uuid.UUID | None = None, business_keys: list[str] | None = None,
) -> PredictionLog:  # fmt: skip
    """One log record of the chunk; `inputs` of an answered record is its JSON text already."""
    ok = outcome == Disposition.OK
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
        outputs_json=log.dump_json(outputs, arrays=True),
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
        prefixes = [f"{r.public_id}." for r in records if r.outcome == Disposition.OK]
        ids = [prefix + number for j, prefix in enumerate(prefixes) for number in numbers[: len(good) - j * per]]
        probabilities = np.asarray(result.probabilities, dtype=np.float64) if result.probabilities is not None else None
        columns = [probabilities[:, j] for j in range(probabilities.shape[1])] if probabilities is not None else []
        labels = number_texts(result.labels) if isinstance(result.labels, np.ndarray) else csv_fields(result.labels)
        scored = [labels, *map(number_texts, columns[: width - 3]), ids]  # columns 0..width-2
        for c, column in enumerate(scored):
            if len(good) == n:  # every row scored: the column as it is
                fields[c] = column
                continue
            target = fields[c]
            for k, position in enumerate(good):
                target[position] = column[k]
    for i, problem in chunk.errors.items():
        fields[width - 1][i] = csv_field(problem)
    rows = list(map(str, range(first_row + 1, first_row + n + 1)))
    fields = [csv_fields(column) for column in kept] + fields  # the id columns, after "row"
    if not n:
        return ""
    # one %-format over all the lines, the fields in row order: no tuple or text per line
    line = ",".join(["%s"] * (len(fields) + 1)) + "\n"
    return (line * n) % tuple(interleave([rows, *fields]))


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
    record = _record(job, index, Disposition.REFUSED, [], {}, "", why, time.perf_counter())
    done = BatchChunk.objects.create(
        job=job, index=index, scored=False, rows=n, rows_failed=n, result_csv=lines, reason=reason[:5000],
        worker=_worker(),
    )  # fmt: skip
    log.write_many([record])
    _count(job, n, n)
    return done
