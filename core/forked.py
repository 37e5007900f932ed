"""Work shared out over forked processes that read the database themselves (a seal's
verification, a monitoring fold): whether they would see what this process sees, and running
one function per share in its own process (core.child), each on its own connection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connection, connections

from core import child


def others_can_read() -> bool:
    """Whether processes forked now read what this one reads: a database server (not SQLite's
    file) and no transaction open here whose rows they could not see."""
    return connection.vendor != "sqlite" and not connection.in_atomic_block


def run_forked(target: Callable[..., Any], shares: list[tuple[Any, ...]]) -> list[Any]:
    """target(*share) for each share, each in a forked process; this process's connections are
    closed first so that no socket is shared (each child opens its own, and closes it). In the
    order of `shares`: each result, or the child.Died or child.Failed it ended with, for the
    caller to decide what that means."""
    import billiard

    context = billiard.get_context("fork")
    connections.close_all()
    children = [child.start(context, _closing, target, share) for share in shares]
    outcomes: list[Any] = []
    try:
        for started in children:
            try:
                outcomes.append(child.result(started))
            except (child.Died, child.Failed) as exc:
                outcomes.append(exc)
    finally:
        for started in children:
            child.stop(started)
    return outcomes


def _closing(target: Callable[..., Any], share: tuple[Any, ...]) -> Any:
    try:
        return target(*share)
    finally:
        connections.close_all()
