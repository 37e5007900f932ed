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

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from core import child as child_process

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


def _fit_predict(estimator: Any, X: Any, y: Any, X_eval: Any) -> np.ndarray:
    return np.asarray(estimator.fit(X, y).predict(X_eval))


@dataclass
class _Server:
    context: Any = None


_server = _Server()


def _context() -> Any:
    if _server.context is None:
        preload = ["governance.refit", "pandas", "sklearn.ensemble", "sklearn.pipeline"]
        _server.context = child_process.forkserver(preload)
    return _server.context


def refit_and_predict(estimator: Any, X: Any, y: Any, X_eval: Any, *, timeout: float) -> np.ndarray:
    """Fit the (unfitted) `estimator` on X, y and predict X_eval in a child process; raise
    RefitStopped when it runs past `timeout` seconds or dies, and RefitFailed with the estimator's
    own error (a model that fails on its own data is a finding of the check)."""
    try:
        return child_process.run(_context(), _fit_predict, estimator, X, y, X_eval, timeout=timeout, orphan_dies=True)
    except child_process.TimedOut:
        raise RefitStopped(f"the refit ran past its time limit of {timeout:g} s and was stopped") from None
    except child_process.Died as exc:
        raise RefitStopped(f"the refit process stopped without a result (exit code {exc.exitcode})") from None
    except child_process.Failed as exc:
        raise RefitFailed(str(exc)) from None
