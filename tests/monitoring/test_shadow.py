"""Shadow challengers: a version in review replays production's logged traffic,
never answering anyone; the comparison is evidence, and an approval binds it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest
import skops.io as sio
from django.utils import timezone
from sklearn.metrics import accuracy_score

from core.models import AuditEvent
from governance import bindings, integrity, workflow
from governance import shadow as shadows
from governance.errors import WorkflowError
from governance.models import Decision, DecisionKind, ShadowComparison
from lifecycle import demo_data
from monitoring import shadow
from serving.models import LogSource, PredictionLog
from tests.conftest import make_version
from tests.serving.conftest import checked, rows

FEATURES = demo_data.NUMERIC + demo_data.CATEGORICAL


@pytest.fixture(scope="module")
def forest(german: Any) -> Any:
    return demo_data.train_random_forest(german[0], n_estimators=25)


@pytest.fixture
def challenger(production, data_scientist, forest, train_csv, eval_csv) -> Any:
    version = make_version(data_scientist, production.registered_model, sio.dumps(forest), train_csv, eval_csv)
    return checked(version, data_scientist)


def serve(keyed: Any, german: Any, n: int = 60) -> list[dict[str, Any]]:
    answers = []
    batch = rows(german, n)
    for start in range(0, n, 20):
        response = keyed.post(
            "/api/v1/models/credit-risk/predict", {"instances": batch[start : start + 20]}, format="json"
        )
        assert response.status_code == 200
        answers.append(response.json())
    return answers


def test_a_replayed_window_equals_an_independent_computation(
    production, challenger, keyed, german, logreg, forest, risk_officer, data_scientist, api_client
):
    assert challenger.status == "in_review"
    running = shadows.start_shadow(challenger.pk, actor=risk_officer, justification="Challenger on live traffic.")
    assert AuditEvent.objects.filter(action="governance.shadow.started").count() == 1
    answers = serve(keyed, german)
    ids = [pid for a in answers for pid in a["prediction_ids"]]
    truth = german[1][demo_data.LABEL].head(len(ids)).tolist()
    api_client.force_authenticate(risk_officer)  # (outcomes: the receiving key or an officer)
    reported = {pid: actual for pid, actual in list(zip(ids, truth, strict=True))[::2]}
    response = api_client.post(
        "/api/v1/outcomes",
        {"outcomes": [{"prediction_id": p, "actual": a} for p, a in reported.items()]},
        format="json",
    )
    assert response.status_code in (200, 201), response.json()

    now = timezone.now()
    comparison = shadow.replay_window(running.pk, start=now - timedelta(hours=1), end=now + timedelta(minutes=1))
    assert comparison is not None and comparison.rows == 60 and comparison.champion_id == production.pk

    # independently: the logged inputs of production's answers through both scikit-learn models
    logged = PredictionLog.objects.filter(version=production, source=LogSource.API).order_by("pk")
    inputs = [row for record in logged for row in record.inputs]
    import pandas as pd

    frame = pd.DataFrame(inputs)[FEATURES]
    champion_labels, shadow_labels = logreg.predict(frame), forest.predict(frame)
    assert comparison.agreement == pytest.approx(float(np.mean(champion_labels == shadow_labels)), abs=1e-12)
    assert 0 < comparison.agreement < 1  # the two models do disagree somewhere: the check can fail
    d = forest.predict_proba(frame)[:, 1] - logreg.predict_proba(frame)[:, 1]
    assert comparison.differences["n"] == 60
    assert comparison.differences["mean"] == pytest.approx(float(d.mean()), abs=1e-5)
    assert comparison.differences["quantiles"]["p50"] == pytest.approx(float(np.quantile(d, 0.5)), abs=1e-5)
    with_outcome = [i for i, pid in enumerate(ids) if pid in reported]
    actual = [reported[ids[i]] for i in with_outcome]
    perf = comparison.performance
    assert perf["n_outcomes"] == 30
    assert perf["shadow"]["metrics"]["accuracy"] == pytest.approx(accuracy_score(actual, shadow_labels[with_outcome]))
    assert perf["champion"]["metrics"]["accuracy"] == pytest.approx(
        accuracy_score(actual, champion_labels[with_outcome])
    )
    assert "accuracy" in perf["shadow"]["intervals"]
    event = AuditEvent.objects.get(action="governance.shadow.compared")
    assert event.data["evidence"][0]["row"] == f"governance.shadowcomparison:{comparison.pk}"

    # replaying the same window again changes nothing
    again = shadow.replay_window(running.pk, start=comparison.window_start, end=comparison.window_end)
    assert again.pk == comparison.pk and PredictionLog.objects.filter(source=LogSource.SHADOW).count() == 3


def test_no_shadow_output_ever_reaches_a_client(production, challenger, keyed, german, risk_officer):
    running = shadows.start_shadow(challenger.pk, actor=risk_officer, justification="Challenger.")
    before = serve(keyed, german, 20)
    now = timezone.now()
    shadow.replay_window(running.pk, start=now - timedelta(hours=1), end=now + timedelta(minutes=1))
    after = serve(keyed, german, 20)
    shadow_records = PredictionLog.objects.filter(source=LogSource.SHADOW)
    assert shadow_records.count() == 1 and shadow_records.get().version_id == challenger.pk
    returned = {pid.split(".")[0] for answer in before + after for pid in answer["prediction_ids"]}
    assert all(answer["version"] == production.version for answer in before + after)
    assert not returned & {str(r.public_id) for r in shadow_records}
    assert returned == {str(r.public_id) for r in PredictionLog.objects.filter(source=LogSource.API)}
    named = keyed.post(
        "/api/v1/models/credit-risk/predict",
        {"instances": rows(german, 1), "version": challenger.version},
        format="json",
    )
    assert named.status_code == 403 and named.json()["error"]["code"] == "version_not_servable"
    # and monitoring does not count the replay as the shadow version's traffic
    from monitoring.services import due_windows

    assert due_windows(challenger, now=timezone.now() + timedelta(days=2)) == []


def test_an_approval_binds_the_comparisons_and_a_changed_one_voids_it(
    production, challenger, keyed, german, risk_officer, second_officer
):
    with pytest.raises(WorkflowError):
        shadows.start_shadow(production.pk, actor=risk_officer, justification="Production is no challenger.")
    running = shadows.start_shadow(challenger.pk, actor=risk_officer, justification="Challenger.")
    serve(keyed, german, 20)
    now = timezone.now()
    comparison = shadow.replay_window(running.pk, start=now - timedelta(hours=1), end=now + timedelta(minutes=1))
    workflow.approve_version(challenger.pk, actor=second_officer, justification="Seen the shadow.", override=True)
    decision = Decision.objects.get(version=challenger, kind=DecisionKind.APPROVE)
    assert decision.shadow_through == comparison.pk
    assert decision.shadow_sha256 == bindings.comparisons_hash(challenger.pk, through=comparison.pk) != ""
    # a later window adds evidence without voiding the approval
    later = shadow.replay_window(running.pk, start=now + timedelta(minutes=1), end=now + timedelta(minutes=2))
    assert later is not None and later.pk > comparison.pk
    challenger.refresh_from_db()
    assert integrity.what_changed(challenger) == []
    # an edited comparison does
    ShadowComparison.objects.filter(pk=comparison.pk).update(agreement=1.0)
    assert "the shadow comparisons" in integrity.what_changed(challenger)


def test_an_officer_puts_a_version_in_shadow_from_the_review_page(
    production, challenger, keyed, german, client, risk_officer
):
    client.force_login(risk_officer)
    page = f"/admin/governance/versionreview/{challenger.pk}/change/"
    assert b'id="action-shadow"' in client.get(page).content
    decide = f"/admin/governance/versionreview/{challenger.pk}/decide/"
    client.post(decide, {"action": "shadow", "justification": "Compare on live traffic."})
    assert challenger.shadows.get().is_running
    serve(keyed, german, 20)
    now = timezone.now()
    shadow.replay_window(challenger.shadows.get().pk, start=now - timedelta(hours=1), end=now + timedelta(minutes=1))
    shown = client.get(page).content.decode()
    assert 'id="shadow-evidence"' in shown and "In shadow since" in shown and 'id="action-end_shadow"' in shown
    assert "shadow-agreement" in shown
    client.post(decide, {"action": "end_shadow", "justification": "Enough."})
    assert not challenger.shadows.get().is_running
    assert AuditEvent.objects.filter(action="governance.shadow.ended").count() == 1


def test_the_version_report_shows_the_shadow_evidence(production, challenger, keyed, german, risk_officer):
    from compliance import services as compliance_services
    from tests.compliance.test_reports import pdf_text

    running = shadows.start_shadow(challenger.pk, actor=risk_officer, justification="Challenger.")
    serve(keyed, german, 20)
    now = timezone.now()
    comparison = shadow.replay_window(running.pk, start=now - timedelta(hours=1), end=now + timedelta(minutes=1))
    text = " ".join(
        pdf_text(compliance_services.generate_version_report(challenger.pk, actor=risk_officer).pdf).split()
    )
    assert "Shadow comparisons" in text
    assert f"v{production.version} 20 {comparison.agreement:.3f}" in text


def test_the_period_report_counts_shadow_replays_apart_from_the_traffic(
    production, challenger, keyed, german, risk_officer
):
    from compliance import services as compliance_services
    from tests.compliance.test_reports import evidence_of, pdf_text

    running = shadows.start_shadow(challenger.pk, actor=risk_officer, justification="Challenger.")
    serve(keyed, german, 20)
    now = timezone.now()
    shadow.replay_window(running.pk, start=now - timedelta(hours=1), end=now + timedelta(minutes=1))
    assert PredictionLog.objects.filter(source=LogSource.SHADOW).exists()
    report = compliance_services.generate_period_report(
        since=now - timedelta(days=1), until=now + timedelta(days=1), actor=risk_officer
    )
    evidence = evidence_of(report.pdf)
    name = production.registered_model.name
    assert evidence["prediction_volumes"] == [
        {"model": name, "version": production.version, "requests": 1, "rows_predicted": 20, "refused": 0}
    ]
    assert [(r["version"], r["rows_predicted"]) for r in evidence["shadow_replays"]] == [(challenger.version, 20)]
    text = " ".join(pdf_text(report.pdf).split())
    assert "Shadow replays (not traffic)" in text


def test_a_challengers_serving_summary_counts_its_shadow_replays_apart(
    production, challenger, keyed, german, risk_officer
):
    from serving import selectors

    running = shadows.start_shadow(challenger.pk, actor=risk_officer, justification="Challenger.")
    serve(keyed, german, 20)
    now = timezone.now()
    shadow.replay_window(running.pk, start=now - timedelta(hours=1), end=now + timedelta(minutes=1))
    replayed = PredictionLog.objects.filter(source=LogSource.SHADOW, version=challenger)
    assert replayed.exists()
    summary = selectors.serving_summary(version_id=challenger.pk)
    assert summary["requests"] == 0 and summary["rows_predicted"] == 0 and summary["per_day"] == []
    assert summary["shadow_replays"] == {"requests": replayed.count(), "rows": 20}
    assert selectors.serving_summary(version_id=production.pk)["requests"] == 1
