"""The decision receipt, read back with pdftotext: business key, approver, reason texts, proof."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from rest_framework.test import APIClient

from compliance.checkpoints import write_checkpoint
from core.models import AuditEvent
from lifecycle import demo_data
from serving import seals
from serving.models import PredictionLog
from tests.conftest import make_version
from tests.serving.conftest import client_key, keyed, production  # noqa: F401
from tests.serving.test_predict import predict

pytestmark = pytest.mark.django_db


def text_of(pdf: bytes) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True
    ).stdout.decode()


@pytest.fixture
def draft_version(data_scientist, registered_model, skops_bytes, train_csv, eval_csv):
    # the reason texts are the data scientist's, fixed at creation like the artifact
    reasons = {"duration": "Loan duration too long", "credit_amount": "Credit amount too high"}
    return make_version(data_scientist, registered_model, skops_bytes, train_csv, eval_csv, reason_texts=reasons)


@pytest.fixture
def declined(keyed, production, german, logreg):  # noqa: F811
    frame = german[1][demo_data.NUMERIC + demo_data.CATEGORICAL]
    row = frame.iloc[int(np.argmin(logreg.decision_function(frame)))].to_dict()
    body = predict(keyed, instances=[row], business_keys=["2026-118"]).json()
    return body["prediction_ids"][0]


def test_receipt_names_the_key_the_approver_the_reasons_and_the_review(
    keyed,  # noqa: F811
    declined,
    risk_officer,
    auditor,
    settings,
    tmp_path,  # noqa: F811
):
    settings.CHECKPOINT_DIR = str(tmp_path / "checkpoints")
    settings.CHECKPOINT_SIGNING_KEY = "11" * 32
    keyed.post(
        f"/api/v1/predictions/{declined}/review",
        json.dumps({"action": "overridden", "final_decision": 1, "justification": "Payslip shows higher income."}),
        content_type="application/json",
    )
    seals.seal_predictions()
    write_checkpoint()
    client = APIClient()
    client.force_login(auditor)
    response = client.get(f"/api/v1/predictions/{declined}/receipt.pdf")
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == "application/pdf"
    text = " ".join(text_of(response.content).split())
    assert "2026-118" in text
    assert risk_officer.username in text
    explanation = client.get(f"/api/v1/predictions/{declined}/explanation").json()
    for code in explanation["reason_codes"]:
        assert " ".join(code["text"].split()) in text
    assert "Loan duration too long" in text or "Credit amount too high" in text
    assert "OVERRIDDEN" in text and "Payslip shows higher income." in text
    assert "VERIFIED" in text  # the inclusion proof, checked against the chained root
    assert "Signed checkpoint" in text
    event = AuditEvent.objects.filter(action="governance.report.generated").latest("seq")
    assert event.data["kind"] == "decision_receipt" and event.data["sha256"] == response["X-Report-SHA256"]


def test_receipt_is_for_auditors_officers_and_the_receiving_key_only(keyed, declined, data_scientist, outsider):  # noqa: F811
    assert keyed.get(f"/api/v1/predictions/{declined}/receipt.pdf").status_code == 200
    for user in (data_scientist, outsider):
        client = APIClient()
        client.force_login(user)
        assert client.get(f"/api/v1/predictions/{declined}/receipt.pdf").status_code == 403
    assert PredictionLog.objects.count() == 1
