"""The demo's human oversight (docs/design.md, "Human oversight and contestation"): a routing rule on
loan-prescreen, a client application's traffic routed to the queue, and one decision contested
by the applicant, through the real serving path and services. Cora, the case officer, meets
them in the oversight queue."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from lifecycle import demo_data
from lifecycle.models import ModelVersion
from serving import contest, oversight, services
from serving.predict import Caller, PredictionRequest, predict

CONTESTED_KEY = "2026-204"


def seed_demo_oversight(version: ModelVersion, *, officer: Any) -> str:
    """Set the rule, serve ten applications from the loan front end, route them, and contest the
    first adverse one; returns the contested decision's id."""
    name = version.registered_model.name
    oversight.set_oversight_rule(
        model_name=name,
        actor=officer,
        justification="AI Act art. 14: every declined application and every close call is seen by a case officer.",
        adverse=True,
        band=0.05,
        due_hours=48,
    )
    key, _ = services.create_api_key(actor=officer, name="loan-portal")
    caller = Caller(user=None, api_key=key)
    evaluation = demo_data.split(demo_data.load_german_credit())[1]
    rows = evaluation[version.feature_names].iloc[40:50].to_dict(orient="records")
    served = predict(
        PredictionRequest(
            caller,
            name,
            "v1",
            request_id="demo-portal",
            instances=rows,
            business_keys=[f"2026-{200 + i}" for i in range(len(rows))],
        )
    )
    predictions = served.record.outputs["predictions"]
    adverse = [i for i, p in enumerate(predictions) if str(p) != str(version.favourable)] or [0]
    row = adverse[0]
    contest.contest_decision(
        record=served.record,
        row=row,
        statement="I was declined, but my savings account was recorded wrongly: I have over 1,000 DM saved. "
        "Please review the decision with my bank statement.",
        caller=caller.name,
        api_key=key,
        actor=None,
    )
    oversight.route_new_decisions(now=timezone.now() + timedelta(seconds=oversight.SETTLE_SECONDS + 1))
    return served.prediction_ids[row]
