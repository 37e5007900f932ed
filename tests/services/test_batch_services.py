"""Batch jobs on PostgreSQL with the real Celery worker through Redis: the chunks are scored by
the worker, and a worker process SIGKILLed in the middle of a chunk loses and duplicates
nothing (the chunk is given back to the broker and scored again, once)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any

import pandas as pd
from django.db.models import Sum

from lifecycle import demo_data
from serving import batch
from serving.models import BatchChunk, BatchJob, BatchStatus, Disposition, LogSource, PredictionLog
from tests.services.conftest import wait_for

FEATURES = demo_data.NUMERIC + demo_data.CATEGORICAL


def portfolio_csv(german: Any, n: int) -> bytes:
    frame = german[1]
    return pd.concat([frame] * (n // len(frame) + 1)).head(n).to_csv(index=False).encode()


def submit(production: Any, data: bytes) -> BatchJob:
    from tests.conftest import upload

    owner = production.created_by

    return batch.accept_batch(
        model_name=production.registered_model.name,
        version_number=None,
        submitter=batch.Submitter(caller="services-test", user=owner, api_key=None),
        upload=upload("loans.csv", data, "text/csv"),
    )


def logged_once(job: BatchJob) -> None:
    """Every row of every chunk is in exactly one answered log record."""
    for chunk in BatchChunk.objects.filter(job=job):
        rows = PredictionLog.objects.filter(batch_job=job, batch_chunk=chunk.index, outcome=Disposition.OK).aggregate(
            n=Sum("n_rows")
        )["n"]
        assert rows == chunk.rows - chunk.rows_failed, f"chunk {chunk.index}: {rows} logged of {chunk.rows}"
    total = PredictionLog.objects.filter(batch_job=job, outcome=Disposition.OK).aggregate(n=Sum("n_rows"))["n"]
    assert total == job.rows_total
    assert all(r.source == LogSource.BATCH for r in PredictionLog.objects.filter(batch_job=job))


def test_the_real_worker_scores_a_job(committed_db, celery_worker_process, production, german, settings):
    settings.BATCH_CHUNK_ROWS = 300
    job = submit(production, portfolio_csv(german, 1000))
    assert job.chunks_total == 4
    wait_for(lambda: BatchJob.objects.get(pk=job.pk).result_sha256, message="the job's result")
    job.refresh_from_db()
    assert job.status == BatchStatus.COMPLETED and job.rows_done == 1000
    logged_once(job)
    assert len(set(BatchChunk.objects.filter(job=job).values_list("worker", flat=True))) >= 1
    assert "serving.tasks.batch_chunk_task" in celery_worker_process.read_text()


def test_a_worker_killed_mid_chunk_loses_and_duplicates_nothing(
    committed_db, celery_worker_process, production, german, settings
):
    settings.BATCH_CHUNK_ROWS = 150_000
    data = portfolio_csv(german, 300_000)
    mark = len(celery_worker_process.read_text())
    job = submit(production, data)
    assert job.chunks_total == 2
    # as soon as the worker has taken chunk 0, while it scores it (nothing committed yet)
    deadline = time.monotonic() + 60
    while "batch_chunk_task" not in celery_worker_process.read_text()[mark:]:
        assert time.monotonic() < deadline, "no chunk was taken"
        time.sleep(0.02)
    assert not BatchChunk.objects.filter(job=job).exists(), "the chunk finished before it could be killed"
    children = subprocess.run(
        ["pgrep", "-P", str(_worker_master(celery_worker_process))], capture_output=True, text=True
    ).stdout.split()
    assert children, "no pool process found"
    for pid in children:
        os.kill(int(pid), signal.SIGKILL)
    wait_for(lambda: BatchJob.objects.get(pk=job.pk).result_sha256, message="the job to finish after the kill")
    job.refresh_from_db()
    assert job.status == BatchStatus.COMPLETED and job.rows_done == 300_000
    logged_once(job)
    assert BatchChunk.objects.filter(job=job).count() == 2
    log = celery_worker_process.read_text()[mark:]
    assert "signal 9" in log or "WorkerLostError" in log, log[-2000:]


def _worker_master(log_path: Any) -> int:
    """The worker's main process: the parent of its pool processes, found by its node name."""
    out = subprocess.run(["pgrep", "-f", "-o", "services-test@"], capture_output=True, text=True).stdout.split()
    return int(out[0])
