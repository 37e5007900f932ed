"""Batch jobs: a CSV scored in chunks with the serving path's governance. Here on the
embedded defaults with tasks run in-process; tests/services runs the same on PostgreSQL with a
real worker, and kills one mid-chunk."""

from __future__ import annotations

import csv
import gc
import hashlib
import io
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.core.files.storage import default_storage

from core.models import AuditEvent
from governance import operations
from lifecycle import demo_data
from lifecycle.models import Dataset
from serving import batch, batch_chunks, engine, seals
from serving.log import mac_of, record_leaf
from serving.models import BatchChunk, BatchJob, BatchStatus, Disposition, LogSource, PredictionLog
from tests.conftest import upload

FEATURES = demo_data.NUMERIC + demo_data.CATEGORICAL


@pytest.fixture
def small_chunks(settings: Any) -> None:
    settings.BATCH_CHUNK_ROWS = 64
    settings.BATCH_RECORD_ROWS = 25


def portfolio(german: Any, n: int = 200) -> pd.DataFrame:
    frame = german[1]
    return pd.concat([frame] * (n // len(frame) + 1)).head(n).reset_index(drop=True)


def as_csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def post_csv(client: Any, data: bytes, *, name: str = "credit-risk", **extra: Any) -> Any:
    return client.post(f"/api/v1/models/{name}/batches", {"data": upload("loans.csv", data, "text/csv"), **extra})


def result_rows(client: Any, job_id: str) -> tuple[list[dict[str, str]], Any]:
    response = client.get(f"/api/v1/batches/{job_id}/result.csv")
    assert response.status_code == 200, response
    body = b"".join(response.streaming_content)
    return list(csv.DictReader(io.StringIO(body.decode()))), (response, body)


def test_a_job_scores_every_row_as_the_model_does_and_logs_each_once(
    production, keyed, german, logreg, small_chunks, eager_tasks, django_capture_on_commit_callbacks
):
    frame = portfolio(german, 200)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_csv(keyed, as_csv(frame))
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["rows_total"] == 200 and body["status"] == "queued"
    assert keyed.get(f"/api/v1/batches/{body['id']}").json()["status"] == "completed"
    job = BatchJob.objects.get(public_id=body["id"])
    assert job.chunks_total == 4 and job.rows_done == 200 and job.rows_failed == 0

    rows, (download, raw) = result_rows(keyed, body["id"])
    assert [int(r["row"]) for r in rows] == list(range(1, 201))
    # the model's own predictions, on the rows as a data scientist would read the file
    expected = logreg.predict(frame[FEATURES])
    assert [int(r["prediction"]) for r in rows] == expected.tolist()
    proba = logreg.predict_proba(frame[FEATURES])
    got = np.array([[float(r[f"probability_{c}"]) for c in production.classes] for r in rows])
    assert np.abs(got - proba).max() < 1e-5
    # ... and exactly what the serving engine answers
    served = engine.predict(production, frame[FEATURES].to_dict(orient="records"))
    assert got.tolist() == served.probabilities
    assert download["X-Content-SHA256"] == hashlib.sha256(raw).hexdigest() == job.result_sha256

    # N rows in, N logged rows out, each prediction id names its logged row
    records = list(PredictionLog.objects.filter(batch_job=job))
    assert all(r.source == LogSource.BATCH and r.outcome == Disposition.OK for r in records)
    assert sum(r.n_rows for r in records) == 200
    by_id = {str(r.public_id): r for r in records}
    for row in rows[::37]:
        record_id, position = row["prediction_id"].split(".")
        logged = by_id[record_id]
        assert logged.outputs["predictions"][int(position)] == int(row["prediction"])
        assert logged.inputs[int(position)]["duration"] == frame["duration"][int(row["row"]) - 1]
    # sealed like every record: the leaf covers the job and the chunk, and the seal verifies
    assert all(r.leaf_hash == record_leaf(r).hex() and r.mac == mac_of(record_leaf(r)) for r in records)
    assert seals.seal_predictions() is not None
    assert seals.verify_seals().ok
    finished = AuditEvent.objects.get(action="serving.batch.finished")
    assert finished.data["result_sha256"] == job.result_sha256 and finished.data["status"] == "completed"

    # a chunk delivered again (a worker killed before it acknowledged) changes nothing
    assert batch_chunks.run_chunk(job.pk, 1) is None
    assert gc.isenabled()  # (off while a chunk runs, on again after it)
    assert sum(r.n_rows for r in PredictionLog.objects.filter(batch_job=job)) == 200
    assert batch.finish_batch(job.pk).result_sha256 == job.result_sha256


def test_bad_rows_are_reported_and_logged_while_the_job_goes_on(
    production, keyed, german, small_chunks, eager_tasks, django_capture_on_commit_callbacks
):
    frame = portfolio(german, 100).astype({"duration": object, "purpose": object})
    frame.loc[3, "duration"] = "twelve"
    frame.loc[70, "duration"] = ""
    text = as_csv(frame).decode().splitlines()
    text[51] += ",surplus"  # data row 51: a field more than the header
    with django_capture_on_commit_callbacks(execute=True):
        response = post_csv(keyed, ("\n".join(text) + "\n").encode())
    assert response.status_code == 202
    job = BatchJob.objects.get(public_id=response.json()["id"])
    assert job.status == BatchStatus.COMPLETED and job.rows_failed == 3
    rows, _ = result_rows(keyed, str(job.public_id))
    assert len(rows) == 100
    errors = {int(r["row"]): r["error"] for r in rows if r["error"]}
    assert errors == {
        4: "duration must be an integer (64-bit)",
        51: "has a different number of fields than the header",
        71: "duration must be an integer (64-bit)",
    }
    assert all(r["prediction_id"] == "" for r in rows if r["error"])
    invalid = PredictionLog.objects.filter(batch_job=job, outcome=Disposition.INVALID)
    assert sorted(r.batch_chunk for r in invalid) == [0, 1]  # one record per chunk
    assert "row 4: duration must be an integer (64-bit)" in invalid.get(batch_chunk=0).reason
    assert sum(r.n_rows for r in PredictionLog.objects.filter(batch_job=job, outcome=Disposition.OK)) == 97


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty"),
        (b"duration,amount\n", "lacks the model's input columns"),
        ("duration,purpose\n12,caf\xe9\n".encode("latin-1"), "not UTF-8"),
        (b'duration,"purpose\n12,car\n', "quoted field is never closed"),
    ],
)
def test_a_file_that_cannot_be_scored_is_refused_by_name_and_leaves_nothing(
    production, keyed, german, data, message, media_root, eager_tasks
):
    if message.startswith("lacks"):
        data = b",".join(c.encode() for c in FEATURES if c != "age") + b"\n" + b"1," * (len(FEATURES) - 2) + b"1\n"
        message = "lacks the model's input column: age"
    response = post_csv(keyed, data)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_batch"
    assert message in response.json()["error"]["message"]
    assert not BatchJob.objects.exists()
    assert not PredictionLog.objects.filter(source=LogSource.BATCH).exists()
    assert not (media_root / "batches" / "inputs").exists() or not any((media_root / "batches" / "inputs").iterdir())


