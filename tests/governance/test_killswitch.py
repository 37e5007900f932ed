"""The kill switch: a pre-approved fallback, stop and resume (risk officers, justified, audited);
while stopped every serving path answers from the fallback or refuses 503 model_stopped."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core import audit
from core.evidence import evidence
from core.models import AuditEvent
from governance import operations, workflow
from lifecycle.models import ModelVersion, RegisteredModel, Status
from serving.models import BatchJob, BatchStatus, PredictionLog
from tests.serving.conftest import OK, checked, rows
from tests.serving.test_batch import as_csv, portfolio, post_csv
from tests.serving.test_predict import infer, predict

pytestmark = pytest.mark.django_db


@pytest.fixture
def fallback(second_version: ModelVersion, data_scientist: Any, risk_officer: Any) -> ModelVersion:
    """v2, approved (its approval holds) and not deployed: v1 stays in production."""
    version = checked(second_version, data_scientist)
    return workflow.approve_version(version.pk, actor=risk_officer, justification=OK)


def post(client: Any, user: Any, path: str, body: dict[str, Any]) -> Any:
    client.force_authenticate(user)
    return client.post(f"/api/v1/models/credit-risk/{path}", json.dumps(body), content_type="application/json")


def test_stop_answers_from_the_fallback_on_every_path_then_resume_restores_production(
    api_client, keyed, production, fallback, risk_officer, german, eager_tasks, django_capture_on_commit_callbacks
):
    assert predict(keyed, instances=rows(german, 2)).json()["version"] == 1  # the process remembers v1
    response = post(api_client, risk_officer, "fallback", {"version": 2, "justification": "Challenger, validated."})
    assert response.status_code == 200, response.json()
    assert response.json()["fallback_version"] == 2 and response.json()["stopped"] is False
    assert predict(keyed, instances=rows(german, 2)).json()["version"] == 1  # a fallback alone changes nothing

    response = post(api_client, risk_officer, "stop", {"justification": "Scores drift on new applicants."})
    assert response.status_code == 200, response.json()
    assert response.json()["stopped"] is True
    v1 = predict(keyed, instances=rows(german, 2))
    assert v1.status_code == 200 and v1.json()["version"] == 2
    named = predict(keyed, instances=rows(german, 1), version=1)  # naming the stopped version changes nothing
    assert named.status_code == 200 and named.json()["version"] == 2
    v2 = infer(keyed, rows(german, 2))
    assert v2.status_code == 200 and v2.json()["model_version"] == "2"
    with django_capture_on_commit_callbacks(execute=True):
        job = post_csv(keyed, as_csv(portfolio(german, 20)))
    assert job.status_code == 202, job.json()
    assert BatchJob.objects.get(public_id=job.json()["id"]).version == fallback
    logged = PredictionLog.objects.filter(outcome="ok").order_by("-id")
    assert set(logged.values_list("version_number", flat=True)[:4]) == {2}

    response = post(api_client, risk_officer, "resume", {"justification": "Fixed and revalidated."})
    assert response.status_code == 200 and response.json()["stopped"] is False
    assert predict(keyed, instances=rows(german, 2)).json()["version"] == 1
    assert infer(keyed, rows(german, 1)).json()["model_version"] == "1"

    actions = list(AuditEvent.objects.filter(target_type="lifecycle.registeredmodel").values_list("action", flat=True))
    assert actions[-3:] == [audit.MODEL_FALLBACK_SET, audit.MODEL_STOPPED, audit.MODEL_RESUMED]
    last = AuditEvent.objects.filter(action=audit.MODEL_RESUMED).get()
    assert last.actor_id == risk_officer.pk and last.data["justification"] == "Fixed and revalidated."
    assert last.data["evidence"] == evidence(RegisteredModel.objects.get(name="credit-risk"))


def test_a_stopped_model_without_fallback_refuses_503_and_logs_the_refusal(
    api_client, keyed, production, risk_officer, german
):
    assert predict(keyed, instances=rows(german, 1)).status_code == 200
    assert post(api_client, risk_officer, "stop", {"justification": "Kill it."}).status_code == 200
    response = predict(keyed, instances=rows(german, 1))
    assert response.status_code == 503 and response.json()["error"]["code"] == "model_stopped"
    assert infer(keyed, rows(german, 1)).status_code == 503
    refused = PredictionLog.objects.filter(outcome="refused").order_by("-id").first()
    assert refused is not None and refused.reason.startswith("model_stopped")
    assert not PredictionLog.objects.filter(outcome="ok", created_at__gt=refused.created_at).exists()


def test_a_running_batch_of_the_stopped_version_stops_at_its_next_chunk(production, keyed, german, risk_officer):
    from governance import killswitch
    from serving import batch_chunks

    job = post_csv(keyed, as_csv(portfolio(german, 20)))  # (tasks not run: chunks wait)
    assert job.status_code == 202
    killswitch.stop_model(production.registered_model_id, actor=risk_officer, justification="Stop now.")
    stored = BatchJob.objects.get(public_id=job.json()["id"])
    batch_chunks.run_chunk(stored.pk, 0)
    stored.refresh_from_db()
    assert stored.status == BatchStatus.STOPPED and "model_stopped" in stored.reason


def test_the_guarded_insert_refuses_a_remembered_version_once_the_model_is_stopped(production, keyed, german):
    """The stop is read by the answer's own INSERT: a process that resolved v1 before the stop
    (and was never told) logs nothing from it."""
    from serving import log
    from serving.predict import Caller, PredictionRequest

    assert predict(keyed, instances=rows(german, 1)).status_code == 200
    RegisteredModel.objects.filter(pk=production.registered_model_id).update(stopped_at="2026-01-01T00:00:00Z")
    request = PredictionRequest(Caller(None, None), "credit-risk", "v1", instances=rows(german, 1))
    entry = request.entry("ok", version=production, inputs=rows(german, 1), outputs={})
    guard = log.Guard(production.pk, production.artifact_sha256, production.manifest_sha256, ("production",))
    assert log.write(entry, guard) is None


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("stop", {}, "justification"),
        ("stop", {"justification": "  "}, "justification"),
        ("resume", {"justification": ""}, "justification"),
        ("fallback", {"justification": "x"}, "version"),
        ("fallback", {"version": "two", "justification": "x"}, "version"),
        ("fallback", {"version": 9, "justification": "x"}, "version"),
        ("fallback", {"version": 2}, "justification"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api_client, production, fallback, risk_officer, path, body, field):
    response = post(api_client, risk_officer, path, body)
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["details"]


@pytest.mark.parametrize("path", ["stop", "resume", "fallback"])
def test_only_risk_officers_use_the_switch(api_client, production, data_scientist, auditor, outsider, path):
    for user in (data_scientist, auditor, outsider):
        assert post(api_client, user, path, {"version": 1, "justification": "x"}).status_code == 403
    api_client.force_authenticate(None)
    assert api_client.post(f"/api/v1/models/credit-risk/{path}", {}).status_code in (401, 403)
    assert not AuditEvent.objects.filter(action__startswith="governance.model.").exists()


def test_rules_are_409(api_client, production, second_version, risk_officer):
    # a draft, and the production version itself, cannot be the fallback
    assert post(api_client, risk_officer, "fallback", {"version": 2, "justification": "x"}).status_code == 409
    assert post(api_client, risk_officer, "fallback", {"version": 1, "justification": "x"}).status_code == 409
    assert post(api_client, risk_officer, "resume", {"justification": "x"}).status_code == 409  # not stopped
    assert post(api_client, risk_officer, "stop", {"justification": "x"}).status_code == 200
    assert post(api_client, risk_officer, "stop", {"justification": "x"}).status_code == 409  # already stopped
    model = RegisteredModel.objects.get(name="credit-risk")
    assert model.stopped_reason == "x" and model.fallback_version is None


def test_a_fallback_that_stopped_being_servable_is_not_served(
    api_client, keyed, production, fallback, risk_officer, german
):
    post(api_client, risk_officer, "fallback", {"version": 2, "justification": "Challenger."})
    post(api_client, risk_officer, "stop", {"justification": "Stop."})
    assert predict(keyed, instances=rows(german, 1)).json()["version"] == 2
    operations.retire_version(fallback.pk, actor=risk_officer, justification="Withdrawn.")
    response = predict(keyed, instances=rows(german, 1))
    assert response.status_code == 503 and response.json()["error"]["code"] == "model_stopped"
    assert ModelVersion.objects.get(pk=fallback.pk).status == Status.RETIRED


def test_the_stop_shows_on_the_models_pages_and_in_the_version_report(
    client, production, fallback, risk_officer, auditor
):
    from django.template.loader import render_to_string

    from compliance import report_context
    from governance import killswitch

    killswitch.designate_fallback(
        production.registered_model_id, actor=risk_officer, version_number=2, justification="Challenger."
    )
    killswitch.stop_model(production.registered_model_id, actor=risk_officer, justification="Drift on new applicants.")
    client.force_login(auditor)
    for url in (
        "/registry/models/credit-risk/",
        "/registry/models/credit-risk/versions/1/",
        "/audit/models/credit-risk/",
        "/audit/models/credit-risk/versions/1/",
        "/monitoring/credit-risk/1/",
    ):
        page = client.get(url)
        assert page.status_code == 200, url
        text = page.content.decode()
        assert 'id="kill-switch"' in text and "Drift on new applicants." in text and "v2" in text, url
    context, evidence = report_context.version_report(ModelVersion.objects.get(pk=production.pk), actor=auditor)
    assert evidence["kill_switch"]["stopped"] is True and evidence["kill_switch"]["fallback_version"] == 2
    html = render_to_string("compliance/reports/version.html", context)
    assert "STOPPED" in html and "answered by the fallback, version 2" in html
