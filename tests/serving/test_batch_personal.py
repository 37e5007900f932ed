"""Batch data is personal data: a personal version's batch input is stored encrypted, like
datasets, and deleted when the job ends (the job keeps its SHA-256); a batch may name a
business-key column, so its rows are found and erased by subject like real-time rows."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from serving import erasure
from serving.models import BatchJob, LegalHold, PredictionKey, PredictionLog
from tests.conftest import stored_files
from tests.serving.test_batch import FEATURES, as_csv, portfolio, post_csv, result_rows, small_chunks  # noqa: F401
from tests.serving.test_personal import kek, personal_version  # noqa: F401

pytestmark = pytest.mark.django_db


def loans(german: Any, n: int = 100) -> bytes:
    frame = portfolio(german, n)[FEATURES].copy()
    frame.insert(0, "application", [f"app-{i:04d}" for i in range(n)])
    return as_csv(frame)


def files_holding(root: Any, needle: bytes) -> list[str]:
    return [name for name in stored_files(root) if needle in (root / name).read_bytes()]


def in_clear(root: Any, data: bytes) -> list[str]:
    """Files under MEDIA_ROOT holding a business key or an input row (without its key) in clear."""
    lines = data.splitlines()[1:]
    needles = [b"app-00"] + [line.split(b",", 1)[1] for line in lines[:20]]
    return sorted({name for needle in needles for name in files_holding(root, needle)})


def test_a_personal_batch_input_is_encrypted_then_deleted_and_the_job_keeps_its_sha256(
    personal_version,  # noqa: F811
    keyed,
    german,
    small_chunks,  # noqa: F811
    eager_tasks,
    django_capture_on_commit_callbacks,
    media_root,
):
    data = loans(german)
    response = post_csv(keyed, data, business_key_column="application")  # (chunks not run yet)
    assert response.status_code == 202, response.content
    job = BatchJob.objects.get(public_id=response.json()["id"])
    assert job.input_sha256 == hashlib.sha256(data).hexdigest()
    inputs = [n for n in stored_files(media_root) if n.startswith("batches/inputs/")]
    assert len(inputs) == 1 and (media_root / inputs[0]).read_bytes()[:4] == b"MGDS"  # encrypted at rest
    assert in_clear(media_root, data) == []

    with django_capture_on_commit_callbacks(execute=True):
        response = post_csv(keyed, data, business_key_column="application")
    job = BatchJob.objects.get(public_id=response.json()["id"])
    assert job.status == "completed" and job.rows_done == 100, job.reason
    assert job.input_sha256 == hashlib.sha256(data).hexdigest() and job.input_file == ""
    remaining = [n for n in stored_files(media_root) if n.startswith("batches/inputs/")]
    assert remaining == inputs  # only the first (unfinished) job's encrypted input is left
    assert in_clear(media_root, data) == []
    rows, _ = result_rows(keyed, str(job.public_id))
    assert len(rows) == 100 and all(r["prediction_id"] for r in rows)


def test_a_batch_names_a_business_key_column_and_erasure_reaches_its_rows(
    personal_version,  # noqa: F811
    keyed,
    german,
    small_chunks,  # noqa: F811
    eager_tasks,
    django_capture_on_commit_callbacks,
    api_client,
    auditor,
    risk_officer,
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_csv(keyed, loans(german), business_key_column="application")
    job = BatchJob.objects.get(public_id=response.json()["id"])
    assert job.business_key_column == "application"
    records = PredictionLog.objects.filter(batch_job=job, outcome="ok")
    assert PredictionKey.objects.filter(record__in=records.values("public_id")).count() == 100
    assert not PredictionKey.objects.filter(key="app-0030").exists()  # the index holds keyed hashes
    api_client.force_authenticate(auditor)
    found = api_client.get("/api/v1/predictions/", {"business_key": "app-0030"}).json()["results"]
    assert len(found) == 1
    record_id = found[0]["id"]
    detail = api_client.get(f"/api/v1/predictions/{record_id}/").json()
    row = detail["business_keys"].index("app-0030")
    assert isinstance(detail["inputs"][row]["age"], int)

    erasure.erase_subject(model_name="credit-risk", subject="app-0030", actor=risk_officer)
    detail = api_client.get(f"/api/v1/predictions/{record_id}/").json()
    assert detail["inputs"][row]["age"] == "[erased]" and detail["business_keys"][row] == "[erased]"
    other = 1 if row == 0 else 0
    assert isinstance(detail["inputs"][other]["age"], int)  # another subject's row is untouched


def test_a_business_key_column_must_be_in_the_file(personal_version, keyed, german):  # noqa: F811
    response = post_csv(keyed, loans(german, 10), business_key_column="applicant_id")
    assert response.status_code == 400 and "applicant_id" in response.json()["error"]["message"]


def test_retention_deletes_a_personal_jobs_result_after_the_policys_days_keeping_its_sha256(
    personal_version,  # noqa: F811
    keyed,
    german,
    small_chunks,  # noqa: F811
    eager_tasks,
    django_capture_on_commit_callbacks,
    media_root,
    risk_officer,
):
    from datetime import timedelta

    from django.utils import timezone

    from core.models import AuditEvent
    from serving import batch_inputs

    with django_capture_on_commit_callbacks(execute=True):
        response = post_csv(keyed, loans(german, 20), business_key_column="application")
    job = BatchJob.objects.get(public_id=response.json()["id"])
    digest, name = job.result_sha256, job.result_file
    assert digest and (media_root / name).exists()
    assert batch_inputs.expire_results(retention_days=30) == 0  # finished just now: kept
    erasure.place_hold(model_name="credit-risk", reason="Litigation 2026-17.", actor=risk_officer)
    later = timezone.now() + timedelta(days=31)
    assert batch_inputs.expire_results(retention_days=30, now=later) == 0  # a legal hold keeps it
    erasure.release_hold(LegalHold.objects.get().pk, actor=risk_officer)
    with django_capture_on_commit_callbacks(execute=True):
        assert batch_inputs.expire_results(retention_days=30, now=later) == 1
    job.refresh_from_db()
    assert job.result_file == "" and job.result_sha256 == digest and not (media_root / name).exists()
    assert AuditEvent.objects.filter(action="serving.batch.result_expired").count() == 1
    gone = keyed.get(f"/api/v1/batches/{job.public_id}/result.csv")
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "result_expired"
