"""Live performance of a vendor or external model (inventory): its decisions were
logged by the client that received them (serving.external, source "external") and their outcomes
reported against their prediction ids; the metrics are the live metrics of in-house versions
(monitoring.drift.performance), over the decisions made in [since, until)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from lifecycle.models import RegisteredModel, Task
from monitoring import drift
from serving.models import LogSource, PredictionLog, PredictionOutcome


def external_performance(model: RegisteredModel, *, since: datetime, until: datetime) -> dict[str, Any]:
    records = PredictionLog.objects.filter(
        model_name=model.name, source=LogSource.EXTERNAL, created_at__gte=since, created_at__lt=until
    )
    outcomes = PredictionOutcome.objects.filter(record__in=records).values_list("record__outputs_json", "row", "actual")
    truth: list[Any] = []
    predicted: list[Any] = []
    classes: list[Any] = []
    for outputs_json, row, actual in outcomes.iterator(chunk_size=2000):
        outputs = orjson.loads(outputs_json)
        labels = outputs.get("predictions") or []
        if row < len(labels):
            truth.append(actual)
            predicted.append(labels[row])
            classes = outputs.get("classes") or classes
    task = "classification" if classes or any(isinstance(v, (str, bool)) for v in truth) else "regression"
    if task == Task.CLASSIFICATION and not classes:
        classes = sorted({*truth, *predicted}, key=str)
    return {
        "model": model.name,
        "kind": model.kind,
        "since": since,
        "until": until,
        "decisions": sum(r for r in records.values_list("n_rows", flat=True)),
        "task": task,
        "classes": classes,
        "performance": drift.performance(task=task, classes=classes, y_true=truth, y_pred=predicted, score=None),
    }
