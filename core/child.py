"""Work in a child process that can be killed: a function and its arguments in, its result out
through a pipe, or the reason there is none (past its time limit, died, or raised).

Why a child: work in C code (a fit, a PDF render) cannot be interrupted from inside, and a killed
child takes its memory with it. The processes are billiard's (Celery's fork of multiprocessing):
a Celery prefork worker is a daemon process, which the standard library refuses to give
children. No Django here, so a fork server that preloads this module stays small."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class TimedOut(Exception):
    """The child ran past its time limit and was killed."""


class Died(Exception):
    """The child ended without sending a result."""

    def __init__(self, exitcode: int | None) -> None:
        super().__init__(f"the child process stopped without a result (exit code {exitcode})")
        self.exitcode = exitcode


class Failed(Exception):
    """The function raised in the child: its error, as text ("TypeName: message")."""


@dataclass
class Started:
    process: Any
    receiver: Any


def forkserver(preload: list[str]) -> Any:
    """A billiard fork-server context that preloads `preload` (started on first use, fresh: not
    forked from a worker that may have run OpenMP, which a forked child could deadlock in)."""
    import billiard

    context = billiard.get_context("forkserver")
    context.set_forkserver_preload(["core.child", *preload])
    return context


def die_with_parent() -> None:
    """Linux: SIGKILL this child when the process that forked it exits (a fork server does when
    the worker that started it is killed), so no orphan keeps working."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's time limit still applies
        pass


def _main(conn: Any, target: Callable[..., Any], args: tuple[Any, ...], orphan_dies: bool) -> None:
    if orphan_dies:
        die_with_parent()
    try:
        conn.send(("ok", target(*args)))
    except Exception as exc:  # sent back and raised as Failed in the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def start(context: Any, target: Callable[..., Any], *args: Any, orphan_dies: bool = False) -> Started:
    """Start target(*args) in a child of `context` (billiard's); collect it with result()."""
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_main, args=(sender, target, args, orphan_dies), daemon=True)
    process.start()
    sender.close()
    return Started(process, receiver)


def kill(process: Any) -> None:
    """SIGKILL (billiard's processes have no kill()): work in C code may ignore anything softer."""
    with contextlib.suppress(ProcessLookupError, TypeError):  # already gone, or never started
        os.kill(process.pid, signal.SIGKILL)


def result(started: Started, *, timeout: float | None = None) -> Any:
    """What the child's function returned. Raises TimedOut (the child killed) after `timeout`
    seconds, Died when it ended without a result, Failed with the function's own error."""
    if timeout is not None and not started.receiver.poll(timeout):
        kill(started.process)
        raise TimedOut(f"the child process ran past its time limit of {timeout:g} s and was stopped")
    try:
        status, payload = started.receiver.recv()
    except EOFError:
        raise Died(started.process.exitcode) from None
    if status != "ok":
        raise Failed(payload)
    return payload


def stop(started: Started) -> None:
    """Close the pipe and reap the child, killing it if it is still there after 5 s."""
    started.receiver.close()
    started.process.join(timeout=5)
    if started.process.is_alive():
        kill(started.process)
        started.process.join(timeout=5)


def run(context: Any, target: Callable[..., Any], *args: Any, timeout: float, orphan_dies: bool = False) -> Any:
    """target(*args) in a child process, killed after `timeout` seconds (see result())."""
    started = start(context, target, *args, orphan_dies=orphan_dies)
    try:
        return result(started, timeout=timeout)
    finally:
        stop(started)
