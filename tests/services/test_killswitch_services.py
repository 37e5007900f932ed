"""The kill switch under gunicorn with two worker processes on PostgreSQL: each worker remembers
the version it answered with, and the stop reaches both from their first request after it."""

from __future__ import annotations

from typing import Any

from governance import killswitch, tasks, workflow
from governance.models import CheckRun
from serving.models import PredictionLog
from tests.conftest import make_version
from tests.services import test_serving_services as serving

_deployed, _until_both_workers = serving._deployed, serving._until_both_workers
gunicorn, served_model = serving.gunicorn, serving.served_model  # fixtures


def _approved(
    data_scientist: Any, risk_officer: Any, model: Any, artifact: bytes, train: bytes, evaluation: bytes
) -> Any:
    version = make_version(data_scientist, model, artifact, train, evaluation)
    workflow.submit_version(version.pk, actor=data_scientist)
    for check in CheckRun.objects.filter(version=version):
        tasks.run_check_task(check.pk)
    return workflow.approve_version(version.pk, actor=risk_officer, justification="Pre-approved fallback.")


def test_stop_makes_both_workers_answer_from_the_fallback_and_resume_brings_production_back(
    gunicorn,
    served_model,
    data_scientist,
    risk_officer,
    skops_bytes,
    train_csv,
    eval_csv,  # noqa: F811
):
    model, key, body = served_model
    first = _deployed(data_scientist, risk_officer, model, skops_bytes, train_csv, eval_csv)
    fallback = _approved(data_scientist, risk_officer, model, skops_bytes, train_csv, eval_csv)
    killswitch.designate_fallback(model.pk, actor=risk_officer, version_number=fallback.version, justification="Ready.")
    answers: list[Any] = []
    before = _until_both_workers(gunicorn, key, body, answers)
    assert all(s == [200] * len(s) for s in before.values()), before
    assert {a["version"] for a in answers} == {first.version}  # both workers remember v1

    killswitch.stop_model(model.pk, actor=risk_officer, justification="Scores drift on new applicants.")
    answers.clear()
    stopped = _until_both_workers(gunicorn, key, body, answers)
    assert set(stopped) == set(before) and all(s == [200] * len(s) for s in stopped.values()), stopped
    assert {a["version"] for a in answers} == {fallback.version}  # from each worker's first request on

    killswitch.resume_model(model.pk, actor=risk_officer, justification="Revalidated.")
    answers.clear()
    resumed = _until_both_workers(gunicorn, key, body, answers)
    assert all(s == [200] * len(s) for s in resumed.values()), resumed
    assert {a["version"] for a in answers} == {first.version}
    ok = PredictionLog.objects.filter(model_name="served-model", outcome="ok")
    assert ok.filter(version=fallback).count() == sum(len(v) for v in stopped.values())


def test_a_stopped_model_without_fallback_is_refused_503_by_both_workers(
    gunicorn,
    served_model,
    data_scientist,
    risk_officer,
    skops_bytes,
    train_csv,
    eval_csv,  # noqa: F811
):
    model, key, body = served_model
    _deployed(data_scientist, risk_officer, model, skops_bytes, train_csv, eval_csv)
    before = _until_both_workers(gunicorn, key, body)
    assert all(s == [200] * len(s) for s in before.values()), before

    killswitch.stop_model(model.pk, actor=risk_officer, justification="Kill switch.")
    answers: list[Any] = []
    after = _until_both_workers(gunicorn, key, body, answers)
    assert set(after) == set(before) and all(s == [503] * len(s) for s in after.values()), after
    assert {a["error"]["code"] for a in answers} == {"model_stopped"}
    refused = PredictionLog.objects.filter(model_name="served-model", outcome="refused")
    assert refused.count() == sum(len(v) for v in after.values())
    assert all(r.startswith("model_stopped") for r in refused.values_list("reason", flat=True))


def test_while_stopped_the_real_worker_scores_a_new_batch_with_the_fallback(
    committed_db,
    celery_worker_process,
    served_model,
    data_scientist,
    risk_officer,
    skops_bytes,
    train_csv,
    eval_csv,
    german,
    settings,
):
    from serving.models import BatchJob, BatchStatus, Disposition
    from tests.services.conftest import wait_for
    from tests.services.test_batch_services import portfolio_csv, submit

    settings.BATCH_CHUNK_ROWS = 100
    model, _, _ = served_model
    first = _deployed(data_scientist, risk_officer, model, skops_bytes, train_csv, eval_csv)
    fallback = _approved(data_scientist, risk_officer, model, skops_bytes, train_csv, eval_csv)
    killswitch.designate_fallback(model.pk, actor=risk_officer, version_number=fallback.version, justification="Ready.")
    killswitch.stop_model(model.pk, actor=risk_officer, justification="Stop.")
    job = submit(first, portfolio_csv(german, 250))
    assert job.version_id == fallback.pk
    wait_for(lambda: BatchJob.objects.get(pk=job.pk).result_sha256, message="the job's result")
    job.refresh_from_db()
    assert job.status == BatchStatus.COMPLETED and job.rows_done == 250
    versions = set(
        PredictionLog.objects.filter(batch_job=job, outcome=Disposition.OK).values_list("version", flat=True)
    )
    assert versions == {fallback.pk}
