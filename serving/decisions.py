"""One decision, after the fact: its explanation (computed once from the logged inputs, the
immutable artifact and the evaluation data, then stored and audited), and people's reviews of
it (confirmed or overridden, chained in order). Each write owns its transaction and audit event."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Max

from core import audit, caches
from core.actors import Actor
from core.canonical import canonical_json, sha256_json
from core.evidence import evidence
from core.roles import CASE_OFFICERS, DATA_SCIENTISTS, RISK_OFFICERS, roles_of
from governance import rules
from lifecycle.dataset_store import read_dataset_bytes
from lifecycle.datasets import parse_csv
from lifecycle.errors import DatasetKeyDestroyed
from lifecycle.models import ModelVersion, Task
from lifecycle.services import load_version_model
from serving import counterfactual, explain, personal
from serving.errors import ServingError
from serving.inputs import to_frame
from serving.models import ApiKey, DecisionReview, Disposition, Explanation, PredictionLog, ReviewAction


@dataclass
class Explaining:
    """What explaining a version needs, built once per process and version."""

    model: Any
    explainer: explain.Explainer
    reference: pd.DataFrame
    facts: explain.FeatureFacts
    background: dict[str, Any]


_cache: dict[tuple[int, str, int, str], Explaining] = {}
_lock = threading.Lock()


def explaining(version: ModelVersion) -> Explaining:
    """The version's model and explainer (artifact hash re-checked, evaluation data verified)."""
    key = (version.pk, version.artifact_sha256, version.review_round, repr(version.favourable))
    found = _cache.get(key)
    if found is None:
        with _lock:
            found = _cache.get(key)
            if found is None:
                full = ModelVersion.objects.select_related("evaluation_dataset").get(pk=version.pk)
                dataset = full.evaluation_dataset
                try:
                    data = read_dataset_bytes(dataset)
                except DatasetKeyDestroyed as exc:  # a retired version's evaluation data, destroyed
                    raise ServingError(
                        f"{full} can no longer be explained: {exc.message}", status=410, code=exc.code
                    ) from None
                frame = parse_csv(data, field="evaluation_data").frame
                features = full.feature_names
                reference = to_frame(frame[features].to_dict(orient="records"), full.input_schema)
                model = load_version_model(full)
                explainer = explain.Explainer(
                    model,
                    reference,
                    features=features,
                    task=full.task,
                    classes=full.classes,
                    favourable=full.favourable,
                )
                medians = {
                    c["name"]: float(np.median(reference[c["name"]]))
                    for c in full.input_schema
                    if c["dtype"] in ("int64", "float64")
                }
                background = {"dataset": str(dataset), "sha256": dataset.sha256, "rows": dataset.row_count}
                found = Explaining(model, explainer, reference, explain.FeatureFacts(medians), background)
                _cache[key] = found
    return found


def clear_cache() -> None:
    with _lock:
        _cache.clear()


caches.register("serving.decisions.explainers", clear_cache)


def _same(a: Any, b: Any) -> bool:
    return bool(a == b) or str(a) == str(b)


def attribution_data(
    version: ModelVersion, attribution: explain.Attribution, row: dict[str, Any], label: Any, facts: Any
) -> dict[str, Any]:
    """The explanation of one row without its counterfactual: what a prediction answer with
    "explain": true logs and returns for each row."""
    favourable = version.favourable
    codes = explain.reason_codes(attribution, row, texts=version.reason_texts or {}, facts=facts)
    return {
        "method": attribution.method,
        "output": attribution.output,
        "base_value": attribution.base_value,
        "value": attribution.value,
        "contributions": attribution.contributions,
        "favourable_class": favourable,
        "decision": label,
        "adverse": favourable is not None and not _same(label, favourable),
        # (a plain dict per code: dataclasses.asdict deep-copies, a third of this function's time)
        "reason_codes": [
            {"feature": c.feature, "value": c.value, "contribution": c.contribution, "text": c.text} for c in codes
        ],
    }


def explain_rows(
    version: ModelVersion,
    rows: list[dict[str, Any]],
    labels: list[Any],
    *,
    tensors: Mapping[str, Any] | None = None,
    frame: pd.DataFrame | None = None,
) -> list[dict[str, Any]]:
    """Attributions and reason codes of served rows (the serving path's "explain": true).
    `tensors` (ONNX engine) or `frame` (skops engine) are the inputs the prediction already
    built from these rows: reused, never rebuilt. A linear model is explained from plain arrays,
    without pandas."""
    state = explaining(version)
    explainer = state.explainer
    if explainer.takes_columns:
        columns = tensors if tensors is not None else frame if frame is not None else _columns(rows, explainer)
        attributions = explainer.attribute_columns(columns)
    else:
        attributions = explainer.attribute(frame if frame is not None else to_frame(rows, version.input_schema))
    return [
        attribution_data(version, a, row, label, state.facts)
        for a, row, label in zip(attributions, rows, labels, strict=True)
    ]


