"""Monitoring end to end on the real log: windows from sealed and unsealed records, alerts that
open findings, live performance and fairness from outcomes, expiry and recertification."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.core import mail
from django.utils import timezone
from fairlearn.metrics import demographic_parity_difference
from scipy import stats
from sklearn import metrics as skm

from core import audit
from core.models import AuditEvent
from governance import expiry, operations, workflow
from governance.errors import WorkflowError
from governance.models import Finding, Severity
from lifecycle import demo_data
from lifecycle.models import ModelVersion, Status
from monitoring import services, windows
from monitoring.models import HourlyCounts, MonitoringWindow
from serving.seals import seal_predictions
from tests.monitoring.test_drift import independent_psi

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def few_rows(db):
    from governance.policies import active_policy, update_policy

    update_policy(active_policy().pk, actor=None, changes={"monitor_min_rows": 50}, justification="Test setting.")


def eval_rows(german, n=300):
    return german[1][demo_data.NUMERIC + demo_data.CATEGORICAL].head(n).to_dict(orient="records")


def send(keyed, rows, batch=50):
    ids = []
    for i in range(0, len(rows), batch):
        response = keyed.post("/api/v1/models/credit-risk/predict", {"instances": rows[i : i + batch]}, format="json")
        assert response.status_code == 200, response.content
        ids += response.json()["prediction_ids"]
    return ids


def around_now():
    now = timezone.now()
    return now - timedelta(hours=2), now + timedelta(hours=2)


def test_window_psi_and_ks_equal_the_definitions_on_the_logged_values(production, keyed, german):
    shifted = [{**row, "credit_amount": row["credit_amount"] * 3} for row in eval_rows(german)]
    send(keyed, shifted[:150])
    seal_predictions()
    assert services.accumulate_sealed() == 150
    send(keyed, shifted[150:])  # not sealed yet: read from the log directly
    start, end = around_now()
    window = services.store_window(production.pk, start=start, end=end)

    assert window.rows == 300
    reference = german[1]["credit_amount"].to_numpy(dtype=float)
    current = np.array([r["credit_amount"] for r in shifted], dtype=float)
    item = window.drift["credit_amount"]
    assert item["psi"] == pytest.approx(independent_psi(reference, current), abs=1e-9)
    expected = stats.ks_2samp(reference, current)
    assert item["ks_statistic"] == pytest.approx(float(expected.statistic), abs=1e-9)
    assert item["ks_pvalue"] == pytest.approx(float(expected.pvalue), abs=1e-9)
    # the untouched feature has the evaluation data's own distribution
    assert window.drift["age"]["psi"] == pytest.approx(0.0, abs=1e-12)
    assert "psi" in window.prediction_drift and "ks_statistic" in window.prediction_drift
    assert HourlyCounts.objects.filter(version=production).exists()


def test_a_drift_alert_opens_one_finding_with_an_audit_event_and_mail(
    production, keyed, german, django_capture_on_commit_callbacks, eager_tasks
):
    send(keyed, [{**row, "credit_amount": row["credit_amount"] * 3} for row in eval_rows(german)])
    seal_predictions()
    mail.outbox.clear()
    start, end = around_now()
    with django_capture_on_commit_callbacks(execute=True):
        window = services.store_window(production.pk, start=start, end=end)

    assert window.level == "alert"
    assert any(a["subject"] == "credit_amount" and a["level"] == "alert" for a in window.alerts)
    finding = Finding.objects.get(version=production, key="drift:credit_amount")
    assert finding.is_open and finding.severity == Severity.MEDIUM
    assert finding.owner == production.registered_model.owner
    assert finding.window_start == start and finding.due_at > timezone.now()
    raised = AuditEvent.objects.filter(action=audit.MONITORING_ALERT_RAISED, data__subject="credit_amount")
    assert raised.count() == 1
    assert AuditEvent.objects.filter(action=audit.FINDING_OPENED, data__finding=finding.pk).exists()
    assert any("credit_amount" in m.subject and "rita@" in " ".join(m.to) for m in mail.outbox)

    # the next window's alert on the same feature joins the open finding
    later = services.store_window(production.pk, start=start - timedelta(hours=1), end=end)
    assert later.level == "alert"
    assert Finding.objects.filter(version=production, key="drift:credit_amount").count() == 1


def test_stable_traffic_raises_no_alert(production, keyed, german):
    send(keyed, eval_rows(german))
    start, end = around_now()
    window = services.store_window(production.pk, start=start, end=end)
    assert window.level == "ok", window.alerts
    assert not Finding.objects.filter(version=production).exists()


def test_live_performance_and_fairness_equal_scikit_learn_and_fairlearn(production, keyed, api_client, german):
    evaluation = german[1].head(300)
    ids = send(keyed, eval_rows(german))
    outcomes = [
        {
            "prediction_id": pid,
            "actual": int(evaluation[demo_data.LABEL].iloc[i]),
            "sensitive": {"age_group": evaluation["age_group"].iloc[i]},
        }
        for i, pid in enumerate(ids)
    ]
    response = keyed.post("/api/v1/outcomes", {"outcomes": outcomes}, format="json")
    assert response.status_code == 201, response.content
    start, end = around_now()
    result = windows.compute(production, start, end)

    model = production_model(production)
    X = evaluation[demo_data.NUMERIC + demo_data.CATEGORICAL]
    y_true, y_pred = evaluation[demo_data.LABEL].to_numpy(), model.predict(X)
    score = model.predict_proba(X)[:, -1]
    perf = result.performance
    assert perf["n_outcomes"] == 300
    assert perf["metrics"]["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred), abs=1e-12)
    assert perf["metrics"]["roc_auc"] == pytest.approx(skm.roc_auc_score(y_true == 1, score), abs=1e-9)
    low, high = perf["intervals"]["accuracy"]
    assert low <= perf["metrics"]["accuracy"] <= high
    by_feature = {f["feature"]: f for f in result.fairness["features"]}
    expected = demographic_parity_difference(y_true, y_pred, sensitive_features=evaluation["age_group"])
    assert by_feature["age_group"]["headline"]["demographic_parity_difference"] == pytest.approx(expected, abs=1e-9)
    assert "sex" in by_feature  # a model input, read from the logged inputs


def production_model(version):
    from lifecycle.services import load_version_model

    return load_version_model(ModelVersion.objects.get(pk=version.pk))


def test_bulk_outcomes_are_all_or_nothing_and_name_each_problem(production, keyed, german):
    ids = send(keyed, eval_rows(german, 3))
    body = {"outcomes": [{"prediction_id": ids[0], "actual": 1}, {"prediction_id": ids[1], "actual": "maybe"}]}
    response = keyed.post("/api/v1/outcomes", body, format="json")
    assert response.status_code == 400
    problems = response.json()["error"]["details"]["outcomes"]
    assert [p["index"] for p in problems] == [1]
    from serving.models import PredictionOutcome

    assert not PredictionOutcome.objects.exists()


def test_monitor_computes_each_due_daily_window_once(production, keyed, german):
    send(keyed, eval_rows(german, 60))
    later = timezone.now() + timedelta(days=2)
    first = services.monitor(now=later)
    assert len(first) >= 1 and all((w.end - w.start) == timedelta(days=1) for w in first)
    assert services.monitor(now=later) == []
    assert MonitoringWindow.objects.filter(version=production).count() == len(first)


def test_an_expired_approval_is_refused_then_suspended_and_recertification_restores_it(
    production, keyed, german, risk_officer, second_officer
):
    row = eval_rows(german, 1)
    ModelVersion.objects.filter(pk=production.pk).update(approval_expires_at=timezone.now() - timedelta(minutes=1))
    response = keyed.post("/api/v1/models/credit-risk/predict", {"instances": row}, format="json")
    assert response.status_code == 403
    assert "expired" in response.json()["error"]["message"]

    sweep = expiry.sweep_expiries()
    assert sweep.suspended == [production.pk]
    production.refresh_from_db()
    assert production.status == Status.SUSPENDED

    snapshot = {"windows": [], "open_findings": [], "taken_at": "now"}
    version = operations.recertify_version(
        production.pk, actor=risk_officer, justification="Still sound.", snapshot=snapshot
    )
    assert version.status == Status.APPROVED
    assert version.approval_expires_at > timezone.now() + timedelta(days=300)
    decision = version.decisions.get(kind="recertify")
    from core.canonical import sha256_json

    assert decision.snapshot_sha256 == sha256_json(snapshot)
    event = AuditEvent.objects.get(action=audit.VERSION_RECERTIFIED)
    assert event.data["snapshot_sha256"] == decision.snapshot_sha256
    response = keyed.post(
        "/api/v1/models/credit-risk/predict", {"instances": row, "version": version.version}, format="json"
    )
    assert response.status_code == 200, response.content


def test_an_open_high_finding_blocks_deploy_and_recertification(
    production, risk_officer, second_version, data_scientist
):
    from governance.findings import close_finding, open_finding
    from tests.serving.conftest import checked

    finding, _ = open_finding(version_id=production.pk, key="performance:accuracy", severity="high", title="Accuracy")
    with pytest.raises(WorkflowError, match="open high finding"):
        operations.recertify_version(production.pk, actor=risk_officer, justification="x", snapshot={})

    challenger = checked(second_version, data_scientist)
    workflow.approve_version(challenger.pk, actor=risk_officer, justification="Reviewed.")
    blocking, _ = open_finding(version_id=challenger.pk, key="fairness:sex", severity="high", title="Fairness")
    with pytest.raises(WorkflowError, match="open high finding"):
        workflow.deploy_version(challenger.pk, actor=risk_officer, justification="Go live.")
    close_finding(blocking.pk, actor=risk_officer, justification="Explained by a data error, fixed.")
    assert workflow.deploy_version(challenger.pk, actor=risk_officer, justification="Go live.").status == "production"
    assert finding.is_open


def test_reminders_go_out_once_before_expiry(production, django_capture_on_commit_callbacks, eager_tasks):
    ModelVersion.objects.filter(pk=production.pk).update(approval_expires_at=timezone.now() + timedelta(days=3))
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert expiry.sweep_expiries().reminded == [production.pk]
    assert expiry.sweep_expiries().reminded == []
    assert any("expires on" in m.subject for m in mail.outbox)


def test_the_version_report_has_a_monitoring_section_with_windows_and_findings(
    production, keyed, german, client, auditor, tmp_path
):
    import subprocess

    send(keyed, [{**row, "credit_amount": row["credit_amount"] * 3} for row in eval_rows(german)])
    start, end = around_now()
    services.store_window(production.pk, start=start, end=end)
    client.force_login(auditor)
    response = client.get(f"/api/v1/models/credit-risk/versions/{production.version}/report.pdf")
    assert response.status_code == 200
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"".join(response.streaming_content) if response.streaming else response.content)
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Monitoring after go-live" in text
    assert "PSI of credit_amount" in text and "Drift alert on credit_amount" in text
    subprocess.run(["pdftoppm", "-png", "-r", "50", str(pdf), str(tmp_path / "page")], check=True)
    print(sorted(p.name for p in tmp_path.glob("page*.png")), tmp_path)


def test_the_period_report_lists_alerts_findings_and_recertifications(
    production, keyed, german, client, auditor, risk_officer, second_version, tmp_path
):
    import subprocess

    send(keyed, [{**row, "credit_amount": row["credit_amount"] * 3} for row in eval_rows(german)])
    start, end = around_now()
    services.store_window(production.pk, start=start, end=end)
    from governance.findings import close_finding
    from monitoring.selectors import recertification_snapshot

    finding = Finding.objects.get(key="drift:credit_amount")
    close_finding(finding.pk, actor=risk_officer, justification="Larger loans after the spring campaign: expected.")
    operations.recertify_version(
        production.pk, actor=risk_officer, justification="Reviewed.", snapshot=recertification_snapshot(production)
    )
    client.force_login(auditor)
    day = timezone.now().date()
    response = client.get(f"/api/v1/reports/period.pdf?since={day}&until={day}")
    assert response.status_code == 200
    pdf = tmp_path / "period.pdf"
    pdf.write_bytes(b"".join(response.streaming_content) if response.streaming else response.content)
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    flat = "".join(text.split())  # (table cells wrap)
    assert "Alertsraised" in flat and "PSIofcredit_amount" in flat
    assert "Drift alert on" in text and "closed 20" in text
    decision = production.decisions.get(kind="recertify")
    assert decision.snapshot_sha256[:20] in flat


def test_the_monitoring_tab_and_api_are_for_the_three_roles_only(
    production, keyed, german, client, api_client, auditor, data_scientist, outsider
):
    send(keyed, eval_rows(german, 60))
    start, end = around_now()
    services.store_window(production.pk, start=start, end=end)
    page = f"/monitoring/credit-risk/{production.version}/"
    api = f"/api/v1/models/credit-risk/versions/{production.version}/monitoring"
    for person in (auditor, data_scientist):
        client.force_login(person)
        assert client.get(page).status_code == 200
        api_client.force_authenticate(person)
        body = api_client.get(api).json()
        assert body["rows"] == 60 and body["windows"][0]["rows"] == 60
        assert set(body["drift"]["credit_amount"]) >= {"psi", "ks_statistic", "ks_pvalue"}
        assert "ks_statistic" not in body["drift"]["sex"]
    client.force_login(outsider)
    assert client.get(page).status_code in (403, 404)
    api_client.force_authenticate(outsider)
    assert api_client.get(api).status_code == 403
    api_client.force_authenticate(auditor)
    assert api_client.get(api + "?since=yesterday").status_code == 400
    assert api_client.get("/api/v1/models/credit-risk/versions/99/monitoring").status_code == 404