def test_retiring_the_version_mid_job_stops_the_remaining_chunks(
    production, keyed, german, risk_officer, small_chunks, eager_tasks, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):  # the chunks are queued, not run
        response = post_csv(keyed, as_csv(portfolio(german, 200)))
    job = BatchJob.objects.get(public_id=response.json()["id"])
    assert batch_chunks.run_chunk(job.pk, 0) is not None
    operations.retire_version(production.pk, actor=risk_officer, justification="Replaced mid-run.")
    chunk = batch_chunks.run_chunk(job.pk, 1)
    assert chunk is not None and not chunk.scored
    # the stop refused chunks 2 and 3 too: delivered afterwards, they change nothing
    assert batch_chunks.run_chunk(job.pk, 2) is None and batch_chunks.run_chunk(job.pk, 3) is None
    assert not BatchChunk.objects.get(job=job, index=3).scored
    job = batch.finish_batch(job.pk)
    assert job.status == BatchStatus.STOPPED and "retired" in job.reason
    refused = PredictionLog.objects.filter(batch_job=job, outcome=Disposition.REFUSED)
    assert sorted(r.batch_chunk for r in refused) == [1, 2, 3]
    assert sum(r.n_rows for r in PredictionLog.objects.filter(batch_job=job, outcome=Disposition.OK)) == 64
    rows, _ = result_rows(keyed, str(job.public_id))
    assert len(rows) == 200
    assert all(r["prediction_id"] for r in rows[:64])
    assert all(r["error"].startswith("not scored:") and "retired" in r["error"] for r in rows[64:])
    assert AuditEvent.objects.filter(action="serving.batch.stopped").count() == 1
    assert BatchChunk.objects.filter(job=job).count() == 4


