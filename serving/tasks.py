"""Celery tasks of the serving app."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from core import jobs
from serving import batch, batch_chunks, batch_inputs, erasure, partitions, seals


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def seal_predictions_task() -> int:
    return seals.seal_all().records


# A chunk is acknowledged only once its transaction has committed, and given back to the queue
# if its worker dies: re-delivery is safe because the chunk is written once, keyed by (job, chunk).
@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def batch_chunk_task(job_id: int, index: int) -> int:
    done = batch_chunks.run_chunk(job_id, index)
    return done.rows if done is not None else 0


@shared_task(acks_late=True, reject_on_worker_lost=True, autoretry_for=(OperationalError,), max_retries=5)
def finish_batch_task(job_id: int) -> str:
    return batch.finish_batch(job_id).status


@shared_task(acks_late=True)
def resend_stranded_batches_task() -> int:
    """Send again the chunks of unfinished jobs that nobody has worked on for a while (a broker
    outage when they were sent); a chunk sent twice is scored once."""
    sent = 0
    for job_id, index in batch.stranded_chunks():
        batch_chunk_task.delay(job_id, index)
        sent += 1
    for job_id in batch.unfinished_complete_jobs():
        finish_batch_task.delay(job_id)
    return sent


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def erase_expired_personal_data_task() -> int:
    """Beat, daily: personal data past the policy's retention is erased (its keys destroyed)."""
    from governance.policies import active_policy

    days = active_policy().personal_data_retention_days
    counts = erasure.erase_expired(retention_days=days)
    return sum(counts.values()) + batch_inputs.expire_results(retention_days=days)


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def add_log_partitions_task() -> int:
    """Beat, daily: the prediction log's partitions for this month and the next ones exist
    before a record needs them (PostgreSQL; serving.partitions)."""
    return len(partitions.add_partitions())


jobs.register("batch_chunk", batch_chunk_task.delay)
jobs.register("batch_finish", finish_batch_task.delay)


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def route_decisions_task() -> int:
    """The oversight rules' sweep (serving.oversight): new decisions into the queue."""
    from serving import oversight

    return oversight.route_new_decisions()
