"""The demo's monitoring (seed_demo): traffic in two windows through the real serving path, the
second one shifted, with outcomes, so a new user meets a drift alert and an open finding."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd
from django.utils import timezone

from lifecycle import demo_data
from lifecycle.models import ModelVersion, Status
from monitoring import services
from serving.models import PredictionLog
from serving.predict import Caller, PredictionRequest, predict
from serving.seals import seal_predictions
from serving.services import OutcomeItem, record_outcomes


def _send(version: ModelVersion, caller: Caller, frame: pd.DataFrame, tag: str) -> list[tuple[Any, int]]:
    features = [c["name"] for c in version.input_schema]
    rows = frame[features].to_dict(orient="records")
    ids = []
    for i in range(0, len(rows), 100):
        served = predict(
            PredictionRequest(
                caller, version.registered_model.name, "v1", request_id=f"{tag}-{i}", instances=rows[i : i + 100]
            )
        )
        ids += [(served.record.public_id, row) for row in range(len(rows[i : i + 100]))]
    return ids


def seed_demo_monitoring(version: ModelVersion, *, user: Any) -> list[Any]:
    """Two windows: applicants like the evaluation data, then larger loans over longer terms."""
    evaluation = demo_data.split(demo_data.load_german_credit())[1]
    stable = pd.concat([evaluation, evaluation], ignore_index=True)
    shifted = stable.assign(credit_amount=stable["credit_amount"] * 5 // 2, duration=stable["duration"] + 12)
    caller = Caller(user=user, api_key=None)
    start = timezone.now()
    sent = _send(version, caller, stable, "demo-monitoring-a")
    middle = timezone.now()
    sent += _send(version, caller, shifted, "demo-monitoring-b")
    end = timezone.now() + timedelta(seconds=1)
    labels = stable[demo_data.LABEL].tolist() * 2
    groups = stable["age_group"].tolist() * 2
    # (the serving path writes records with one raw INSERT: read them back to attach outcomes)
    records = {r.public_id: r for r in PredictionLog.objects.filter(public_id__in={pid for pid, _ in sent})}
    record_outcomes(
        [
            OutcomeItem(f"{pid}.{row}", records[pid], row, int(labels[i]), {"age_group": groups[i]})
            for i, (pid, row) in enumerate(sent)
        ],
        api_key=None,
        reporter=user.get_username(),
        actor=user,
    )
    seal_predictions()
    services.accumulate_sealed()
    return [
        services.store_window(version.pk, start=start, end=middle),
        services.store_window(version.pk, start=middle, end=end),
    ]


def seed_demo_shadow(challenger: ModelVersion, *, officer: Any, since: Any) -> Any:
    """Put an in-review challenger in shadow and replay the demo's traffic through it, so the
    review page shows a shadow comparison (with outcomes) next to production."""
    from governance import shadow as shadows
    from monitoring import shadow

    if challenger.status != Status.IN_REVIEW:
        return None
    running = shadows.start_shadow(
        challenger.pk,
        actor=officer,
        justification="Challenger: compare with production on the live applications before deciding.",
    )
    return shadow.replay_window(running.pk, start=since, end=timezone.now() + timedelta(seconds=1))
