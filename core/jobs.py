"""Background work the workflow asks for once its transaction commits.

The workflow names the work ("run_check", "notify"), declaring each name where it asks for it
(job()); governance.tasks, which records check verdicts through the workflow and so imports it,
registers the Celery task for each name when the app is ready (GovernanceConfig.ready). So the
workflow never imports the tasks that import it; a job asked for before its task is registered is
a loud error, not lost work, and a job declared that no task provides fails the system check
(core.registry, core.E003)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import redis.exceptions
from django.db import models, transaction
from django.db.models import Q, QuerySet
from kombu.exceptions import OperationalError as BrokerOperationalError

from core.registry import Registry

log = logging.getLogger(__name__)
M = TypeVar("M", bound=models.Model)
JOBS: Registry[Callable[..., Any]] = Registry(
    "job", "task", "core.jobs.register it in the app's tasks module, imported by its AppConfig.ready"
)

# What sending raises when the broker is down. The change has committed by then, so the request
# must not fail: a check left queued is sent again by the periodic sweep
# (governance.tasks.resend_stranded_checks_task); a lost e-mail is only logged.
BROKER_DOWN = (BrokerOperationalError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def job(name: str, where: str) -> str:
    """Declare, in the module that sends it, that job `name` will be sent; returns the name."""
    return JOBS.want(name, where)


def register(name: str, send: Callable[..., Any]) -> None:
    """The task that runs job `name` (its `delay`), registered beside the task's definition."""
    JOBS.provide(name, send)


def after_commit(name: str, *args: Any) -> None:
    """Send job `name` with `args` once the current transaction commits (now, outside one)."""
    JOBS.get(name)  # a job nobody runs is a loud error now, not lost work later
    transaction.on_commit(functools.partial(_send, name, *args))


def _send(name: str, *args: Any) -> None:
    try:
        JOBS.get(name)(*args)
    except BROKER_DOWN as exc:
        log.warning(
            "job %s%r was not sent, the broker is unavailable (%s); the periodic sweep sends it", name, args, exc
        )


def stranded(
    rows: QuerySet[M],
    *,
    now: datetime,
    queued: tuple[str, str],
    running: tuple[str, str],
    queued_for: float,
    running_for: float,
) -> QuerySet[M]:
    """The rows of background work nobody is working on, for a sweep to send again: in status
    `queued[0]` since before `queued_for` seconds by their `queued[1]` time (the task was never
    sent, or lost with the broker), or in status `running[0]` since before `running_for` seconds
    by their `running[1]` time (the worker died). Every sweep asks this one rule."""
    (queued_status, queued_at), (running_status, started_at) = queued, running
    return rows.filter(
        Q(status=queued_status, **{f"{queued_at}__lt": now - timedelta(seconds=queued_for)})
        | Q(status=running_status, **{f"{started_at}__lt": now - timedelta(seconds=running_for)})
    ).order_by("pk")
