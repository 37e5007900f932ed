"""The demo's decision: a declined application with a business key, its explanation
and a person's review, through the real serving path and services."""

from __future__ import annotations

from typing import Any

import numpy as np

from lifecycle import demo_data
from lifecycle.models import ModelVersion
from serving import decisions
from serving.models import ReviewAction
from serving.predict import Caller, PredictionRequest, predict

DEMO_KEY = "2026-118"


def seed_demo_decision(version: ModelVersion, *, reviewer: Any) -> str:
    """Serve the evaluation row the model likes least as application 2026-118 (explained and
    logged), store its explanation and record a reviewer's confirmation; returns its id."""
    evaluation = demo_data.split(demo_data.load_german_credit())[1]
    features = version.feature_names
    frame = evaluation[features]
    model = decisions.explaining(version).model
    favourable = list(model.classes_).index(version.favourable)
    row = frame.iloc[int(np.argmin(model.predict_proba(frame)[:, favourable]))].to_dict()
    caller = Caller(user=reviewer, api_key=None)
    request = PredictionRequest(
        caller,
        version.registered_model.name,
        "v1",
        request_id="demo-decision",
        instances=[row],
        business_keys=[DEMO_KEY],
        explain=True,
    )
    served = predict(request)
    decisions.explanation_of(served.record, 0, actor=reviewer)
    decisions.review_decision(
        record=served.record,
        row=0,
        action=ReviewAction.CONFIRMED,
        final_decision=None,
        justification="Checked the application file: the loan duration and the empty checking account stand.",
        reviewer=reviewer.username,
        actor=reviewer,
    )
    return served.prediction_ids[0]
