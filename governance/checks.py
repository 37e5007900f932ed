"""The checks run on a submitted version: validation, fairness, reproducibility, ONNX. Each
runner takes the loaded model, data and policy values and returns a CheckResult; run_check() claims
the check and returns its Verdict, which the task records through governance.workflow."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from sklearn import metrics as skm
from sklearn.base import clone

from core.canonical import sha256_json
from core.errors import DomainError
from governance import fairness, profile, refit
from governance.errors import TransientCheckError
from governance.models import CheckKind, CheckRun, CheckStatus, FairnessRequirement
from lifecycle import onnx_model
from lifecycle.artifacts import sha256_of
from lifecycle.dataset_store import open_dataset
from lifecycle.models import Dataset, ModelVersion, Task
from lifecycle.services import load_version_model


@dataclass
class CheckResult:
    status: str
    metrics: dict[str, Any]
    warning: str = ""


def _frame(dataset: Dataset) -> pd.DataFrame:
    try:  # decrypted and verified (a destroyed key or a changed file is a DomainError: the check errs)
        return pd.read_csv(open_dataset(dataset), skipinitialspace=True)
    except OSError as exc:
        raise TransientCheckError(f"cannot read {dataset}: {exc}") from exc


def _positive_label(classes: list[Any]) -> Any:
    return 1 if 1 in classes else classes[-1]


def classification_metrics(model: Any, X: pd.DataFrame, y: pd.Series, classes: list[Any]) -> dict[str, float]:
    y_pred = model.predict(X)
    result = {
        "accuracy": float(skm.accuracy_score(y, y_pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y, y_pred)),
    }
    if len(classes) == 2:
        positive = _positive_label(classes)
        result["f1"] = float(skm.f1_score(y, y_pred, pos_label=positive))
        if hasattr(model, "predict_proba"):
            column = list(model.classes_).index(positive)
            result["roc_auc"] = float(skm.roc_auc_score(y == positive, model.predict_proba(X)[:, column]))
    else:
        result["f1"] = float(skm.f1_score(y, y_pred, average="macro"))
        if hasattr(model, "predict_proba"):
            result["roc_auc"] = float(
                skm.roc_auc_score(y, model.predict_proba(X), multi_class="ovr", labels=list(model.classes_))
            )
    return result


def regression_metrics(model: Any, X: pd.DataFrame, y: pd.Series) -> dict[str, float]:
    y_pred = model.predict(X)
    return {
        "mae": float(skm.mean_absolute_error(y, y_pred)),
        "rmse": float(np.sqrt(skm.mean_squared_error(y, y_pred))),
        "r2": float(skm.r2_score(y, y_pred)),
    }


def validate(model: Any, version: ModelVersion, evaluation: pd.DataFrame, policy: dict[str, Any]) -> CheckResult:
    missing = [f for f in version.feature_names if f not in evaluation.columns]
    if missing:
        return CheckResult(CheckStatus.FAILED, {"missing_columns": missing})
    X, y = evaluation[version.feature_names], evaluation[version.label_column]
    failures: list[str] = []
    if version.task == Task.CLASSIFICATION:
        values = classification_metrics(model, X, y, version.classes)
        bounds = {
            "accuracy": policy["min_accuracy"],
            "balanced_accuracy": policy["min_balanced_accuracy"],
            "roc_auc": policy["min_roc_auc"],
            "f1": policy["min_f1"],
        }
        failures = [f"{k} {values[k]:.4f} < {v}" for k, v in bounds.items() if k in values and values[k] < v]
    else:
        values = regression_metrics(model, X, y)
        if values["r2"] < policy["min_r2"]:
            failures.append(f"r2 {values['r2']:.4f} < {policy['min_r2']}")
        for name, key in (("mae", "max_mae"), ("rmse", "max_rmse")):
            if policy.get(key) is not None and values[name] > policy[key]:
                failures.append(f"{name} {values[name]:.4f} > {policy[key]}")
    result = {"metrics": values, "rows": len(evaluation), "failures": failures}
    return CheckResult(CheckStatus.FAILED if failures else CheckStatus.PASSED, result)


def assess_fairness(model: Any, version: ModelVersion, evaluation: pd.DataFrame, policy: dict[str, Any]) -> CheckResult:
    y_pred = model.predict(evaluation[version.feature_names])
    required = FairnessRequirement.objects.filter(registered_model_id=version.registered_model_id).first()
    result = fairness.assess(
        evaluation,
        version.sensitive_features,
        evaluation[version.label_column].to_numpy(),
        np.asarray(y_pred),
        task=version.task,
        classes=version.classes,
        thresholds=fairness.Thresholds(
            max_difference=policy["max_fairness_difference"],
            min_ratio=policy["min_fairness_ratio"],
            min_group_size=policy["min_group_size"],
        ),
        waived=required.waivers if required is not None else None,
    )
    metrics = result.as_dict()
    if version.sensitive_features:
        return CheckResult(CheckStatus(result.status), metrics)
    # Nothing was measured: that passes only where the policy waives fairness for the tier.
    tier = version.registered_model.effective_tier
    waiver = f"fairness_waived_{tier}"
    metrics.update(tier=tier, waived=bool(policy.get(waiver, False)))
    if metrics["waived"]:
        text = f"Fairness waived by policy for {tier}-tier models ({waiver}): no sensitive feature was assessed."
        metrics.update(status=CheckStatus.PASSED, passed=True, waiver=text)
        return CheckResult(CheckStatus.PASSED, metrics, text)
    text = (
        f"No sensitive feature was named, so fairness could not be assessed; the policy does not waive "
        f"fairness for {tier}-tier models ({waiver})."
    )
    return CheckResult(CheckStatus.FAILED, metrics, text)


def reproduce(model: Any, version: ModelVersion, evaluation: pd.DataFrame, policy: dict[str, Any]) -> CheckResult:
    """Refit the estimator's class and parameters on the training data, bounded whatever the
    policy: too costly by its parameters, or too slow, the check ends inconclusive, naming why."""
    estimated, most = refit.estimated_estimators(model), settings.REFIT_MAX_ESTIMATORS
    if estimated > most:
        reason = (
            f"The refit was not attempted: the parameters ask for {estimated} fitted estimators "
            f"({refit.COST_PARAMETER}, multiplied through nested ensembles and summed over steps), more than "
            f"REFIT_MAX_ESTIMATORS = {most}. Reproducibility was not assessed."
        )
        return CheckResult(
            CheckStatus.INCONCLUSIVE,
            {"refit": "not attempted", "estimated_estimators": estimated, "max_estimators": most, "reason": reason},
            reason,
        )
    training = _frame(version.training_dataset)
    X = evaluation[version.feature_names]
    try:
        again = refit.refit_and_predict(
            clone(model),
            training[version.feature_names],
            training[version.label_column],
            X,
            timeout=settings.REFIT_MAX_SECONDS,
        )
    except refit.RefitStopped as exc:
        reason = f"The refit did not finish: {exc} (REFIT_MAX_SECONDS). Reproducibility was not assessed."
        return CheckResult(
            CheckStatus.INCONCLUSIVE,
            {"refit": "stopped", "max_seconds": settings.REFIT_MAX_SECONDS, "reason": reason},
            reason,
        )
    original = np.asarray(model.predict(X))
    if version.task == Task.CLASSIFICATION:
        agreement = float(np.mean(original == again))
    else:
        agreement = float(np.mean(np.isclose(original, again, rtol=1e-6, atol=1e-9)))
    threshold = policy["min_reproducibility_agreement"]
    metrics = {"agreement": agreement, "rows": len(X), "threshold": threshold}
    if agreement < threshold:
        warning = (
            f"A refit of the estimator on the training data agrees with the artifact on {agreement:.1%} of the "
            f"evaluation rows (policy: {threshold:.0%}). The artifact may not come from this training data."
        )
        return CheckResult(CheckStatus.FAILED, metrics, warning)
    return CheckResult(CheckStatus.PASSED, metrics)


def convert_onnx(model: Any, version: ModelVersion, evaluation: pd.DataFrame, policy: dict[str, Any]) -> CheckResult:
    """Convert to ONNX and compare with the skops model on the evaluation data: serving uses
    ONNX Runtime only when labels are identical and probabilities within 1e-5."""
    X = evaluation[version.feature_names]
    try:
        data = onnx_model.convert(model, version.input_schema)
        comparison = onnx_model.compare(onnx_model.session(data), model, X, version.input_schema, version.task)
    except Exception as exc:  # skl2onnx cannot convert every estimator: a finding, served with skops
        return CheckResult(
            CheckStatus.FAILED,
            {"converted": False, "reason": f"{type(exc).__name__}: {exc}"[:2000]},
            "No ONNX engine: this version is served with its skops model.",
        )
    sha = sha256_of(data)
    name = f"onnx/{version.registered_model.name}/v{version.version}-{sha[:16]}.onnx"
    if not default_storage.exists(name):
        name = default_storage.save(name, ContentFile(data))
    metrics = {
        "converted": True,
        "onnx_sha256": sha,
        "onnx_file": name,
        "onnx_bytes": len(data),
        "label_agreement": comparison.label_agreement,
        "max_probability_difference": comparison.max_probability_difference,
        "tolerance": onnx_model.TOLERANCE,
        "rows": comparison.rows,
    }
    if comparison.passed:
        return CheckResult(CheckStatus.PASSED, metrics)
    return CheckResult(CheckStatus.FAILED, metrics, f"ONNX Runtime disagrees ({comparison.reason}): served with skops.")


def build_reference_profile(
    model: Any, version: ModelVersion, evaluation: pd.DataFrame, policy: dict[str, Any]
) -> CheckResult:
    """Freeze the reference profile monitoring will compare live traffic with: the evaluation
    data's bins and the model's answers on it (docs/design.md, "Monitoring"). Its hash is bound into
    the approval, like the other check results."""
    missing = [f for f in version.feature_names if f not in evaluation.columns]
    if missing:
        return CheckResult(CheckStatus.FAILED, {"missing_columns": missing}, "The evaluation data lacks model inputs.")
    X = evaluation[version.feature_names]
    probabilities = (
        model.predict_proba(X).tolist()
        if version.task == Task.CLASSIFICATION and hasattr(model, "predict_proba")
        else None
    )
    built = profile.build_profile(
        X,
        version.input_schema,
        task=version.task,
        classes=version.classes,
        labels=np.asarray(model.predict(X)).tolist(),
        probabilities=probabilities,
    )
    return CheckResult(CheckStatus.PASSED, {"profile": built, "profile_sha256": sha256_json(built)})


RUNNERS = {
    CheckKind.VALIDATION: validate,
    CheckKind.FAIRNESS: assess_fairness,
    CheckKind.REPRODUCIBILITY: reproduce,
    CheckKind.ONNX: convert_onnx,
    CheckKind.PROFILE: build_reference_profile,
}


def _mark_running(check_id: int) -> CheckRun | None:
    """Claim the check (queued, or running from a worker that died); None when finished."""
    with transaction.atomic():
        check = CheckRun.objects.select_for_update().select_related("version").get(pk=check_id)
        if check.is_finished:
            return None
        check.status = CheckStatus.RUNNING
        check.attempts += 1
        check.started_at = timezone.now()
        check.save(update_fields=["status", "attempts", "started_at"])
        return check


@dataclass
class Verdict:
    """What a check found, ready to be recorded (governance.workflow.record_check_result)."""

    status: str
    metrics: dict[str, Any]
    inputs: dict[str, Any]
    error: str
    warning: str
    started_at: Any


def run_check(check_id: int) -> Verdict | None:
    """Claim and run one check; None when it had already finished (a re-delivered task)."""
    check = _mark_running(check_id)
    if check is None:
        return None
    version = ModelVersion.objects.select_related("training_dataset", "evaluation_dataset").get(pk=check.version_id)
    started = time.monotonic()
    inputs = {
        "artifact_sha256": version.artifact_sha256,
        "evaluation_dataset_sha256": version.evaluation_dataset.sha256,
        "training_dataset_sha256": version.training_dataset.sha256,
        "sensitive_features": version.sensitive_features,
    }
    error = ""
    try:
        model = load_version_model(version)
        evaluation = _frame(version.evaluation_dataset)
        result = RUNNERS[CheckKind(check.kind)](model, version, evaluation, check.policy)
    except TransientCheckError:
        raise
    except DomainError as exc:
        result, error = CheckResult(CheckStatus.ERROR, {}, ""), exc.message
    except Exception as exc:  # a model that crashes on its own data is a finding, not a 500
        result, error = CheckResult(CheckStatus.ERROR, {}, ""), f"{type(exc).__name__}: {exc}"
    result.metrics["seconds"] = round(time.monotonic() - started, 3)
    return Verdict(result.status, result.metrics, inputs, error, result.warning, check.started_at)
