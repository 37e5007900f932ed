"""Seal verification spread over the cores. Each seal is judged on its own (its records read once,
each leaf recomputed and its MAC checked, the root recomputed: serving.seals._judge), so on
PostgreSQL the seals of a large verification are judged by up to VERIFY_PROCESSES forked
processes (core.forked), each on its own database connection, and serving.seals.verify_seals reads
their verdicts in the order of the seal events: the same messages, in the same order, as judging
them one after the other. A process that dies or fails leaves its seals to be judged here, one
after the other, as they would have been without it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from core import child as child_process
from core import forked

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    seal_id: int
    span: tuple[str, str] | None  # the records' time span its audit event recorded
    root: str  # the root its audit event recorded
    size: int  # the records it covered (to share the work out)


@dataclass(frozen=True)
class Judged:
    records: int  # the seal's records read (within its span)
    root: str  # the root recomputed from them
    forged: tuple[int, str] | None  # the first record whose MAC fails: (id, message)
    changed: str | None  # when the roots differ, the first record whose leaf no longer matches its stored hash


Judge = Callable[[Job], Judged]


def processes_for(jobs: list[Job]) -> int:
    """How many processes judge these seals: one unless the database is a server other processes
    can read (not SQLite, not inside a transaction they could not see), there are several seals,
    and each process gets at least VERIFY_RECORDS_PER_PROCESS records."""
    wanted = max(1, settings.VERIFY_PROCESSES)
    if wanted == 1 or len(jobs) < 2 or not forked.others_can_read():
        return 1
    records = sum(job.size for job in jobs)
    return max(1, min(wanted, len(jobs), records // max(1, settings.VERIFY_RECORDS_PER_PROCESS)))


def judge_all(judge: Judge, jobs: list[Job]) -> dict[int, Judged]:
    """Each seal's verdict by its id, judged in processes; {} when one process would do (the
    caller then judges each seal as it comes, and stops at the first that fails)."""
    parts = processes_for(jobs)
    if parts == 1:
        return {}
    shares: list[list[Job]] = [[] for _ in range(parts)]
    loads = [0] * parts
    for job in sorted(jobs, key=lambda j: -j.size):  # the largest first, each to the least loaded
        least = loads.index(min(loads))
        shares[least].append(job)
        loads[least] += job.size
    verdicts: dict[int, Judged] = {}
    for share, outcome in zip(
        shares, forked.run_forked(_judge_share, [(judge, share) for share in shares]), strict=True
    ):
        if isinstance(outcome, (child_process.Died, child_process.Failed)):
            logger.warning("seal verification: a process judging %s seals stopped (%s)", len(share), outcome)
            outcome = _judge_share(judge, share)
        verdicts.update(outcome)
    logger.info("seal verification: %s seals judged by %s processes", len(jobs), parts)
    return verdicts


def _judge_share(judge: Judge, share: list[Job]) -> dict[int, Judged]:
    return {job.seal_id: judge(job) for job in share}
