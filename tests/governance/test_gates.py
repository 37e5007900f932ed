"""No vacuous gate (issue "Integrity", point 3): fairness without evidence fails unless the policy
waives it for the model's tier (visibly), groups too small to compare are inconclusive, regression
fairness compares the per-group MAE, validation fails on each metric, and reproducibility fails
below the policy's agreement and gates per tier."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from django.template.loader import render_to_string
from django.test import Client
from django.utils import timezone
from fairlearn.metrics import MetricFrame
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import mean_absolute_error

from compliance import report_context
from core import audit
from core.actors import Actor
from core.models import AuditEvent
from governance import bindings, checks, fairness, workflow
from governance.errors import WorkflowError
from governance.models import CheckRun, Decision, Policy
from governance.policies import active_policy, update_policy
from lifecycle import demo_data, services, submission
from lifecycle.dataset_store import read_dataset_bytes
from lifecycle.models import ModelVersion, RegisteredModel, Status
from tests.conftest import CARD, make_version, upload
from tests.factories import RegisteredModelFactory
from tests.governance.conftest import submit, validated

pytestmark = pytest.mark.django_db

OK = "Reviewed the check results and the model card."


def set_policy(**values: Any) -> Policy:
    """Policies change only through update_policy (audited; here by the system)."""
    return update_policy(active_policy().pk, actor=None, justification="Set for this test.", changes=values)


def checks_of(version: ModelVersion) -> dict[str, CheckRun]:
    return {c.kind: c for c in CheckRun.objects.filter(version=version, round=version.review_round)}


@pytest.fixture
def run(data_scientist, django_capture_on_commit_callbacks, eager_tasks):
    """Submit a draft and run its checks in-process; returns the version in review."""

    def go(version: ModelVersion) -> ModelVersion:
        version = submit(version, data_scientist, django_capture_on_commit_callbacks)
        assert version.status == Status.IN_REVIEW
        return version

    return go


# --- fairness without evidence ------------------------------------------------------------
def test_a_classification_model_without_sensitive_features_fails_fairness(
    data_scientist, registered_model, skops_bytes, train_csv, eval_csv, lenient_policy, risk_officer, run
):
    update_policy(
        lenient_policy.pk,
        actor=risk_officer,
        justification="Set for this test.",
        changes={"fairness_waived_high": True},
    )  # not its tier
    version = run(
        make_version(data_scientist, registered_model, skops_bytes, train_csv, eval_csv, sensitive_features=[])
    )
    found = checks_of(version)["fairness"]
    assert registered_model.effective_tier == "medium"
    assert found.status == "failed" and found.gating
    assert found.metrics["waived"] is False and found.metrics["features"] == []
    assert "fairness_waived_medium" in found.warning and "No sensitive feature" in found.warning
    assert found in bindings.failing_checks(version)
    with pytest.raises(WorkflowError, match="fairness: failed.*override"):
        workflow.approve_version(version.pk, actor=risk_officer, justification=OK)


def test_a_waiver_for_the_models_tier_passes_fairness_audited_and_printed_in_the_reports(
    data_scientist, registered_model, skops_bytes, train_csv, eval_csv, lenient_policy, risk_officer, run
):
    assert "fairness_waived_medium" in lenient_policy.values()
    update_policy(
        lenient_policy.pk,
        actor=risk_officer,
        justification="Set for this test.",
        changes={"fairness_waived_medium": True},
    )
    changed = AuditEvent.objects.filter(action=audit.POLICY_CHANGED).order_by("seq").last()
    assert changed.actor_username == risk_officer.username
    assert changed.data["changes"] == {"fairness_waived_medium": {"before": False, "after": True}}

    version = run(
        make_version(data_scientist, registered_model, skops_bytes, train_csv, eval_csv, sensitive_features=[])
    )
    found = checks_of(version)["fairness"]
    assert found.status == "passed" and found.metrics["waived"] is True and found.metrics["tier"] == "medium"
    assert "waived by policy" in found.metrics["waiver"].lower() and found.policy["fairness_waived_medium"] is True
    assert "waived by policy" in found.warning.lower()
    assert found not in bindings.failing_checks(version)

    context, evidence = report_context.version_report(version, actor=risk_officer)
    html = render_to_string("compliance/reports/version.html", context)
    assert "Waived by policy:" in html and "fairness_waived_medium" in html
    assert next(c for c in evidence["version"]["checks"] if c["kind"] == "fairness")["metrics"]["waived"] is True

    now = timezone.now()
    context, evidence = report_context.period_report(
        since=now - timedelta(days=1), until=now + timedelta(days=1), actor=risk_officer
    )
    assert evidence["waivers"]["policies"] == [{"policy": "default", "fairness_waived_tiers": ["medium"]}]
    assert [(w["model"], w["version"], w["tier"]) for w in evidence["waivers"]["checks"]] == [
        (registered_model.name, version.version, "medium")
    ]
    html = render_to_string("compliance/reports/period.html", context)
    assert "Fairness waivers" in html and "passed by waiver" in html and found.metrics["waiver"] in html


def test_groups_too_small_are_inconclusive_and_approving_needs_an_audited_override(
    draft_version, data_scientist, risk_officer, run
):
    # sex: 206 / 94 rows, age_group: 242 / 58: no feature has two groups of 210 rows.
    set_policy(max_fairness_difference=1.0, min_fairness_ratio=0.0, min_group_size=210)
    version = run(draft_version)
    found = checks_of(version)["fairness"]
    assert found.status == "inconclusive" and found.gating and found.is_finished
    assert {f["feature"]: f["status"] for f in found.metrics["features"]} == {
        "sex": "inconclusive",
        "age_group": "inconclusive",
        "sex × age_group": "inconclusive",
    }
    assert any("inconclusive" in n for n in found.metrics["notes"])
    assert found in bindings.failing_checks(version)
    # the version page says so, not "outside policy"
    page = Client()
    page.force_login(data_scientist)
    html = page.get(version.get_absolute_url()).content.decode()
    assert html.count("inconclusive: not enough to compare") == 3 and "outside policy</span>" not in html

    with pytest.raises(WorkflowError, match="fairness: inconclusive.*override"):
        workflow.approve_version(version.pk, actor=risk_officer, justification=OK)
    refused = AuditEvent.objects.filter(action=audit.ACTION_REFUSED, target_id=str(version.pk)).get()
    assert "inconclusive" in refused.data["reason"]
    assert ModelVersion.objects.get(pk=version.pk).status == Status.IN_REVIEW

    version = workflow.approve_version(version.pk, actor=risk_officer, justification=OK, override=True)
    assert version.status == Status.APPROVED
    assert Decision.objects.get(version=version, kind="approve").override is True
    recorded = AuditEvent.objects.get(action=audit.VERSION_APPROVAL_RECORDED, target_id=str(version.pk))
    assert recorded.data["override"] is True and recorded.data["failed_checks"] == ["fairness"]


def test_one_large_group_and_the_rest_small_is_inconclusive_not_passed():
    frame = pd.DataFrame({"region": ["north"] * 100 + ["south"] * 5 + ["east"] * 5})
    y_true = np.array([1, 0] * 55)
    y_pred = np.array([1] * 100 + [0] * 10)
    result = fairness.assess(
        frame, ["region"], y_true, y_pred, task="classification", classes=[0, 1], thresholds=fairness.Thresholds()
    )
    assert result.status == "inconclusive" and not result.passed
    assert result.features[0].excluded_groups == ["east", "south"] and result.features[0].headline == {}


def test_an_undefined_ratio_is_inconclusive_not_passed():
    frame = pd.DataFrame({"region": ["north"] * 40 + ["south"] * 40})
    never_positive = np.zeros(80, dtype=int)
    result = fairness.assess(
        frame, ["region"], np.array([1, 0] * 40), never_positive, task="classification", classes=[0, 1],
        thresholds=fairness.Thresholds(),
    )  # fmt: skip
    assert result.features[0].headline["demographic_parity_ratio"] is None
    assert result.status == "inconclusive" and any("undefined" in n for n in result.notes)


def test_no_sensitive_feature_is_never_a_pass_of_the_pure_assessment():
    result = fairness.assess(
        pd.DataFrame({"x": [1, 2]}), [], np.array([0, 1]), np.array([0, 1]), task="regression", classes=[],
        thresholds=fairness.Thresholds(),
    )  # fmt: skip
    assert result.status == "failed" and not result.passed and result.as_dict()["passed"] is False


# --- regression fairness ------------------------------------------------------------------
def test_regression_fairness_is_the_per_group_mae_from_fairlearn_and_fails_when_a_group_is_far_worse():
    rng = np.random.default_rng(3)
    groups = pd.Series(["a"] * 60 + ["b"] * 60 + ["tiny"] * 5)
    y_true = rng.normal(10, 3, size=len(groups))
    errors = np.where(groups == "b", 4.0, 0.5) * rng.choice([-1, 1], size=len(groups))
    y_pred = y_true + errors
    result = fairness.assess(
        pd.DataFrame({"segment": groups}), ["segment"], y_true, y_pred, task="regression", classes=[],
        thresholds=fairness.Thresholds(),
    )  # fmt: skip
    feature = result.features[0]
    everyone = MetricFrame(metrics=mean_absolute_error, y_true=y_true, y_pred=y_pred, sensitive_features=groups)
    for group, mae in everyone.by_group.items():
        assert feature.groups[str(group)]["mean_absolute_error"] == pytest.approx(mae, abs=1e-12)
    keep = (groups != "tiny").to_numpy()
    kept = MetricFrame(
        metrics=mean_absolute_error, y_true=y_true[keep], y_pred=y_pred[keep], sensitive_features=groups[keep]
    )
    assert feature.excluded_groups == ["tiny"]
    assert feature.headline["mean_absolute_error_difference"] == pytest.approx(kept.difference(), abs=1e-12)
    assert feature.headline["mean_absolute_error_ratio"] == pytest.approx(kept.ratio(), abs=1e-12)
    assert feature.headline["mean_absolute_error_ratio"] == pytest.approx(0.5 / 4.0)
    assert feature.headline["mean_absolute_error_difference_in_label_sd"] == pytest.approx(
        kept.difference() / np.std(y_true), abs=1e-12
    )
    assert feature.compared == ["mean_absolute_error_ratio", "mean_absolute_error_difference_in_label_sd"]
    assert result.status == "failed"
    assert any(v.startswith("mean_absolute_error_ratio 0.1250 < 0.8") for v in feature.violations)
    assert any(v.startswith("mean_absolute_error_difference_in_label_sd") for v in feature.violations)

    similar = y_true + np.where(groups == "b", 0.52, 0.5) * rng.choice([-1, 1], size=len(groups))
    fair = fairness.assess(
        pd.DataFrame({"segment": groups}), ["segment"], y_true, similar, task="regression", classes=[],
        thresholds=fairness.Thresholds(),
    )  # fmt: skip
    # the 5-row group cannot be measured: inconclusive, naming it, until an officer waives it
    assert fair.status == "inconclusive" and fair.features[0].small_groups == ["tiny"], fair.features[0].violations
    waived = fairness.assess(
        pd.DataFrame({"segment": groups}), ["segment"], y_true, similar, task="regression", classes=[],
        thresholds=fairness.Thresholds(), waived={"segment": {"tiny": "Five test rows."}},
    )  # fmt: skip
    assert waived.status == "passed", waived.features[0].violations


def regression_data(seed: int = 11) -> tuple[pd.DataFrame, pd.DataFrame]:
    """y = 3·x1 + 2·x2 + noise, the noise eight times larger in region b."""
    rng = np.random.default_rng(seed)

    def frame(n: int) -> pd.DataFrame:
        x1, x2 = rng.normal(size=n), rng.normal(size=n)
        region = rng.choice(["a", "b"], size=n)
        noise = rng.normal(size=n) * np.where(region == "b", 4.0, 0.5)
        return pd.DataFrame({"x1": x1, "x2": x2, "region": region, "y": 3 * x1 + 2 * x2 + noise})

    return frame(400), frame(300)


def csv(frame: pd.DataFrame) -> bytes:
    return demo_data.to_csv_bytes(frame)


def new_version(
    actor: Actor, model: RegisteredModel, artifact: Any, train: pd.DataFrame, evaluation: pd.DataFrame, **kw: Any
) -> ModelVersion:
    return services.create_version(
        actor=actor,
        model_name=model.name,
        artifact=upload("model.skops", sio.dumps(artifact)),
        training=submission.DatasetChoice(upload=upload(f"{model.name}-train.csv", csv(train), "text/csv")),
        evaluation=submission.DatasetChoice(upload=upload(f"{model.name}-eval.csv", csv(evaluation), "text/csv")),
        label_column="y",
        card=dict(CARD),
        **kw,
    )


@pytest.fixture
def regression_version(data_scientist) -> ModelVersion:
    train, evaluation = regression_data()
    model = RegisteredModelFactory(name="house-prices", owner=data_scientist)
    estimator = LinearRegression().fit(train[["x1", "x2"]], train["y"])
    return new_version(data_scientist, model, estimator, train, evaluation, sensitive_features=["region"])


def test_a_regression_submission_fails_fairness_when_one_regions_mae_is_far_worse(regression_version, run):
    version = run(regression_version)
    assert version.task == "regression"
    found = checks_of(version)["fairness"]
    assert found.status == "failed" and found.gating
    region = found.metrics["features"][0]
    _, evaluation = regression_data()
    model = services.load_version_model(version)
    y_pred = model.predict(evaluation[["x1", "x2"]])
    frame = MetricFrame(
        metrics=mean_absolute_error, y_true=evaluation["y"], y_pred=y_pred, sensitive_features=evaluation["region"]
    )
    for group, mae in frame.by_group.items():
        assert region["groups"][group]["mean_absolute_error"] == pytest.approx(mae, abs=1e-9)
    assert region["headline"]["mean_absolute_error_ratio"] == pytest.approx(frame.ratio(), abs=1e-9)
    assert region["headline"]["mean_absolute_error_ratio"] < 0.2
    assert any("mean_absolute_error_ratio" in v for v in region["violations"])


# --- validation fails on each metric ------------------------------------------------------
CLASSIFICATION_BOUNDS = {"accuracy": "min_accuracy", "balanced_accuracy": "min_balanced_accuracy",
                         "roc_auc": "min_roc_auc", "f1": "min_f1"}  # fmt: skip
REGRESSION_BOUNDS = {"mae": "max_mae", "rmse": "max_rmse", "r2": "min_r2"}


def validate(version: ModelVersion) -> checks.CheckResult:
    model = services.load_version_model(version)
    evaluation = pd.read_csv(io.BytesIO(read_dataset_bytes(version.evaluation_dataset)))
    return checks.validate(model, version, evaluation, active_policy().values())


def reached(version: ModelVersion) -> dict[str, float]:
    set_policy(min_accuracy=0.0, min_balanced_accuracy=0.0, min_roc_auc=0.0, min_f1=0.0, min_r2=-1e9)
    outcome = validate(version)
    assert outcome.status == "passed", outcome.metrics
    return outcome.metrics["metrics"]


@pytest.mark.parametrize("metric", list(CLASSIFICATION_BOUNDS))
def test_validation_fails_a_classifier_just_below_each_minimum(draft_version, metric):
    values = reached(draft_version)
    bound = CLASSIFICATION_BOUNDS[metric]
    set_policy(**{bound: values[metric] - 1e-4})
    assert validate(draft_version).status == "passed"
    set_policy(**{bound: values[metric] + 1e-4})
    outcome = validate(draft_version)
    assert outcome.status == "failed"
    assert outcome.metrics["failures"] == [f"{metric} {values[metric]:.4f} < {values[metric] + 1e-4}"]


@pytest.mark.parametrize("metric", list(REGRESSION_BOUNDS))
def test_validation_fails_a_regressor_just_beyond_each_bound(regression_version, metric):
    values = reached(regression_version)
    bound = REGRESSION_BOUNDS[metric]
    step = 1e-4 if metric == "r2" else -1e-4  # a minimum for R², a maximum for the errors
    set_policy(**{bound: values[metric] - step})
    assert validate(regression_version).status == "passed"
    set_policy(**{bound: values[metric] + step})
    outcome = validate(regression_version)
    assert outcome.status == "failed"
    sign = "<" if metric == "r2" else ">"
    assert outcome.metrics["failures"] == [f"{metric} {values[metric]:.4f} {sign} {values[metric] + step}"]


# --- reproducibility ----------------------------------------------------------------------
def relabelled_data(seed: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Labels on a boundary at 0.47·π from the x1 axis: an artifact fitted to `x1 > 0` (other
    labels than the lineage's) and its refit on the lineage's data agree on about 53% of rows."""
    rng = np.random.default_rng(seed)
    theta = 0.47 * np.pi

    def frame(n: int) -> pd.DataFrame:
        x = rng.normal(size=(n, 2))
        y = (np.cos(theta) * x[:, 0] + np.sin(theta) * x[:, 1] > 0).astype(int)
        return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "group": rng.choice(["a", "b"], size=n), "y": y})

    return frame(600), frame(600)


