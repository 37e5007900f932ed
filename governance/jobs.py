"""Background work the workflow asks for once its transaction commits.

The workflow names the work ("run_check", "notify"); governance.tasks, which records check
verdicts through the workflow and so imports it, registers the Celery task for each name when the
app is ready (GovernanceConfig.ready). So the workflow never imports the tasks that import it,
and a job asked for before its task is registered is a loud error, not lost work."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import redis.exceptions
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerOperationalError

log = logging.getLogger(__name__)
_senders: dict[str, Callable[..., Any]] = {}

# What sending raises when the broker is down. The change has committed by then, so the request
# must not fail: a check left queued is sent again by the periodic sweep
# (governance.tasks.resend_stranded_checks_task); a lost e-mail is only logged.
BROKER_DOWN = (BrokerOperationalError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def register(name: str, send: Callable[..., Any]) -> None:
    _senders[name] = send


def after_commit(name: str, *args: Any) -> None:
    """Send job `name` with `args` once the current transaction commits (now, outside one)."""
    if name not in _senders:
        raise RuntimeError(f"no task is registered for the job {name!r} (is governance.tasks imported?)")
    transaction.on_commit(functools.partial(_send, name, *args))


def _send(name: str, *args: Any) -> None:
    try:
        _senders[name](*args)
    except BROKER_DOWN as exc:
        log.warning(
            "job %s%r was not sent, the broker is unavailable (%s); the periodic sweep sends it", name, args, exc
        )
