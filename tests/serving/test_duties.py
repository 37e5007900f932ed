"""Segregation of duties on decisions: outcomes come from the API key that received the
prediction or a risk officer, never the version's creator or submitter; a wrong outcome is
corrected by a new audited row that live metrics use from then on; reviews are never by the
version's creator or submitter. The service functions refuse, not only the API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from core.models import AuditEvent
from core.role_changes import grant_role
from core.roles import RISK_OFFICERS
from monitoring import windows as monitoring
from serving import decisions
from serving.errors import ServingError
from serving.models import PredictionLog, PredictionOutcome
from serving.services import record_outcome
from tests.serving.conftest import rows
from tests.serving.test_predict import predict

pytestmark = pytest.mark.django_db


def person(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def officer(user):
    grant_role(user, RISK_OFFICERS, actor=None, justification="also an officer in this test")
    return user


def answered(keyed, german, n=1) -> list[str]:
    response = predict(keyed, instances=rows(german, n))
    assert response.status_code == 200, response.content
    return response.json()["prediction_ids"]


def record_of(pid):
    return PredictionLog.objects.select_related("version").get(public_id=pid.split(".")[0])


def test_the_creator_cannot_report_an_outcome_and_the_real_client_still_can(keyed, production, german, data_scientist):
    pid = answered(keyed, german)[0]
    url = f"/api/v1/predictions/{pid}/outcome"
    refused = person(data_scientist).post(url, {"actual": 1}, format="json")
    assert refused.status_code == 403, refused.content  # a data scientist does not report outcomes
    refused = person(officer(data_scientist)).post(url, {"actual": 1}, format="json")
    assert refused.status_code == 409 and "created" in refused.json()["error"]["message"]
    body = {"outcomes": [{"prediction_id": pid, "actual": 1}]}
    bulk = person(data_scientist).post("/api/v1/outcomes", body, format="json")
    assert bulk.status_code == 400 and "created" in json_text(bulk)
    with pytest.raises(ServingError) as exc:  # the service asks the rule itself
        record_outcome(record=record_of(pid), row=0, actual=1, reporter="dana", actor=data_scientist, api_key=None)
    assert exc.value.status == 409
    assert not PredictionOutcome.objects.exists()
    assert keyed.post(url, {"actual": 1}, format="json").status_code == 201


def json_text(response) -> str:
    return response.content.decode()


def test_a_risk_officer_reports_but_a_second_outcome_is_409(keyed, production, german, second_officer):
    pid = answered(keyed, german)[0]
    url = f"/api/v1/predictions/{pid}/outcome"
    assert person(second_officer).post(url, {"actual": 1}, format="json").status_code == 201
    again = keyed.post(url, {"actual": 1}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_reported"


def test_a_correction_is_a_new_audited_row_and_live_metrics_use_it(keyed, production, german, logreg):
    pids = answered(keyed, german, 4)
    predicted = record_of(pids[0]).outputs["predictions"]
    for pid, label in zip(pids, predicted, strict=True):  # every outcome agrees with the model
        assert keyed.post(f"/api/v1/predictions/{pid}/outcome", {"actual": label}, format="json").status_code == 201
    window = timezone.now() - timedelta(hours=1), timezone.now() + timedelta(hours=1)
    frame = monitoring.outcome_rows(production, *window)
    assert len(frame) == 4 and (frame["actual"] == frame["predicted"]).all()
    wrong = [c for c in production.classes if c != predicted[0]][0]
    url = f"/api/v1/predictions/{pids[0]}/outcome"
    no_reason = keyed.post(url, {"actual": wrong, "corrects": True}, format="json")
    assert no_reason.status_code == 400 and "justification" in json_text(no_reason)
    corrected = keyed.post(
        url, {"actual": wrong, "corrects": True, "justification": "The loan defaulted after all."}, format="json"
    )
    assert corrected.status_code == 201, corrected.content
    stored = PredictionOutcome.objects.filter(record=record_of(pids[0]), row=0).order_by("seq")
    assert [(o.seq, o.actual) for o in stored] == [(0, predicted[0]), (1, wrong)]  # both kept
    assert stored[1].justification == "The loan defaulted after all."
    event = AuditEvent.objects.filter(action="serving.outcome.corrected").get()
    assert event.data["before"] == predicted[0] and event.data["after"] == wrong
    frame = monitoring.outcome_rows(production, *window)
    assert len(frame) == 4 and int((frame["actual"] != frame["predicted"]).sum()) == 1
    nothing = keyed.post(
        f"/api/v1/predictions/{pids[0].split('.')[0]}.3/outcome",
        {"actual": wrong, "corrects": True, "justification": "x"},
        format="json",
    )
    assert nothing.status_code == 201  # (row 3 had an outcome too: a correction of it)
    unreported = answered(keyed, german)[0]
    nothing = keyed.post(
        f"/api/v1/predictions/{unreported}/outcome",
        {"actual": wrong, "corrects": True, "justification": "Nothing to correct."},
        format="json",
    )
    assert nothing.status_code == 409 and nothing.json()["error"]["code"] == "nothing_to_correct"


def test_the_creator_or_submitter_never_reviews_a_decision(keyed, production, german, data_scientist, second_scientist):
    pid = answered(keyed, german)[0]
    url = f"/api/v1/predictions/{pid}/review"
    body = {"action": "confirmed", "justification": "Checked the file."}
    refused = person(data_scientist).post(url, body, format="json")
    assert refused.status_code == 409 and "created" in refused.json()["error"]["message"]
    with pytest.raises(ServingError):
        decisions.review_decision(
            record=record_of(pid),
            row=0,
            action="confirmed",
            final_decision=None,
            justification="Checked.",
            reviewer="dana",
            actor=data_scientist,
        )
    assert person(second_scientist).post(url, body, format="json").status_code == 201