def _columns(rows: list[dict[str, Any]], explainer: explain.Explainer) -> dict[str, list[Any]]:
    return {name: [row[name] for row in rows] for name in explainer.features}


def _compute(record: PredictionLog, row: int) -> dict[str, Any]:
    version = record.version
    if version is None or record.outcome != Disposition.OK:
        raise ServingError("Only an answered prediction can be explained.", status=409, code="not_explainable")
    inputs = personal.reveal_record(record)[0][row]
    if any(value == personal.ERASED for value in inputs.values()):
        raise ServingError(personal.INPUTS_ERASED, status=410, code="inputs_erased")
    outputs = record.outputs
    label = outputs["predictions"][row]
    logged = outputs.get("explanations")
    state = explaining(version)
    if isinstance(logged, list) and row < len(logged):
        data = dict(
            personal.open_explanation(record.public_id, row, logged[row])
        )  # what was returned with the answer stays the explanation
    else:
        attribution = state.explainer.attribute(to_frame([inputs], version.input_schema))[0]
        data = attribution_data(version, attribution, inputs, label, state.facts)
    changes: list[dict[str, Any]] = []
    if data["adverse"] and version.task == Task.CLASSIFICATION:
        found = counterfactual.counterfactuals(
            lambda frame: list(state.model.predict(frame)),
            inputs,
            reference=state.reference,
            features=version.feature_names,
            dtypes={c["name"]: c["dtype"] for c in version.input_schema},
            favourable=version.favourable,
            excluded=set(version.sensitive_features or []),
        )
        changes = [asdict(c) for c in found]
    data["counterfactual"] = (
        {
            "changes": changes,
            "note": "Each change alone, within the range of the evaluation data, gives the favourable class; "
            "verified by running the model on the changed row. Sensitive features are not proposed.",
        }
        if data["adverse"]
        else None
    )
    data.update(
        {
            "prediction_id": f"{record.public_id}.{row}",
            "model": record.model_name,
            "version": record.version_number,
            "artifact_sha256": version.artifact_sha256,
            "background": state.background,
        }
    )
    return data


def explanation_of(record: PredictionLog, row: int, *, actor: Actor, api_key: ApiKey | None = None) -> Explanation:
    """The stored explanation of one logged row; computed, stored and audited on first request
    (the same answer every call after that). Concurrent first requests store it once. Only for
    those who may read the decision (read_rule): it repeats the row's values."""
    require_read(record, actor=actor, api_key=api_key)
    record = _stored(record)
    found = Explanation.objects.filter(record=record, row=row).first()
    if found is not None:
        return _opened(found, record, row)
    data = _compute(record, row)
    # it repeats the row's values: stored encrypted under the row's subject key when they are personal
    text = personal.seal_derived(record, row, canonical_json(data), STORED_EXPLANATION)
    try:
        with transaction.atomic():
            stored = Explanation.objects.create(
                record=record, row=row, method=data["method"], payload_json=text, sha256=sha256_json(data)
            )
            audit.record(
                audit.EXPLANATION_RECORDED,
                actor=actor,
                target=stored,
                data={
                    "prediction_id": data["prediction_id"],
                    "method": data["method"],
                    "sha256": stored.sha256,
                    "evidence": evidence(stored),
                },
            )
    except IntegrityError:
        return _opened(Explanation.objects.get(record=record, row=row), record, row)
    return _opened(stored, record, row)


STORED_EXPLANATION = "explanation-stored"


def _opened(explanation: Explanation, record: PredictionLog, row: int) -> Explanation:
    """The explanation with its payload readable (in memory only: the stored row keeps its
    ciphertext, over which its evidence was hashed); 410 when its subject was erased."""
    text = personal.open_derived(record.public_id, row, explanation.payload_json, STORED_EXPLANATION)
    if text is None:
        raise ServingError(personal.INPUTS_ERASED, status=410, code="inputs_erased")
    explanation.payload_json = text
    return explanation


def _stored(record: PredictionLog) -> PredictionLog:
    """The record as a row (the serving path's raw INSERT leaves the written instance without a pk)."""
    if record.pk is not None:
        return record
    return PredictionLog.objects.select_related("version").get(public_id=record.public_id)