def test_a_chunk_reaching_its_commit_after_retirement_writes_no_answer(
    production, keyed, german, risk_officer, small_chunks, eager_tasks, django_capture_on_commit_callbacks, monkeypatch
):
    """The re-check is at the chunk's commit, not only when it starts: a version retired while
    a chunk was being scored gets no answered row from that chunk."""
    with django_capture_on_commit_callbacks(execute=False):
        response = post_csv(keyed, as_csv(portfolio(german, 100)))
    job = BatchJob.objects.get(public_id=response.json()["id"])
    real_predict = engine.predict_frame

    def predict_then_retire(version: Any, frame: Any) -> Any:
        result = real_predict(version, frame)
        operations.retire_version(production.pk, actor=risk_officer, justification="Retired while scoring.")
        return result

    monkeypatch.setattr(engine, "predict_frame", predict_then_retire)
    chunk = batch_chunks.run_chunk(job.pk, 0)
    assert chunk is not None and not chunk.scored
    assert not PredictionLog.objects.filter(batch_job=job, outcome=Disposition.OK).exists()


def test_a_stored_dataset_is_scored_by_id(
    production, api_client, data_scientist, eager_tasks, django_capture_on_commit_callbacks
):
    dataset = Dataset.objects.get(pk=production.evaluation_dataset_id)
    api_client.force_authenticate(data_scientist)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(
            "/api/v1/models/credit-risk/batches", {"dataset": dataset.pk, "version": production.version}, format="json"
        )
    assert response.status_code == 202, response.json()
    assert response.json()["rows_total"] == dataset.row_count
    job = BatchJob.objects.get(public_id=response.json()["id"])
    assert job.dataset_id == dataset.pk and job.input_sha256 == dataset.sha256
    assert default_storage.exists(dataset.file.name)  # the dataset's own file, never moved or deleted
    assert api_client.get(f"/api/v1/batches/{job.public_id}").json()["status"] == "completed"


