"""Submitting a version through the API: what is accepted, and every refusal leaves nothing."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import FunctionTransformer

from core.models import AuditEvent
from lifecycle import demo_data
from lifecycle.dataset_store import open_dataset
from lifecycle.models import Dataset, ModelCard, ModelVersion
from tests.conftest import CARD, stored_files, upload

pytestmark = pytest.mark.django_db


def post_version(client: Any, model: str, artifact: bytes, train: bytes, evaluation: bytes, **fields: Any) -> Any:
    data: dict[str, Any] = {
        "artifact": upload(fields.pop("artifact_name", "model.skops"), artifact),
        "training_data": upload("german-train.csv", train, "text/csv"),
        "evaluation_data": upload("german-eval.csv", evaluation, "text/csv"),
        "label_column": fields.pop("label_column", "risk"),
        "sensitive_features": fields.pop("sensitive_features", ["sex", "age_group"]),
        "code_repository": "https://git.example.org/credit/scoring",
        "code_commit": "3f2c9a1",
        **CARD,
        **fields,
    }
    return client.post(f"/api/v1/models/{model}/versions/", data, format="multipart")


def assert_nothing_saved(media_root: Path) -> None:
    assert ModelVersion.objects.count() == 0
    assert Dataset.objects.count() == 0
    assert ModelCard.objects.count() == 0
    assert not AuditEvent.objects.filter(action__startswith="lifecycle.version").exists()
    assert stored_files(media_root) == []


def test_data_scientist_submits_a_version_through_the_api(
    api_client, data_scientist, registered_model, skops_bytes, train_csv, eval_csv, media_root
):
    api_client.force_authenticate(data_scientist)
    response = post_version(api_client, registered_model.name, skops_bytes, train_csv, eval_csv)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["version"] == 1 and body["status"] == "draft"
    assert body["task"] == "classification"
    assert body["artifact"]["estimator_class"] == "sklearn.pipeline.Pipeline"
    assert [c["name"] for c in body["input_schema"]] == demo_data.NUMERIC + demo_data.CATEGORICAL
    assert {"name": "credit_amount", "dtype": "int64"} in body["input_schema"]
    assert {"name": "sex", "dtype": "string", "categories": ["female", "male"]} in body["input_schema"]
    assert body["lineage"]["training_dataset"]["sha256"] == __import__("hashlib").sha256(train_csv).hexdigest()
    assert body["lineage"]["evaluation_dataset"]["rows"] == 300
    assert body["sensitive_features"] == ["sex", "age_group"]
    # the empty training-data section of the card was filled from the lineage
    assert body["lineage"]["training_dataset"]["sha256"] in body["model_card"]["training_data_notes"]
    assert body["model_card"]["intended_use"] == CARD["intended_use"]
    assert len(stored_files(media_root)) == 3  # artifact + two datasets
    version = ModelVersion.objects.get()
    assert AuditEvent.objects.filter(action="lifecycle.version.created", target_id=str(version.pk)).count() == 1


def test_second_version_reuses_identical_datasets_and_links_its_parent(
    api_client, data_scientist, registered_model, skops_bytes, train_csv, eval_csv
):
    api_client.force_authenticate(data_scientist)
    assert post_version(api_client, registered_model.name, skops_bytes, train_csv, eval_csv).status_code == 201
    response = post_version(api_client, registered_model.name, skops_bytes, train_csv, eval_csv, parent_version=1)
    assert response.status_code == 201, response.content
    assert response.json()["version"] == 2
    assert response.json()["lineage"]["parents"][0]["version"] == 1
    assert Dataset.objects.count() == 2


def test_existing_datasets_can_be_chosen_by_id(
    api_client, data_scientist, registered_model, skops_bytes, train_csv, eval_csv
):
    api_client.force_authenticate(data_scientist)
    first = post_version(api_client, registered_model.name, skops_bytes, train_csv, eval_csv).json()
    response = api_client.post(
        f"/api/v1/models/{registered_model.name}/versions/",
        {
            "artifact": upload("model.skops", skops_bytes),
            "training_dataset": first["lineage"]["training_dataset"]["id"],
            "evaluation_dataset": first["lineage"]["evaluation_dataset"]["id"],
            "label_column": "risk",
            **CARD,
        },
        format="multipart",
    )
    assert response.status_code == 201, response.content
    assert Dataset.objects.count() == 2


@pytest.mark.parametrize(
    ("make_bytes", "filename"),
    [
        (lambda m: pickle.dumps(m), "model.pkl"),
        (lambda m: pickle.dumps(m), "model.skops"),
        (lambda m: pickle.dumps(m, protocol=0), "model.skops"),
        (lambda m: _joblib_bytes(m, compress=0), "model.joblib"),
        (lambda m: _joblib_bytes(m, compress=0), "model.skops"),
        (lambda m: _joblib_bytes(m, compress=3), "model.skops"),
    ],
    ids=["pickle", "pickle-renamed", "pickle-protocol-0", "joblib", "joblib-renamed", "joblib-compressed"],
)
def test_pickle_and_joblib_files_are_refused_by_their_bytes(
    api_client, data_scientist, registered_model, logreg, train_csv, eval_csv, media_root, make_bytes, filename
):
    api_client.force_authenticate(data_scientist)
    response = post_version(
        api_client, registered_model.name, make_bytes(logreg), train_csv, eval_csv, artifact_name=filename
    )
    assert response.status_code == 400
    message = " ".join(response.json()["error"]["details"]["artifact"])
    assert "pickle" in message
    assert 'skops.io.dump(model, "model.skops")' in message
    assert_nothing_saved(media_root)


def _joblib_bytes(model: Any, compress: int) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=compress)
    return buffer.getvalue()


def test_skops_file_asking_for_an_untrusted_type_is_refused_naming_it(
    api_client, data_scientist, registered_model, train_csv, eval_csv, media_root
):
    # A FunctionTransformer that would call os.system: skops stores it as a reference to posix.system.
    evil = sio.dumps(FunctionTransformer(func=os.system))
    api_client.force_authenticate(data_scientist)
    response = post_version(api_client, registered_model.name, evil, train_csv, eval_csv)
    assert response.status_code == 400
    message = " ".join(response.json()["error"]["details"]["artifact"])
    assert "posix.system" in message and "allow-list" in message
    assert_nothing_saved(media_root)


def test_csv_without_the_label_column_is_refused(
    api_client, data_scientist, registered_model, skops_bytes, german, train_csv, media_root
):
    no_label = demo_data.to_csv_bytes(german[1].drop(columns=["risk"]))
    api_client.force_authenticate(data_scientist)
    response = post_version(api_client, registered_model.name, skops_bytes, train_csv, no_label)
    assert response.status_code == 400
    message = " ".join(response.json()["error"]["details"]["label_column"])
    assert "evaluation data has no column 'risk'" in message
    assert_nothing_saved(media_root)


def test_sensitive_feature_missing_from_the_data_is_refused(
    api_client, data_scientist, registered_model, skops_bytes, train_csv, eval_csv, media_root
):
    api_client.force_authenticate(data_scientist)
    response = post_version(
        api_client, registered_model.name, skops_bytes, train_csv, eval_csv, sensitive_features=["sex", "ethnicity"]
    )
    assert response.status_code == 400
    assert "ethnicity" in " ".join(response.json()["error"]["details"]["sensitive_features"])
    assert_nothing_saved(media_root)


def test_artifact_whose_features_do_not_match_the_data_is_refused(
    api_client, data_scientist, registered_model, german, train_csv, eval_csv, media_root
):
    other = german[0].rename(columns={"duration": "loan_months"})
    model = LogisticRegression(max_iter=500).fit(other[["credit_amount", "loan_months", "age"]], other["risk"])
    api_client.force_authenticate(data_scientist)
    response = post_version(api_client, registered_model.name, sio.dumps(model), train_csv, eval_csv)
    assert response.status_code == 400
    message = " ".join(response.json()["error"]["details"]["artifact"])
    assert "loan_months" in message
    assert_nothing_saved(media_root)


def test_artifact_that_fails_to_predict_on_the_data_is_refused(
    api_client, data_scientist, registered_model, skops_bytes, german, train_csv, media_root
):
    broken = german[1].copy()
    broken["credit_amount"] = "a lot"  # a string column where the scaler needs numbers
    api_client.force_authenticate(data_scientist)
    response = post_version(api_client, registered_model.name, skops_bytes, train_csv, demo_data.to_csv_bytes(broken))
    assert response.status_code == 400
    assert "failed to predict" in " ".join(response.json()["error"]["details"]["artifact"])
    assert_nothing_saved(media_root)


def test_oversized_artifact_is_refused_with_413(
    api_client, data_scientist, registered_model, skops_bytes, train_csv, eval_csv, media_root, settings
):
    settings.MAX_ARTIFACT_BYTES = 10_000
    api_client.force_authenticate(data_scientist)
    response = post_version(api_client, registered_model.name, skops_bytes, train_csv, eval_csv)
    assert response.status_code == 413
    assert "limit is 10000 bytes" in " ".join(response.json()["error"]["details"]["artifact"])
    assert_nothing_saved(media_root)


def test_oversized_dataset_is_refused_with_413(
    api_client, data_scientist, registered_model, skops_bytes, train_csv, eval_csv, media_root, settings
):
    settings.MAX_DATASET_BYTES = 1000
    api_client.force_authenticate(data_scientist)
    response = post_version(api_client, registered_model.name, skops_bytes, train_csv, eval_csv)
    assert response.status_code == 413
    assert "training_data" in response.json()["error"]["details"]
    assert_nothing_saved(media_root)


def test_outsider_cannot_upload(api_client, outsider, registered_model, skops_bytes, train_csv, eval_csv, media_root):
    api_client.force_authenticate(outsider)
    response = post_version(api_client, registered_model.name, skops_bytes, train_csv, eval_csv)
    assert response.status_code == 403
    assert_nothing_saved(media_root)


@pytest.mark.parametrize("role_fixture", ["risk_officer", "auditor"])
def test_other_roles_cannot_upload(
    request, api_client, role_fixture, registered_model, skops_bytes, train_csv, eval_csv, media_root
):
    api_client.force_authenticate(request.getfixturevalue(role_fixture))
    response = post_version(api_client, registered_model.name, skops_bytes, train_csv, eval_csv)
    assert response.status_code == 403
    assert "data-scientists" in response.json()["error"]["message"]
    assert_nothing_saved(media_root)


def test_unauthenticated_upload_gets_401(api_client, registered_model, skops_bytes, train_csv, eval_csv, media_root):
    response = post_version(api_client, registered_model.name, skops_bytes, train_csv, eval_csv)
    assert response.status_code == 401
    assert_nothing_saved(media_root)


def test_several_problems_are_reported_together(
    api_client, data_scientist, registered_model, logreg, train_csv, eval_csv, media_root
):
    api_client.force_authenticate(data_scientist)
    response = post_version(
        api_client,
        registered_model.name,
        pickle.dumps(logreg),
        train_csv,
        eval_csv,
        label_column="outcome",
        sensitive_features=["religion"],
    )
    details = response.json()["error"]["details"]
    assert response.status_code == 400
    assert {"artifact", "label_column", "sensitive_features"} <= set(details)
    assert_nothing_saved(media_root)


def test_failure_while_saving_removes_the_files_already_written(
    data_scientist, registered_model, skops_bytes, train_csv, eval_csv, media_root, monkeypatch
):
    """If the database write fails after files were stored, the files go too."""
    from lifecycle.models import ModelCard as Card
    from tests.conftest import make_version

    on_disk_at_failure: list[list[str]] = []

    def explode(*args: Any, **kwargs: Any) -> None:
        on_disk_at_failure.append(stored_files(media_root))
        raise RuntimeError("database went away")

    monkeypatch.setattr(Card.objects, "create", explode)
    with pytest.raises(RuntimeError, match="database went away"):
        make_version(data_scientist, registered_model, skops_bytes, train_csv, eval_csv)
    # The real service ran up to the card, once, and by then it had stored the artifact and both
    # datasets: so the empty folder below proves they were removed, not that none were written.
    assert len(on_disk_at_failure) == 1
    written = on_disk_at_failure[0]
    assert [f.split("/")[0] for f in written] == ["artifacts", "datasets", "datasets"], written
    assert written[0].startswith(f"artifacts/{registered_model.name}/v1-") and written[0].endswith(".skops")
    assert_nothing_saved(media_root)


def test_unreadable_csv_is_refused(api_client, data_scientist, registered_model, skops_bytes, train_csv, media_root):
    api_client.force_authenticate(data_scientist)
    response = post_version(api_client, registered_model.name, skops_bytes, train_csv, b"\x00\xff\xfe binary")
    assert response.status_code == 400
    assert "UTF-8" in " ".join(response.json()["error"]["details"]["evaluation_data"])
    assert_nothing_saved(media_root)


def test_dataset_columns_and_dtypes_are_recorded(data_scientist, draft_version):
    columns = {c["name"]: c["dtype"] for c in draft_version.evaluation_dataset.columns}
    assert columns["age"] == "int64" and columns["purpose"] == "string"
    evaluation = pd.read_csv(open_dataset(draft_version.evaluation_dataset))
    assert draft_version.evaluation_dataset.row_count == len(evaluation)
