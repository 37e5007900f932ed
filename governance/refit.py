"""The reproducibility check's refit, bounded: an estimated cost from the parameters, and the fit
itself in a child process that is killed after a time limit (estimator and frames in, the
refit's predictions out; no Django, so the child starts from a small fork server).

Why a child process: a fit cannot be interrupted from inside (scikit-learn's loops run in C),
and a killed child takes its memory with it. Why billiard's fork server: a Celery prefork worker
is a daemon process, which the standard library's multiprocessing refuses to give children;
billiard (Celery's own fork of it) allows them. The server is started fresh (not forked from a
worker that may have run OpenMP, which a forked child could deadlock in) and preloads
scikit-learn once, so each refit starts in milliseconds."""

from __future__ import annotations

import contextlib
import numbers
import os
import signal
from dataclasses import dataclass
from typing import Any

import numpy as np

COST_PARAMETER = "n_estimators"


class RefitStopped(Exception):
    """The refit was not finished: too slow, or the child process died. The message says why."""


class RefitFailed(Exception):
    """The estimator raised while refitting or predicting (its own error, as text)."""


def estimated_estimators(model: Any, *, _depth: int = 0) -> int:
    """How many fitted sub-estimators (trees, boosting stages) a refit would build, from the
    parameters alone: n_estimators, multiplied through nested ensembles (bagging of forests) and
    summed over pipeline steps, transformers and stacked or voting estimators."""
    if _depth > 50:  # schemas nest at most 100 levels (lifecycle.artifacts); never loop
        return 0
    try:
        params = model.get_params(deep=False)
    except Exception:  # not an estimator: nothing to count
        return 0
    value = params.get(COST_PARAMETER)
    own = max(int(value), 0) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else 0
    inner = 0
    for param in params.values():
        for child in _estimators_in(param):
            inner += estimated_estimators(child, _depth=_depth + 1)
    if own and inner:
        return own * inner
    return own + inner


def _estimators_in(value: Any) -> list[Any]:
    if hasattr(value, "get_params") and not isinstance(value, type):
        return [value]
    if isinstance(value, (list, tuple)):  # steps, transformers, (name, estimator[, columns]) lists
        found: list[Any] = []
        for item in value:
            found.extend(_estimators_in(item))
        return found
    return []


def _die_with_parent() -> None:
    """Linux: SIGKILL this child when the fork server that forked it exits (it does when the
    worker that started it is killed), so no orphan keeps fitting."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's timeout still applies
        pass


def _child(conn: Any, estimator: Any, X: Any, y: Any, X_eval: Any) -> None:
    _die_with_parent()
    try:
        conn.send(("ok", np.asarray(estimator.fit(X, y).predict(X_eval))))
    except Exception as exc:  # sent back and raised in the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


@dataclass
class _Server:
    context: Any = None


_server = _Server()


def _context() -> Any:
    if _server.context is None:
        import billiard

        context = billiard.get_context("forkserver")
        context.set_forkserver_preload(["governance.refit", "pandas", "sklearn.ensemble", "sklearn.pipeline"])
        _server.context = context
    return _server.context


def _kill(process: Any) -> None:
    """SIGKILL (billiard's processes have no kill()): a fit in C code may ignore anything softer."""
    with contextlib.suppress(ProcessLookupError, TypeError):  # already gone, or never started
        os.kill(process.pid, signal.SIGKILL)


def refit_and_predict(estimator: Any, X: Any, y: Any, X_eval: Any, *, timeout: float) -> np.ndarray:
    """Fit the (unfitted) `estimator` on X, y and predict X_eval in a child process; raise
    RefitStopped when it runs past `timeout` seconds or dies, and RefitFailed with the estimator's
    own error (a model that fails on its own data is a finding of the check)."""
    context = _context()
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, estimator, X, y, X_eval), daemon=True)
    process.start()
    sender.close()
    try:
        if not receiver.poll(timeout):
            _kill(process)
            raise RefitStopped(f"the refit ran past its time limit of {timeout:g} s and was stopped")
        try:
            status, payload = receiver.recv()
        except EOFError:
            raise RefitStopped(f"the refit process stopped without a result (exit code {process.exitcode})") from None
    finally:
        receiver.close()
        process.join(timeout=5)
        if process.is_alive():
            _kill(process)
            process.join(timeout=5)
    if status != "ok":
        raise RefitFailed(payload)
    return payload
