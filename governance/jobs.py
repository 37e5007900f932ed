"""Background work the workflow asks for once its transaction commits.

The workflow names the work ("run_check", "notify"); governance.tasks, which records check
verdicts through the workflow and so imports it, registers the Celery task for each name when the
app is ready (GovernanceConfig.ready). So the workflow never imports the tasks that import it,
and a job asked for before its task is registered is a loud error, not lost work."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.db import transaction

_senders: dict[str, Callable[..., Any]] = {}


def register(name: str, send: Callable[..., Any]) -> None:
    _senders[name] = send


def after_commit(name: str, *args: Any) -> None:
    """Send job `name` with `args` once the current transaction commits (now, outside one)."""
    if name not in _senders:
        raise RuntimeError(f"no task is registered for the job {name!r} (is governance.tasks imported?)")
    transaction.on_commit(functools.partial(_senders[name], *args))
