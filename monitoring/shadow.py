"""Shadow replay: the production version's logged inputs of a window go through the version in
shadow (never answering anyone: nothing here is reachable from a request), its outputs are
logged as `shadow` records, and the window's comparison is stored as evidence
(governance.shadow.record_comparison) in the same transaction: agreement, the distribution of
score differences, and where outcomes arrived, both versions' live metrics and fairness."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pandas as pd
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from governance import profile
from governance import shadow as shadows
from governance.models import Shadow, ShadowComparison
from governance.policies import active_policy
from lifecycle.models import ModelVersion, Status
from monitoring import drift
from monitoring.counts import inputs_of
from monitoring.services import window_length
from monitoring.windows import latest_outcomes, live_fairness
from serving import engine, log, personal
from serving.models import Disposition, LogSource, PredictionLog, PredictionOutcome

CALLER = "shadow-replay"
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def scores_of(version: ModelVersion, labels: list[Any], probabilities: Any) -> np.ndarray:
    """One number per row to compare: the positive-class probability of a binary classifier,
    the value of a regressor (what `__prediction__` profiles), else nothing."""
    kind, values = profile.prediction_values(
        task=version.task, classes=list(version.classes or []), labels=labels, probabilities=probabilities
    )
    if kind != "float":
        return np.zeros(0)
    return np.asarray(values, dtype=float)


def difference_summary(champion: np.ndarray, challenger: np.ndarray) -> dict[str, Any]:
    """The distribution of challenger − champion scores, row by row."""
    if len(champion) == 0 or len(champion) != len(challenger):
        return {}
    d = challenger - champion
    return {
        "n": int(len(d)),
        "mean": float(d.mean()),
        "std": float(d.std()),
        "mean_abs": float(np.abs(d).mean()),
        "max_abs": float(np.abs(d).max()),
        "quantiles": {
            f"p{round(q * 100)}": float(v) for q, v in zip(QUANTILES, np.quantile(d, QUANTILES), strict=True)
        },
        "share_over_0_1": float((np.abs(d) > 0.1).mean()),
    }


def _champion(shadow: Shadow) -> ModelVersion | None:
    return ModelVersion.objects.filter(
        registered_model=shadow.version.registered_model, status=Status.PRODUCTION
    ).first()


def replay_window(shadow_id: int, *, start: datetime, end: datetime) -> ShadowComparison | None:
    """Replay [start, end) of the production version's answered traffic through the shadow
    version, once per (shadow, window). None when there is no production version."""
    shadow = Shadow.objects.select_related("version__registered_model").get(pk=shadow_id)
    found = ShadowComparison.objects.filter(shadow=shadow, window_start=start, window_end=end).first()
    if found is not None:
        return found
    champion = _champion(shadow)
    if champion is None or champion.pk == shadow.version_id:
        return None
    challenger = shadow.version
    rows = (
        PredictionLog.objects.filter(
            version=champion, outcome=Disposition.OK, created_at__gte=start, created_at__lt=end
        )
        .exclude(source=LogSource.SHADOW)
        .order_by("pk")
        .values_list("pk", "public_id", "inputs_json", "outputs_json", "business_keys_json")
    )
    records: list[PredictionLog] = []
    labels_champion: list[Any] = []
    labels_challenger: list[Any] = []
    scores_champion: list[np.ndarray] = []
    scores_challenger: list[np.ndarray] = []
    position: dict[tuple[int, int], int] = {}  # (champion record, row) -> index over the window
    for pk, public_id, inputs_json, outputs_json, keys_json in rows.iterator(chunk_size=200):
        inputs, outputs = orjson.loads(inputs_json), orjson.loads(outputs_json)
        keys = orjson.loads(keys_json) if keys_json else None
        if '"$enc"' in inputs_json:  # personal values, read through their keys (the subject's too)
            inputs, keys = personal.reveal(public_id, inputs, keys)
            if any(personal.ERASED in row.values() for row in inputs if isinstance(row, dict)):
                continue  # erased inputs cannot be replayed
        result = engine.predict(challenger, inputs)
        # the replayed inputs stay protected as production declared them, whatever the challenger declares
        keeper = challenger if personal.declares_personal(challenger) else champion
        shadow_outputs: dict[str, Any] = {"predictions": result.labels}
        if result.probabilities is not None:
            shadow_outputs["probabilities"] = result.probabilities
            shadow_outputs["classes"] = challenger.classes
        records.append(_record(challenger, public_id, inputs, shadow_outputs, result.engine, keeper, keys))
        for i in range(len(inputs)):
            position[(pk, i)] = len(labels_champion) + i
        labels_champion += outputs.get("predictions") or []
        labels_challenger += result.labels
        scores_champion.append(scores_of(champion, outputs.get("predictions") or [], outputs.get("probabilities")))
        scores_challenger.append(scores_of(challenger, result.labels, result.probabilities))
    n = len(labels_champion)
    agreement = float(np.mean([a == b for a, b in zip(labels_champion, labels_challenger, strict=True)])) if n else None
    champion_scores = np.concatenate(scores_champion) if scores_champion else np.zeros(0)
    challenger_scores = np.concatenate(scores_challenger) if scores_challenger else np.zeros(0)
    performance, fairness = _with_outcomes(
        champion, challenger, position, labels_champion, labels_challenger, champion_scores, challenger_scores,
        start, end,
    )  # fmt: skip
    try:
        with transaction.atomic():
            log.write_many(records)
            return shadows.record_comparison(
                shadow,
                champion=champion,
                start=start,
                end=end,
                rows=n,
                agreement=agreement,
                differences=difference_summary(champion_scores, challenger_scores),
                performance=performance,
                fairness=fairness,
            )
    except IntegrityError:  # compared meanwhile by another run
        return ShadowComparison.objects.filter(shadow=shadow, window_start=start, window_end=end).first()


def _record(
    version: ModelVersion, replayed: Any, inputs: Any, outputs: dict[str, Any], engine_name: str, keeper: Any,
    keys: list[str] | None,
) -> PredictionLog:  # fmt: skip
    """A shadow record; personal values encrypted under the same subjects' keys as production's
    (so erasing a subject erases its replays too)."""
    record_id = uuid.uuid4()
    inputs = personal.protect(keeper, version.registered_model.name, inputs, keys or None, record_id)[0]
    return log.sealed_form(
        PredictionLog(
            public_id=record_id,
            created_at=timezone.now(),
            model_name=version.registered_model.name,
            version=version,
            version_number=version.version,
            caller=CALLER,
            request_id=str(replayed),  # the production record whose inputs were replayed
            protocol="shdw",
            outcome=Disposition.OK,
            n_rows=len(inputs),
            inputs_json=log.dump_json(inputs),
            outputs_json=log.dump_json(outputs),
            engine=engine_name,
            source=LogSource.SHADOW,
        )
    )


def _with_outcomes(
    champion: ModelVersion, challenger: ModelVersion, position: dict[tuple[int, int], int], labels_champion: list[Any],
    labels_challenger: list[Any], champion_scores: np.ndarray, challenger_scores: np.ndarray, start: datetime,
    end: datetime,
) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """Both versions' live metrics (with intervals) and fairness over the replayed rows whose
    outcome arrived."""
    outcomes = latest_outcomes(
        PredictionOutcome.objects.filter(
            record__version=champion, record__created_at__gte=start, record__created_at__lt=end
        ).values_list("record_id", "record__public_id", "row", "actual", "sensitive", "record__inputs_json", "seq")
    )
    items = []
    inputs_cache: dict[int, Any] = {}
    for record_id, public_id, row, actual, stored, inputs_json in outcomes:
        index = position.get((record_id, row))
        if index is None:
            continue
        sensitive = personal.open_attributes(public_id, row, stored)
        if record_id not in inputs_cache:  # personal values read through their keys (erased: missing)
            inputs_cache[record_id] = inputs_of(public_id, inputs_json)
        inputs = inputs_cache[record_id]
        source = inputs[row] if row < len(inputs) and isinstance(inputs[row], dict) else {}
        items.append((index, actual, {n: (sensitive or {}).get(n, source.get(n)) for n in champion.sensitive_features}))
    if not items:
        return {"n_outcomes": 0}, {}
    at = [i for i, _, _ in items]
    actual = [a for _, a, _ in items]
    sensitive = pd.DataFrame([s for _, _, s in items])
    policy = active_policy().values()
    out_perf: dict[str, Any] = {"n_outcomes": len(items)}
    out_fair: dict[str, Any] = {}
    for key, version, labels, scores in (
        ("champion", champion, labels_champion, champion_scores),
        ("shadow", challenger, labels_challenger, challenger_scores),
    ):
        predicted = [labels[i] for i in at]
        score = [float(scores[i]) for i in at] if len(scores) == len(labels) and len(scores) else None
        out_perf[key] = drift.performance(
            task=version.task, classes=list(version.classes or []), y_true=actual, y_pred=predicted, score=score
        )
        frame = sensitive.copy()
        frame["actual"] = actual
        frame["predicted"] = predicted
        out_fair[key] = live_fairness(version, frame, policy) if version.sensitive_features else {}
    return _jsonable(out_perf), _jsonable(out_fair)


def _jsonable(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY, default=str))


def due_windows(shadow: Shadow, *, now: datetime) -> list[tuple[datetime, datetime]]:
    """The windows (aligned as monitoring's) that ended before `now`, from SHADOW_BACKFILL before
    the shadow started, not compared yet."""
    length = window_length()
    epoch = datetime(1970, 1, 1, tzinfo=now.tzinfo)
    first = shadow.started_at - timedelta(seconds=settings.SHADOW_BACKFILL_SECONDS)
    start = epoch + ((first - epoch) // length) * length
    done = set(ShadowComparison.objects.filter(shadow=shadow).values_list("window_start", "window_end"))
    windows = []
    stop = min(now, shadow.ended_at) if shadow.ended_at else now
    while start + length <= stop:
        if (start, start + length) not in done:
            windows.append((start, start + length))
        start += length
    return windows


def replay_due(*, now: datetime | None = None) -> list[ShadowComparison]:
    """Every running shadow's due windows (the periodic monitoring task and `manage.py monitor`)."""
    now = now or timezone.now()
    stored = []
    for running in shadows.running_shadows():
        for start, end in due_windows(running, now=now):
            comparison = replay_window(running.pk, start=start, end=end)
            if comparison is not None:
                stored.append(comparison)
    return stored
