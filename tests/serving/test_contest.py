"""Contestation over the API (docs/design.md, "Human oversight and contestation"): the API key that
received a decision contests it for the person; the case has a 30-day deadline, enters the
oversight queue, and its answer (with any corrected decision) is evidence and on the receipt."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from compliance.evidence import verify_evidence
from compliance.receipts import receipt_context
from core import audit
from core.models import AuditEvent
from serving import contest, oversight
from serving.models import Contestation, ContestationAnswer, OversightItem, PredictionLog
from serving.services import create_api_key
from tests.serving.conftest import rows
from tests.serving.test_decisions import person
from tests.serving.test_predict import predict

pytestmark = pytest.mark.django_db


def contest_url(pid: str) -> str:
    return f"/api/v1/predictions/{pid}/contest"


def post(client, pid: str, body: object):
    return client.post(contest_url(pid), json.dumps(body), content_type="application/json")


def test_the_receiving_key_contests_and_gets_respond_by_in_30_days(keyed, production, german):
    pid = predict(keyed, instances=rows(german, 1)).json()["prediction_ids"][0]
    before = timezone.now()
    response = post(keyed, pid, {"statement": "My income is higher than the bank recorded."})
    assert response.status_code == 201, response.content
    body = response.json()
    respond_by = Contestation.objects.get().respond_by
    assert timedelta(days=30) <= respond_by - before < timedelta(days=30, minutes=1)
    assert body["status"] == "open" and body["prediction_id"] == pid and body["respond_by"]
    assert AuditEvent.objects.filter(action=audit.CONTEST_OPENED).count() == 1
    # the case is worked in the queue, due at its deadline
    [entry] = oversight.queue()
    assert entry.prediction_id == pid and entry.item.reason == "contest" and entry.item.due_at == respond_by
    assert keyed.get(contest_url(pid)).json()["contestations"][0]["statement"].startswith("My income")


def test_a_second_open_contest_is_409_and_bad_input_400(keyed, production, german):
    pid = predict(keyed, instances=rows(german, 1)).json()["prediction_ids"][0]
    assert post(keyed, pid, {"statement": "Wrong."}).status_code == 201
    again = post(keyed, pid, {"statement": "Still wrong."})
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_contested"
    assert post(keyed, pid, {"statement": "   "}).status_code == 400
    assert post(keyed, pid, {"words": "x"}).status_code == 400
    assert post(keyed, pid.split(".")[0], {"statement": "x"}).status_code == 400  # no row named
    assert Contestation.objects.count() == 1


def test_only_the_key_that_received_it_contests(keyed, production, german, api_client, risk_officer, outsider):
    pid = predict(keyed, instances=rows(german, 1)).json()["prediction_ids"][0]
    other = api_client.__class__()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {create_api_key(actor=None, name='other-client')[1]}")
    assert post(other, pid, {"statement": "x"}).status_code == 403
    assert post(person(risk_officer), pid, {"statement": "x"}).status_code == 403
    assert post(person(outsider), pid, {"statement": "x"}).status_code == 403
    assert post(api_client.__class__(), pid, {"statement": "x"}).status_code in (401, 403)
    assert not Contestation.objects.exists()


def test_a_case_officer_answers_with_a_correction_shown_on_the_receipt(
    keyed, production, german, case_officer, auditor
):
    pid = predict(keyed, instances=rows(german, 1)).json()["prediction_ids"][0]
    post(keyed, pid, {"statement": "My income is higher."})
    record = PredictionLog.objects.latest("pk")
    automated = record.outputs["predictions"][0]
    case = Contestation.objects.get()
    answer = contest.answer_contest(
        case.pk,
        action="overridden",
        final_decision=1 - automated,
        answer="We checked your payslips and corrected the decision.",
        justification="",
        actor=case_officer,
    )
    assert answer.review.final_decision == 1 - automated and answer.review.reviewer == "cora"
    assert oversight.queue() == []
    body = keyed.get(contest_url(pid)).json()["contestations"][0]
    assert body["status"] == "answered" and body["answer"]["final_decision"] == 1 - automated
    context, evidence = receipt_context(record, 0, actor=auditor)
    assert evidence["contestations"][0]["answer"]["text"].startswith("We checked your payslips")
    assert context["contestations"][0]["answer"]["action"] == "overridden"
    with pytest.raises(Exception, match="already answered"):
        contest.answer_contest(
            case.pk, action="confirmed", final_decision=None, answer="x", justification="", actor=case_officer
        )
    assert ContestationAnswer.objects.count() == 1
    assert verify_evidence().ok, verify_evidence().message


def test_only_case_and_risk_officers_answer(keyed, production, german, auditor, outsider):
    pid = predict(keyed, instances=rows(german, 1)).json()["prediction_ids"][0]
    post(keyed, pid, {"statement": "x"})
    case = Contestation.objects.get()
    for actor in (auditor, outsider):
        with pytest.raises(Exception, match="case officers"):
            contest.answer_contest(
                case.pk, action="confirmed", final_decision=None, answer="x", justification="", actor=actor
            )
    assert OversightItem.objects.count() == 1 and not ContestationAnswer.objects.exists()


def test_rules_route_adverse_near_threshold_and_segment_decisions(
    keyed, production, german, risk_officer, case_officer
):
    with pytest.raises(Exception, match="risk officers"):
        oversight.set_oversight_rule(model_name=production.registered_model.name, actor=case_officer, justification="x")
    oversight.set_oversight_rule(
        model_name=production.registered_model.name,
        actor=risk_officer,
        justification="Art. 14: adverse credit decisions get a person.",
        adverse=True,
        band=0.05,
        segments={"housing": ["rent"]},
    )
    predict(keyed, instances=rows(german, 40))
    record = PredictionLog.objects.latest("pk")
    favourable = production.favourable
    adverse_rows = {i for i, p in enumerate(record.outputs["predictions"]) if p != favourable}
    assert adverse_rows, "the test data should hold adverse decisions"
    routed = oversight.route_new_decisions(now=timezone.now() + timedelta(seconds=5))
    items = list(OversightItem.objects.all())
    assert routed == len(items) and {i.row for i in items} >= adverse_rows
    assert AuditEvent.objects.filter(action=audit.DECISION_ROUTED).count() == routed
    # routed once: the sweep moved on
    assert oversight.route_new_decisions(now=timezone.now() + timedelta(seconds=5)) == 0
    # a review resolves the item; the queue is oldest first
    queue = oversight.queue()
    assert [q.item.routed_at for q in queue] == sorted(q.item.routed_at for q in queue)
    first = queue[0]
    from serving import decisions

    decisions.review_decision(
        record=first.item.record,
        row=first.item.row,
        action="confirmed",
        final_decision=None,
        justification="Checked.",
        reviewer="cora",
        actor=case_officer,
    )
    assert first.prediction_id not in {q.prediction_id for q in oversight.queue()}
    assert verify_evidence().ok, verify_evidence().message


def test_reasons_for_names_each_rule_pure():
    from serving.models import OversightRule

    rule = OversightRule(adverse=True, band=0.1, segments={"age_group": ["young"]})
    assert oversight.reasons_for(rule, decision=1, favourable=1, score=0.9, inputs={"age_group": "old"}) == []
    found = oversight.reasons_for(rule, decision=0, favourable=1, score=0.55, inputs={"age_group": "young"})
    assert [f.split(":")[0] for f in found] == ["adverse", "near_threshold", "segment"]


def test_risk_officers_set_the_oversight_rule_over_the_api(production, risk_officer, case_officer, auditor):
    url = f"/api/v1/models/{production.registered_model.name}/oversight"
    body = {"adverse": True, "band": 0.1, "segments": {"housing": ["rent"]}, "justification": "Art. 14."}
    assert person(case_officer).post(url, body, format="json").status_code == 403
    assert person(risk_officer).post(url, {**body, "justification": ""}, format="json").status_code == 400
    assert person(risk_officer).post(url, {**body, "band": 0.9}, format="json").status_code == 400
    assert person(risk_officer).post(url, {**body, "band": "x"}, format="json").status_code == 400
    done = person(risk_officer).post(url, body, format="json")
    assert done.status_code == 200, done.content
    assert person(case_officer).get(url).json()["rule"]["segments"] == {"housing": ["rent"]}
    assert person(auditor).get(url).status_code == 403
    assert person(risk_officer).post("/api/v1/models/nope/oversight", body, format="json").status_code == 404
    assert AuditEvent.objects.filter(action=audit.OVERSIGHT_RULE_SET).count() == 1
