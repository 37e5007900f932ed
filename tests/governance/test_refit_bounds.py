"""The reproducibility refit is bounded whatever the policy: a model whose parameters
ask for too many estimators is not refitted, and a refit past REFIT_MAX_SECONDS is stopped;
both end the check inconclusive, naming why, instead of holding the only check worker."""

from __future__ import annotations

import time

import pytest
import skops.io as sio
from sklearn.ensemble import BaggingClassifier, RandomForestClassifier, StackingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from governance import checks, refit
from governance.models import CheckRun
from lifecycle import demo_data
from tests.conftest import make_version

pytestmark = pytest.mark.django_db


def _reproducibility(version) -> CheckRun:
    return CheckRun.objects.get(version=version, kind="reproducibility")


def _submitted(version, actor) -> CheckRun:
    """Submit without running the checks; return the reproducibility check, still queued."""
    from config.celery import app
    from governance import workflow

    before = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        workflow.submit_version(version.pk, actor=actor)
    finally:
        app.conf.task_always_eager = before
    return _reproducibility(version)


def test_the_estimated_cost_multiplies_nested_ensembles_and_sums_steps():
    assert refit.estimated_estimators(RandomForestClassifier(n_estimators=300_000)) == 300_000
    bagged_forests = BaggingClassifier(RandomForestClassifier(n_estimators=100), n_estimators=100)
    assert refit.estimated_estimators(make_pipeline(StandardScaler(), bagged_forests)) == 10_000
    stacked = StackingClassifier(
        [("a", RandomForestClassifier(n_estimators=3000)), ("b", RandomForestClassifier(n_estimators=3000))]
    )
    assert refit.estimated_estimators(stacked) == 6000
    assert refit.estimated_estimators(make_pipeline(StandardScaler(), LogisticRegression())) == 0


def test_a_forest_saved_with_300000_trees_is_inconclusive_at_once_naming_n_estimators(
    data_scientist, registered_model, german, train_csv, eval_csv, settings
):
    forest = demo_data.train_random_forest(german[0], n_estimators=3)
    forest.set_params(classify__n_estimators=300_000)  # never fitted that large: only the parameter says so
    version = make_version(data_scientist, registered_model, sio.dumps(forest), train_csv, eval_csv)
    check = _submitted(version, data_scientist)
    started = time.monotonic()
    verdict = checks.run_check(check.pk)
    assert time.monotonic() - started < 1
    assert verdict is not None and verdict.status == "inconclusive", verdict
    assert verdict.metrics["refit"] == "not attempted" and verdict.metrics["estimated_estimators"] == 300_000
    assert "n_estimators" in verdict.warning and "REFIT_MAX_ESTIMATORS = 5000" in verdict.warning
    assert verdict.metrics["reason"] == verdict.warning
    settings.REFIT_MAX_ESTIMATORS = 10**6  # the setting, not the policy, draws the line
    assert refit.estimated_estimators(forest) <= settings.REFIT_MAX_ESTIMATORS


def test_a_refit_past_refit_max_seconds_is_stopped_and_inconclusive(
    data_scientist, registered_model, german, train_csv, eval_csv, settings
):
    forest = demo_data.train_random_forest(german[0], n_estimators=3)
    forest.set_params(classify__n_estimators=4_000, classify__max_depth=None)  # under the estimator limit, slow
    version = make_version(data_scientist, registered_model, sio.dumps(forest), train_csv, eval_csv)
    check = _submitted(version, data_scientist)
    settings.REFIT_MAX_SECONDS = 1.0
    refit.refit_and_predict(LogisticRegression(), [[0], [1]], [0, 1], [[0]], timeout=30)  # fork server up
    started = time.monotonic()
    verdict = checks.run_check(check.pk)
    assert time.monotonic() - started < 5
    assert verdict is not None and verdict.status == "inconclusive", verdict
    assert verdict.metrics["refit"] == "stopped" and verdict.metrics["max_seconds"] == 1.0
    assert "time limit of 1 s" in verdict.warning and "REFIT_MAX_SECONDS" in verdict.warning


def test_a_refit_that_raises_is_an_error_naming_the_estimators_error():
    with pytest.raises(refit.RefitFailed, match="InvalidParameterError"):
        refit.refit_and_predict(LogisticRegression(C=-1.0), [[0], [1]], [0, 1], [[0]], timeout=30)