@pytest.mark.parametrize(
    ("tier", "policy_changes", "gating"),
    [("high", {}, True), ("medium", {}, False), ("medium", {"reproducibility_gating_medium": True}, True)],
)
def test_a_refit_that_agrees_on_about_half_the_rows_fails_reproducibility_and_gates_per_tier(
    data_scientist, risk_officer, run, tier, policy_changes, gating
):
    set_policy(max_fairness_difference=1.0, min_fairness_ratio=0.0, min_accuracy=0.0, min_balanced_accuracy=0.0,
               min_roc_auc=0.0, min_f1=0.0)  # fmt: skip
    if policy_changes:
        update_policy(
            active_policy().pk, actor=risk_officer, justification="Set for this test.", changes=policy_changes
        )
    train, evaluation = relabelled_data()
    artifact = LogisticRegression().fit(train[["x1", "x2"]], (train["x1"] > 0).astype(int))
    model = RegisteredModelFactory(name=f"scorer-{tier}", owner=data_scientist, risk_tier=tier)
    version = run(new_version(data_scientist, model, artifact, train, evaluation, sensitive_features=["group"]))
    found = checks_of(version)
    again = found["reproducibility"]
    assert again.status == "failed" and 0.5 < again.metrics["agreement"] < 0.6, again.metrics
    assert again.metrics["threshold"] == 0.95 and "agrees with the artifact on" in again.warning
    assert again.gating is gating and found["onnx"].gating is False
    assert {k: c.status for k, c in found.items() if k not in ("reproducibility", "onnx")} == {
        "validation": "passed",
        "fairness": "passed",
        "profile": "passed",
    }
    if tier == "high":
        validated(version)  # (the policy requires an independent validation at this tier)
    if gating:
        with pytest.raises(WorkflowError, match="reproducibility: failed.*override"):
            workflow.approve_version(version.pk, actor=risk_officer, justification=OK)
    else:
        version = workflow.approve_version(version.pk, actor=risk_officer, justification=OK)
        assert version.status == Status.APPROVED
        assert Decision.objects.get(version=version, kind="approve").override is False


def test_reproducibility_gating_follows_the_policy_per_tier():
    policy = Policy(reproducibility_gating_low=True, reproducibility_gating_high=False)
    assert [policy.gates("reproducibility", tier=t) for t in ("low", "medium", "high")] == [True, False, False]
    assert all(Policy().gates(kind, tier="low") for kind in ("validation", "fairness"))
    assert [Policy().gates("reproducibility", tier=t) for t in ("low", "medium", "high")] == [False, False, True]