def test_who_may_run_and_read_a_job(
    production, api_client, data_scientist, second_scientist, auditor, risk_officer, outsider, german, eager_tasks,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    data = as_csv(portfolio(german, 10))
    for person in (auditor, outsider):
        api_client.force_authenticate(person)
        assert post_csv(api_client, data).status_code == 403
    api_client.force_authenticate(data_scientist)
    with django_capture_on_commit_callbacks(execute=True):
        job_id = post_csv(api_client, data).json()["id"]
    assert api_client.get(f"/api/v1/batches/{job_id}").status_code == 200
    api_client.force_authenticate(second_scientist)
    assert api_client.get(f"/api/v1/batches/{job_id}").status_code == 404
    assert api_client.get(f"/api/v1/batches/{job_id}/result.csv").status_code == 404
    for person in (auditor, risk_officer):
        api_client.force_authenticate(person)
        assert api_client.get(f"/api/v1/batches/{job_id}").json()["rows_done"] == 10
    assert api_client.get("/api/v1/batches/not-a-uuid").status_code == 404
    assert post_csv(api_client, data, name="no-such-model").status_code == 404


def test_the_service_itself_refuses_a_job_to_auditors_and_anonymous_callers(production, auditor, outsider, german):
    from serving.errors import ServingError

    data = as_csv(portfolio(german, 10))
    for person in (auditor, outsider, None):
        with pytest.raises(ServingError) as refused:
            batch.accept_batch(
                model_name="credit-risk",
                version_number=None,
                submitter=batch.Submitter(caller="someone", user=person, api_key=None),
                upload=upload("loans.csv", data, "text/csv"),
            )
        assert refused.value.status == 403
    assert not BatchJob.objects.exists()


def test_the_pages_upload_follow_and_show_a_job_to_auditors(
    production, client, data_scientist, auditor, german, eager_tasks, django_capture_on_commit_callbacks
):
    client.force_login(data_scientist)
    page = client.get("/batches/")
    assert page.status_code == 200 and b"Score a file" in page.content
    assert f'value="credit-risk:{production.version}"'.encode() in page.content
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/batches/",
            {"target": f"credit-risk:{production.version}", "data": upload("loans.csv", as_csv(portfolio(german, 30)))},
        )
    job = BatchJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/batches/{job.public_id}/"
    detail = client.get(response["Location"]).content.decode()
    assert 'id="job-rows">30</span> of 30 rows done' in detail and job.input_sha256 in detail
    refused = client.post("/batches/", {"target": "credit-risk:99", "data": upload("x.csv", b"a\n1\n")}, follow=True)
    assert b"credit-risk has no version 99" in refused.content
    client.force_login(auditor)
    assert b"Score a file" not in client.get("/batches/").content
    workspace = client.get(f"/audit/models/credit-risk/versions/{production.version}/").content.decode()
    assert str(job.public_id)[:8] in workspace and job.result_sha256[:16] in workspace


def test_a_batch_rows_log_text_is_what_the_serving_path_logs_for_the_same_row():
    """json_rows builds the log text of a chunk's rows column by column; it must be exactly the
    serving path's dump_json of each row (so a batch row and the same row sent to the API are
    logged alike), floats included, and number_texts must read back every float exactly."""
    from serving.batch_csv import json_records, json_rows, number_texts
    from serving.log import dump_json

    frame = pd.DataFrame(
        {
            "amount": [0.1, 1e-07, 123456789.125, 2.5e16, -0.0],
            "count": [1, -2, 3, 2**62, 0],
            "flag": [True, False, True, False, True],
            "city": ["Köln", "a,b", "x%sy", "plain", "tab\there"],  # the last one needs escaping
            "name": ["ann", "bo", "cy", "di", "ed"],
        }
    )
    schema = [
        {"name": "amount", "dtype": "float64"},
        {"name": "count", "dtype": "int64"},
        {"name": "flag", "dtype": "bool"},
        {"name": "city", "dtype": "string"},
        {"name": "name", "dtype": "string"},
    ]
    expected = [dump_json(row) for row in frame.to_dict(orient="records")]
    assert json_rows(frame, schema) == expected
    assert json_rows(frame.iloc[:4], schema) == expected[:4]  # no text to escape: the template's quotes
    # the records' texts, `per` rows each, are those rows' dump_json as a list
    for per in (1, 2, 5, 7):
        records = [dump_json(frame.iloc[i : i + per].to_dict(orient="records")) for i in range(0, 5, per)]
        assert json_records(frame, schema, per) == records
    assert json_records(frame.iloc[:0], schema, 2) == []
    values = [0.1, 1 / 3, 1e-300, 5e-324, 1.7976931348623157e308, -2.5]
    assert [float(t) for t in number_texts(values)] == values
    assert number_texts([1.0, float("nan"), float("inf")]) == ["1.0", "nan", "inf"]  # JSON cannot hold these
    assert number_texts([]) == []


