from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from core.audit import verify_chain
from lifecycle.models import ModelVersion, RegisteredModel

pytestmark = pytest.mark.django_db


def test_seed_demo_loads_a_user_per_role_and_real_models_through_the_services(eager_tasks):
    call_command("seed_demo")
    call_command("seed_demo")  # idempotent
    users = {u.username: {g.name for g in u.groups.all()} for u in get_user_model().objects.all()}
    assert users["dana"] == {"data-scientists"} and users["rita"] == {"risk-officers"}
    assert users["audrey"] == {"auditors"}
    assert set(RegisteredModel.objects.values_list("name", flat=True)) == {
        "credit-risk",
        "loan-prescreen",
        "collections-priority",
        "credit-mlflow",  # imported from the MLflow model in lifecycle/demo_mlflow
        "bureau-score",  # a vendor model in the inventory
    }
    imported = ModelVersion.objects.get(registered_model__name="credit-mlflow")
    assert imported.status == "draft" and imported.created_by.username == "dana"
    v1, v2 = ModelVersion.objects.filter(registered_model__name="credit-risk").order_by("version")
    assert v1.status == "checking" and v2.parent == v1
    assert v2.estimator_class == "sklearn.pipeline.Pipeline" and v2.params["steps"][1][1]["__estimator__"] == (
        "RandomForestClassifier"
    )
    assert v1.training_dataset == v2.training_dataset
    assert verify_chain().ok


@pytest.mark.django_db(transaction=True)
def test_seed_demo_shows_a_drift_alert_an_open_finding_and_a_model_to_recertify(eager_tasks):
    """As `make demo` runs it: every transaction commits, so the checks run in-process."""
    from governance.models import Finding
    from monitoring.models import MonitoringWindow

    call_command("seed_demo")
    windows = list(MonitoringWindow.objects.filter(version__registered_model__name="loan-prescreen").order_by("start"))
    assert windows[1].level == "alert" and windows[0].rows == windows[1].rows == 600
    assert not [a for a in windows[0].alerts if a["kind"] == "drift"], windows[0].alerts  # quiet when stable
    alerted = {a["subject"] for a in windows[1].alerts if a["level"] == "alert" and a["kind"] == "drift"}
    assert "credit_amount" in alerted and "sex" not in alerted
    assert Finding.objects.filter(version__registered_model__name="loan-prescreen", closed_at__isnull=True).exists()
    collections = ModelVersion.objects.get(registered_model__name="collections-priority")
    assert collections.status == "production" and collections.approval_expires_at is not None


@pytest.mark.django_db(transaction=True)
def test_seed_demo_shows_fairness_inconclusive_for_a_small_group_then_waived_by_an_officer(eager_tasks):
    from governance.models import CheckRun, FairnessRequirement

    call_command("seed_demo")
    collections = ModelVersion.objects.get(registered_model__name="collections-priority")
    runs = {
        run.round: run.metrics
        for run in CheckRun.objects.filter(version=collections, kind="fairness").order_by("round")
    }
    first = {f["feature"]: f for f in runs[1]["features"]}
    assert first["job"]["status"] == "inconclusive" and first["job"]["small_groups"] == ["0"]
    assert runs[1]["status"] == "inconclusive"
    assert any("job: group(s) 0 (9 rows)" in note for note in runs[1]["notes"])
    requirement = FairnessRequirement.objects.get(registered_model=collections.registered_model)
    assert requirement.updated_by.username == "omar" and requirement.waivers["job"]["0"]
    last = {f["feature"]: f for f in runs[max(runs)]["features"]}
    assert last["job"]["waived_groups"] == {"0": requirement.waivers["job"]["0"]}
    assert runs[max(runs)]["status"] == "passed" and max(runs) == 2
    assert collections.status == "production"