def read_rule(record: PredictionLog, *, actor: Actor, api_key: ApiKey | None = None) -> rules.Rule:
    """Who may read this decision's data and its personal values (governance.rules.can_read_decision):
    every view of a decision (record, explanation, receipt, reviews) asks this."""
    if api_key is None:  # an API key authenticates as itself, or as its user (serving.authentication)
        api_key = getattr(actor, "key", None) if not getattr(actor, "pk", None) else None
    received_it = api_key is not None and record.api_key_id == api_key.pk
    return rules.can_read_decision(actor, received_it=received_it)


def require_read(record: PredictionLog, *, actor: Actor, api_key: ApiKey | None = None) -> None:
    rule = read_rule(record, actor=actor, api_key=api_key)
    if not rule:
        raise ServingError(rule.reason, status=403, code="forbidden")


def may_act_on(record: PredictionLog, *, user: Actor, api_key: ApiKey | None) -> bool:
    """The API key that received the prediction, or a data scientist, risk officer or case officer (who of them
    may review this version's decisions is governance.rules.can_review_decision)."""
    if api_key is not None and api_key.user_id is None:
        return record.api_key_id == api_key.pk
    return bool(roles_of(user) & {DATA_SCIENTISTS, RISK_OFFICERS, CASE_OFFICERS}) or (
        api_key is not None and record.api_key_id == api_key.pk
    )


def _decision_problem(record: PredictionLog, value: Any) -> str:
    version = record.version
    classes = (record.outputs or {}).get("classes") or (version.classes if version is not None else None)
    if version is not None and version.task == Task.CLASSIFICATION and classes:
        if any(type(value) is type(c) and value == c for c in classes):
            return ""
        return f"The final decision must be one of the model's classes: {', '.join(str(c) for c in classes)}."
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "The final decision of a regression must be a number."
    return ""


@transaction.atomic
def review_decision(
    *,
    record: PredictionLog,
    row: int,
    action: str,
    final_decision: Any,
    justification: str,
    reviewer: str,
    actor: Actor,
) -> DecisionReview:
    """Record a person's review of one automated decision: confirmed (the final decision is the
    model's) or overridden (a different final decision), never by the version's creator or
    submitter. Reviews of a row are numbered in order under a lock on the record; each is chained
    with its content hash."""
    record = _stored(record)
    if record.outcome != Disposition.OK or record.version is None:
        raise ServingError("Only an answered prediction can be reviewed.", status=409, code="not_reviewable")
    rule = rules.can_review_decision(record.version, actor)
    if not rule:
        raise ServingError(rule.reason, status=409, code=rule.code)
    justification = (justification or "").strip()
    if not justification:
        raise ServingError("A review needs a written justification.", status=400, code="invalid_input")
    if "\x00" in justification:  # (PostgreSQL text cannot hold it: it was a 500 there)
        raise ServingError("The justification must not contain the NUL character.", status=400, code="invalid_input")
    if action not in ReviewAction.values:
        raise ServingError('"action" must be "confirmed" or "overridden".', status=400, code="invalid_input")
    automated = record.outputs["predictions"][row]
    if action == ReviewAction.CONFIRMED:
        if final_decision is not None and final_decision != automated:
            raise ServingError(
                "A confirmed decision keeps the model's decision; send action overridden to change it.",
                status=400,
                code="invalid_input",
            )
        final_decision = automated
    else:
        if final_decision is None:
            raise ServingError("An override names the final decision.", status=400, code="invalid_input")
        problem = _decision_problem(record, final_decision)
        if problem:
            raise ServingError(problem, status=400, code="invalid_input")
        if final_decision == automated and type(final_decision) is type(automated):
            raise ServingError(
                "An override must change the decision; send action confirmed to keep it.",
                status=400,
                code="invalid_input",
            )
    PredictionLog.objects.select_for_update().filter(pk=record.pk).values_list("pk", flat=True).first()
    seq = (DecisionReview.objects.filter(record=record, row=row).aggregate(n=Max("seq"))["n"] or 0) + 1
    user = actor if isinstance(actor, get_user_model()) else None
    review = DecisionReview.objects.create(
        record=record,
        row=row,
        seq=seq,
        action=action,
        automated_decision=automated,
        final_decision=final_decision,
        justification=justification[:5000],
        reviewer=reviewer[:150],
        user=user,
    )
    audit.record(
        audit.DECISION_REVIEWED,
        actor=actor,
        target=review,
        data={
            "prediction_id": f"{record.public_id}.{row}",
            "seq": seq,
            "action": action,
            "automated_decision": automated,
            "final_decision": final_decision,
            "evidence": evidence(review),
        },
    )
    return review


def review_data(review: DecisionReview) -> dict[str, Any]:
    return {
        "seq": review.seq,
        "action": review.action,
        "automated_decision": review.automated_decision,
        "final_decision": review.final_decision,
        "justification": review.justification,
        "reviewer": review.reviewer,
        "at": review.created_at,
    }
