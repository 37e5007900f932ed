"""The auditors' workspace: read-only pages, verify now, exports, and writes refused and audited."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from django.test import Client

from core import audit
from core.models import AuditEvent
from serving.models import PredictionLog
from serving.services import create_api_key
from tests.conftest import tamper
from tests.serving.conftest import rows


def login(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def test_auditor_reads_every_page(served, auditor, client) -> None:
    login(client, auditor)
    name = served.registered_model.name
    index = client.get("/audit/?q=" + name[:4])
    assert index.status_code == 200 and name in index.content.decode()
    model_page = client.get(f"/audit/models/{name}/").content.decode()
    assert 'aria-label="Lineage graph"' in model_page
    assert served.training_dataset.sha256 in model_page
    assert served.artifact_sha256 in model_page
    assert "in production" in model_page
    version_page = client.get(f"/audit/models/{name}/versions/1/").content.decode()
    assert "Generate compliance report (PDF/A)" in version_page
    assert served.artifact_sha256 in version_page
    record = PredictionLog.objects.filter(outcome="ok").first()
    log_page = client.get(f"/audit/predictions/?model={name}&version=1&outcome=ok").content.decode()
    assert str(record.public_id) in log_page
    assert 'class="badge outcome-ok"' in log_page
    assert 'class="badge outcome-invalid"' not in log_page
    detail = client.get(f"/audit/predictions/{record.public_id}/").content.decode()
    assert record.leaf_hash in detail and "Merkle root" in detail
    trail = client.get("/audit/trail/?action=governance.version").content.decode()
    assert "<code>governance.version.approved</code>" in trail
    assert "<code>serving.predictions.sealed</code>" not in trail


def test_prediction_log_filters_by_request_id_and_names_bad_filters(served, auditor, client) -> None:
    login(client, auditor)
    tamper(PredictionLog, {}, request_id="other")
    target = PredictionLog.objects.first()
    tamper(PredictionLog, {"pk": target.pk}, request_id="req-42")
    page = client.get("/audit/predictions/?request_id=req-42").content.decode()
    assert page.count("/audit/predictions/") >= 1 and str(target.public_id) in page
    assert page.count(">open</a>") == 1
    bad = client.get("/audit/predictions/?since=last-week")
    assert bad.status_code == 400
    assert "since: &#x27;last-week&#x27; is not a date" in bad.content.decode()
    assert client.get("/audit/predictions/not-a-uuid/").status_code == 404


@pytest.mark.parametrize("who", ["data_scientist", "outsider"])
def test_workspace_is_closed_to_other_roles(who, served, client, request) -> None:
    login(client, request.getfixturevalue(who))
    for url in ("/audit/", "/audit/trail/", "/audit/predictions/", "/audit/exports/audit.csv"):
        assert client.get(url).status_code == 403, url
    for kind in ("verify", "period_report", "version_report"):
        assert client.post("/audit/jobs/", {"kind": kind}).status_code == 403


def test_risk_officer_uses_the_workspace_too(
    served, risk_officer, client, django_capture_on_commit_callbacks, eager_tasks
) -> None:
    login(client, risk_officer)
    assert client.get("/audit/").status_code == 200
    report = {"kind": "version_report", "model": served.registered_model.name, "version": "1"}
    with django_capture_on_commit_callbacks(execute=True):
        job_page = client.post("/audit/jobs/", report)["Location"]
    response = client.get(job_page + "result")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"


def test_verify_now_shows_the_result_and_is_audited(served, auditor, client, verify_now) -> None:
    login(client, auditor)
    page = verify_now()
    assert "Verified: the audit trail, the prediction seals and every evidence row are intact." in page
    assert 'id="job-status" data-verdict="PASSED">Verification PASSED</span>' in page
    assert "1 prediction seals verified" in page
    event = AuditEvent.objects.filter(action=audit.AUDIT_VERIFIED).latest("seq")
    assert event.action == audit.AUDIT_VERIFIED and event.actor_username == auditor.username
    assert event.data["ok"] is True
    assert f"recorded as audit event #{event.seq}" in page

    record = PredictionLog.objects.filter(outcome="ok").first()
    tamper(PredictionLog, {"pk": record.pk}, outputs_json='{"predictions": ["bad"]}')
    page = verify_now()
    assert "Verification FAILED." in page
    assert 'id="job-status" data-verdict="FAILED">Verification FAILED</span>' in page and ">Done<" not in page
    assert f"record {record.public_id} changed" in page
    assert AuditEvent.objects.filter(action=audit.AUDIT_VERIFIED).latest("seq").data["ok"] is False


def test_crafted_writes_by_an_auditor_are_refused_and_audited(served, auditor, client, api_client) -> None:
    login(client, auditor)
    name = served.registered_model.name
    before = AuditEvent.objects.filter(action=audit.AUDITOR_WRITE_REFUSED).count()
    attempts = [
        f"/registry/models/{name}/versions/1/submit/",
        "/registry/models/new/",
        f"/admin/governance/versionreview/{served.pk}/decide/",
        "/api/v1/models/",
        f"/api/v1/models/{name}/predict",
        "/v2/models/x/infer",
    ]
    for url in attempts:
        response = client.post(url, {"name": "sneaky", "title": "x", "risk_tier": "low"})
        assert response.status_code == 403, url
    assert client.post("/api/v1/models/", {}).json()["error"]["code"] == "read_only"
    assert "error" in client.post("/v2/models/x/infer", {}).json()
    refused = AuditEvent.objects.filter(action=audit.AUDITOR_WRITE_REFUSED).order_by("seq")
    assert refused.count() == before + len(attempts) + 2
    assert [e.data["path"] for e in refused[before : before + len(attempts)]] == attempts
    assert {e.actor_username for e in refused} == {auditor.username}

    # The same rule holds for an API key that belongs to an auditor.
    key = create_api_key(actor=None, name="audrey-key", username=auditor.username)[1]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = api_client.post("/api/v1/models/", {"name": "sneaky", "title": "x", "risk_tier": "low"}, format="json")
    assert response.status_code == 403
    assert AuditEvent.objects.filter(action=audit.AUDITOR_WRITE_REFUSED).latest("seq").data["path"] == "/api/v1/models/"
    assert api_client.get(f"/api/v1/models/{name}/").status_code == 200


def test_the_streamed_prediction_exports_are_byte_for_byte_the_generic_writers(served, api_client, german) -> None:
    """predictions_csv / predictions_jsonl write tuples directly, for speed: the same bytes as
    as_csv / as_jsonl of prediction_rows(), a formula-like request id included."""
    from compliance import exports

    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {create_api_key(actor=None, name='bytes')[1]}")
    url = f"/api/v1/models/{served.registered_model.name}/predict"
    answer = api_client.post(url, {"instances": rows(german, 3)}, format="json", HTTP_X_REQUEST_ID=' =1+2 "q"')
    assert answer.status_code == 200
    records = PredictionLog.objects.all()
    csv_fast = b"".join(exports.predictions_csv(records))
    assert csv_fast == b"".join(exports.as_csv(exports.prediction_rows(records), exports.PREDICTION_COLUMNS))
    assert b"' =1+2" in csv_fast
    jsonl_fast = b"".join(exports.predictions_jsonl(records))
    assert jsonl_fast == b"".join(exports.as_jsonl(exports.prediction_rows(records)))
    assert jsonl_fast.count(b"\n") == records.count()


def test_exports_stream_csv_and_jsonl_with_formulas_neutralised(served, auditor, client, api_client, german) -> None:
    # A client chooses its own request id: here one a spreadsheet would run.
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {create_api_key(actor=None, name='sheet')[1]}")
    url = f"/api/v1/models/{served.registered_model.name}/predict"
    formula = '=HYPERLINK("http://x")'
    answer = api_client.post(url, {"instances": rows(german, 1)}, format="json", HTTP_X_REQUEST_ID=formula)
    assert answer.status_code == 200
    login(client, auditor)
    response = client.get(f"/audit/exports/predictions.csv?model={served.registered_model.name}")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(table) == PredictionLog.objects.count() == 7
    assert table[-1]["request_id"] == "'" + formula
    assert json.loads(table[0]["inputs"]) == PredictionLog.objects.order_by("pk").first().inputs
    assert table[0]["latency_ms"] and not table[0]["latency_ms"].startswith("'")

    lines = b"".join(client.get("/audit/exports/predictions.jsonl").streaming_content).decode().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["id"] for r in records] == [str(p.public_id) for p in PredictionLog.objects.order_by("pk")]
    assert records[-1]["request_id"] == formula  # JSON Lines is data, not a spreadsheet
    assert records[0]["outputs"] == PredictionLog.objects.order_by("pk").first().outputs

    trail = b"".join(client.get("/audit/exports/audit.csv?action=governance").streaming_content).decode()
    actions = [row["action"] for row in csv.DictReader(io.StringIO(trail))]
    assert "governance.version.approved" in actions
    assert all(a.startswith("governance") for a in actions)
    exported = AuditEvent.objects.filter(action=audit.EXPORT_DOWNLOADED)
    assert exported.count() == 3 and {e.data["format"] for e in exported} == {"csv", "jsonl"}
    assert client.get("/audit/exports/secrets.csv").status_code == 404


@pytest.mark.parametrize("value", ["2026-13-45", "2026-02-30T10:00", "9999-12-31", "yesterday", "2026-01-01T25:00"])
def test_impossible_dates_are_a_named_400_not_a_500(value, auditor, client, api_client) -> None:
    login(client, auditor)
    for url in (f"/audit/predictions/?until={value}", f"/audit/trail/?until={value}"):
        response = client.get(url)
        assert response.status_code == 400, (url, response.status_code)
        assert "until: " in response.content.decode()
    api_client.force_authenticate(auditor)
    response = api_client.get(f"/api/v1/reports/period.pdf?since=2026-01-01&until={value}")
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("until: ")


def test_a_nul_character_in_a_filter_is_a_named_400(auditor, client, api_client) -> None:
    """PostgreSQL cannot compare text holding NUL: this was a 500 there before."""
    login(client, auditor)
    for url, field in (
        ("/audit/predictions/?request_id=a%00b", "request_id"),
        ("/audit/predictions/?model=%00", "model"),
        ("/audit/trail/?actor=a%00b", "actor"),
        ("/audit/exports/audit.csv?target=%00", "target"),
    ):
        response = client.get(url)
        assert response.status_code == 400, url
        assert f"{field}: the NUL character is not allowed" in response.content.decode()
    api_client.force_authenticate(auditor)
    response = api_client.get("/api/v1/predictions/?request_id=a%00b")
    assert response.status_code == 400
    assert "NUL" in response.json()["error"]["message"]