def test_a_chunks_arrays_are_logged_and_written_exactly_as_their_python_numbers_would_be():
    """A batch chunk keeps its probabilities (and numeric columns) as numpy arrays: the log's
    outputs text, and so the record's leaf, and the result's numbers must be the very texts
    that the same values as Python floats and ints gave (float32 is not written from the array:
    orjson would write fewer digits than Python's float of it)."""
    from serving.batch_csv import interleave, number_texts
    from serving.log import dump_json

    rng = np.random.default_rng(7)
    proba = np.concatenate([rng.random((500, 3)), [[0.0, -0.0, 5e-324], [1e-7, 1e16, 1.7976931348623157e308]]])
    labels = np.array([0, 1, -(2**63), 2**63 - 1] * 125 + [2, 2], dtype=np.int64)
    outputs = {"predictions": labels, "probabilities": proba, "classes": [0, 1, 2]}
    as_lists = {**outputs, "predictions": labels.tolist(), "probabilities": proba.tolist()}
    assert dump_json(outputs, arrays=True) == dump_json(as_lists)
    assert dump_json({**outputs, "probabilities": proba[100:200]}, arrays=True) == dump_json(
        {**as_lists, "probabilities": proba[100:200].tolist()}
    )
    texts = np.array(["yes", "no"], dtype=object)  # what orjson does not write from an array: as lists
    assert dump_json({"predictions": texts}, arrays=True) == dump_json({"predictions": ["yes", "no"]})
    with_nan = proba.copy()
    with_nan[3, 1] = np.nan  # JSON has no NaN: null, as orjson writes Python's nan
    assert dump_json({"p": with_nan}, arrays=True) == dump_json({"p": with_nan.tolist()})
    for column in (proba[:, 1], np.array([2**62, -3, 0], dtype=np.int64), proba[:, 0].astype(np.float32)):
        assert number_texts(column) == number_texts(column.tolist())
    assert number_texts(np.array([1.0, np.inf])) == ["1.0", "inf"]
    assert interleave([["1", "2"], ["a", "b"], ["x", "y"]]) == ["1", "a", "x", "2", "b", "y"]
    with pytest.raises(ValueError, match="column 1 has 1 values"):
        interleave([["1", "2"], ["a"]])


def test_a_stopped_job_gives_the_rows_it_answered_at_once_and_names_the_rows_it_did_not(
    production, keyed, german, risk_officer, small_chunks, eager_tasks, django_capture_on_commit_callbacks
):
    """Chunks 2 and 3 are never delivered (a worker lost, a broker down): the job's stop does not
    wait for them to be refused one by one, its result is there at once."""
    with django_capture_on_commit_callbacks(execute=False):
        response = post_csv(keyed, as_csv(portfolio(german, 200)))
    job = BatchJob.objects.get(public_id=response.json()["id"])
    assert batch_chunks.run_chunk(job.pk, 0) is not None
    operations.retire_version(production.pk, actor=risk_officer, justification="Replaced mid-run.")
    with django_capture_on_commit_callbacks(execute=True):
        assert not batch_chunks.run_chunk(job.pk, 1).scored  # refused: this stops the job
    job.refresh_from_db()
    assert job.status == BatchStatus.STOPPED and job.result_sha256, job
    rows, _ = result_rows(keyed, str(job.public_id))
    assert len(rows) == 200
    answered = [r for r in rows if r["prediction_id"]]
    assert [int(r["row"]) for r in answered] == list(range(1, 65))
    assert PredictionLog.objects.filter(batch_job=job, outcome=Disposition.OK).count() == 64 // 25 + 1
    assert all(r["error"].startswith("not scored:") and "retired" in r["error"] for r in rows[64:])
    detail = keyed.get(f"/api/v1/batches/{job.public_id}").json()
    assert detail["rows_answered"] == 64 and detail["rows_not_answered"] == [[65, 200]]
    # a chunk delivered late changes nothing
    assert batch_chunks.run_chunk(job.pk, 3) is None


def with_ids(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out.insert(0, "application_id", [f"APP-{i:05d}" for i in range(len(out))])
    out.insert(1, "branch", ['Lyon, "Part-Dieu"' if i % 7 == 0 else "Paris" for i in range(len(out))])
    return out


def test_id_columns_are_copied_into_every_result_line_scored_or_not(
    production, keyed, german, risk_officer, small_chunks, eager_tasks, django_capture_on_commit_callbacks
):
    frame = with_ids(portfolio(german, 150)).astype({"duration": object})
    frame.loc[5, "duration"] = "twelve"  # a bad row keeps its ids too
    with django_capture_on_commit_callbacks(execute=False):
        response = post_csv(keyed, as_csv(frame), id_columns="application_id, branch")
    assert response.status_code == 202, response.json()
    assert response.json()["id_columns"] == ["application_id", "branch"]
    job = BatchJob.objects.get(public_id=response.json()["id"])
    batch_chunks.run_chunk(job.pk, 0)
    operations.retire_version(production.pk, actor=risk_officer, justification="Replaced mid-run.")
    batch_chunks.run_chunk(job.pk, 1)  # refused, and chunk 2 with it: their lines keep the ids
    job = batch.finish_batch(job.pk)
    rows, (_, raw) = result_rows(keyed, str(job.public_id))
    assert raw.decode().splitlines()[0].startswith("row,application_id,branch,prediction,")
    assert [r["application_id"] for r in rows] == list(frame["application_id"])
    assert [r["branch"] for r in rows] == list(frame["branch"])  # quoted fields read back as sent
    assert rows[5]["error"] and rows[5]["application_id"] == "APP-00005"
    assert rows[100]["error"].startswith("not scored:") and rows[100]["application_id"] == "APP-00100"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("customer_number", "The file has no column 'customer_number'"),
        ("prediction", "has the name of a result column"),
        (",".join(f"c{i}" for i in range(11)), "At most 10 id columns"),
    ],
)
def test_id_columns_that_cannot_be_kept_are_refused_by_name(production, keyed, german, given, message):
    frame = portfolio(german, 10)
    frame["prediction"] = 1
    response = post_csv(keyed, as_csv(frame), id_columns=given)
    assert response.status_code == 400 and message in response.json()["error"]["message"]
    assert not BatchJob.objects.exists()


def test_a_declared_personal_field_is_not_copied_into_the_result():
    from serving.batch_csv import id_columns_problem

    problem = id_columns_problem(["email", "age"], ["email"], ["row", "prediction"], ["email"])
    assert "declared personal data" in problem
    assert id_columns_problem(["email", "age"], ["age"], ["row", "prediction"], ["email"]) == ""


def test_the_page_chooses_no_version_and_keeps_the_choices_after_a_refusal(
    production, client, data_scientist, german, eager_tasks, django_capture_on_commit_callbacks
):
    client.force_login(data_scientist)
    page = client.get("/batches/").content.decode()
    assert '<option value="" selected disabled>Choose a version…</option>' in page
    assert f'value="credit-risk:{production.version}" selected' not in page
    unchosen = client.post("/batches/", {"data": upload("loans.csv", as_csv(portfolio(german, 5)))})
    assert unchosen.status_code == 400 and b"Choose the model version" in unchosen.content
    target = f"credit-risk:{production.version}"
    refused = client.post(
        "/batches/", {"target": target, "id_columns": "nope", "data": upload("loans.csv", as_csv(portfolio(german, 5)))}
    ).content.decode()
    assert "The file has no column &#x27;nope&#x27;" in refused
    assert f'value="{target}" selected' in refused and 'value="nope"' in refused
    assert not BatchJob.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/batches/",
            {
                "target": target,
                "id_columns": "application_id",
                "data": upload("l.csv", as_csv(with_ids(portfolio(german, 1200)))),
            },
        )
    job = BatchJob.objects.get()
    detail = client.get(f"/batches/{job.public_id}/").content.decode()
    assert 'id="job-rows">1,200</span> of 1,200 rows done' in detail
    assert "<code>application_id</code> (after <code>row</code>)" in detail
