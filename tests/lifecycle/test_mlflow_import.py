"""MLflow import: a directory made by MLflow 3 (tests/lifecycle/fixtures, see
make_mlflow_fixtures.py) with the skops format becomes a draft that passes its checks; a
cloudpickle one is refused from MLmodel alone and nothing is saved."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from core import audit
from core.models import AuditEvent
from governance import workflow
from governance.errors import WorkflowError
from governance.models import CheckRun
from lifecycle import mlflow_import
from lifecycle import services as lifecycle_services
from lifecycle.errors import MlflowImportRefused
from lifecycle.models import MlflowImport, ModelVersion, RegisteredModel, Status
from lifecycle.submission import DatasetChoice
from tests.conftest import CARD, stored_files, upload

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def csv_files(tmp_path: Path, train_csv: bytes, eval_csv: bytes) -> tuple[str, str]:
    train, evaluation = tmp_path / "german-train.csv", tmp_path / "german-eval.csv"
    train.write_bytes(train_csv)
    evaluation.write_bytes(eval_csv)
    return str(train), str(evaluation)


def test_command_imports_a_skops_model_into_a_draft_that_passes_its_checks(
    data_scientist, csv_files, lenient_policy, django_capture_on_commit_callbacks, eager_tasks
):
    out = io.StringIO()
    call_command(
        "import_mlflow_model",
        str(FIXTURES / "credit-skops"),
        "--name=credit-mlflow",
        f"--user={data_scientist.username}",
        f"--training-data={csv_files[0]}",
        f"--evaluation-data={csv_files[1]}",
        "--label-column=risk",
        "--sensitive-feature=sex",
        "--sensitive-feature=age_group",
        stdout=out,
    )
    assert "Imported credit-mlflow v1 as a draft" in out.getvalue()
    version = ModelVersion.objects.get(registered_model__name="credit-mlflow")
    assert version.status == Status.DRAFT and version.created_by == data_scientist
    assert RegisteredModel.objects.get(name="credit-mlflow").owner == data_scientist
    lineage = MlflowImport.objects.get(version=version)
    assert lineage.run_id == "e836f8f5e76945c78bc203f741601c2e"
    assert lineage.mlflow_version == "3.17.2"
    assert {c["name"] for c in lineage.signature["inputs"]} == set(version.feature_names)
    assert "skops==0.16.0" in lineage.pip_requirements
    event = AuditEvent.objects.get(action=audit.MLFLOW_IMPORTED)
    assert event.data["run_id"] == lineage.run_id and event.data["evidence"][0]["row"].startswith(
        "lifecycle.mlflowimport:"
    )
    assert "Imported from MLflow 3.17.2" in version.card.model_details
    # the run carried no card: its required sections stay empty (no placeholder that would pass),
    # and submission names them until the data scientist writes them
    assert version.card.intended_use == "" and version.card.ethical_considerations == ""
    with pytest.raises(WorkflowError, match="Intended use, Out-of-scope uses"):
        workflow.submit_version(version.pk, actor=data_scientist)
    lifecycle_services.update_draft(
        version.pk, actor=data_scientist, card=dict(CARD), sensitive_features=["sex", "age_group"]
    )

    with django_capture_on_commit_callbacks(execute=True):
        workflow.submit_version(version.pk, actor=data_scientist)
    version.refresh_from_db()
    assert version.status == Status.IN_REVIEW
    gating = CheckRun.objects.filter(version=version, kind__in=["validation", "fairness", "reproducibility"])
    assert sorted(gating.values_list("status", flat=True)) == ["passed", "passed", "passed"]


def test_a_cloudpickle_flavor_is_refused_before_anything_is_read_and_nothing_is_saved(
    data_scientist, csv_files, media_root, monkeypatch
):
    opened: list[str] = []
    real_read = mlflow_import.Source.read

    def spy(self: Any, name: str, *, limit: int) -> bytes:
        opened.append(name)
        return real_read(self, name, limit=limit)

    monkeypatch.setattr(mlflow_import.Source, "read", spy)
    events_before = AuditEvent.objects.count()
    with pytest.raises(CommandError) as refused:
        call_command(
            "import_mlflow_model",
            str(FIXTURES / "credit-pickle"),
            "--name=credit-pickled",
            f"--user={data_scientist.username}",
            f"--training-data={csv_files[0]}",
            f"--evaluation-data={csv_files[1]}",
            "--label-column=risk",
        )
    message = str(refused.value)
    assert 'serialization_format="cloudpickle"' in message
    assert 'mlflow.sklearn.save_model(..., serialization_format="skops")' in message
    assert opened == ["MLmodel"]  # model.pkl never opened
    assert not RegisteredModel.objects.filter(name="credit-pickled").exists()
    assert ModelVersion.objects.count() == 0 and MlflowImport.objects.count() == 0
    assert AuditEvent.objects.count() == events_before
    assert stored_files(media_root) == []


def test_the_signature_is_checked_against_the_evaluation_data(data_scientist, train_csv, eval_csv, media_root):
    renamed = eval_csv.replace(b"credit_amount", b"amount", 1)
    with pytest.raises(MlflowImportRefused, match="'credit_amount' is not a column of the evaluation data"):
        mlflow_import.import_mlflow_model(
            actor=data_scientist,
            source=mlflow_import.Source(directory=FIXTURES / "credit-skops"),
            model_name="credit-mlflow",
            training=DatasetChoice(upload=upload("train.csv", train_csv)),
            evaluation=DatasetChoice(upload=upload("eval.csv", renamed)),
            label_column="risk",
        )
    assert not RegisteredModel.objects.filter(name="credit-mlflow").exists()
    assert stored_files(media_root) == []


def _zip(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, f"model/{path.relative_to(directory)}")
    return buffer.getvalue()


def test_the_api_imports_a_zipped_model_directory(data_scientist, api_client, train_csv, eval_csv):
    api_client.force_authenticate(data_scientist)
    response = api_client.post(
        "/api/v1/models/credit-mlflow/versions/import-mlflow",
        {
            "mlflow_model": upload("credit-skops.zip", _zip(FIXTURES / "credit-skops")),
            "training_data": upload("german-train.csv", train_csv, "text/csv"),
            "evaluation_data": upload("german-eval.csv", eval_csv, "text/csv"),
            "label_column": "risk",
            "sensitive_features": ["sex"],
        },
        format="multipart",
    )
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "draft"
    assert response.json()["mlflow"]["run_id"] == "e836f8f5e76945c78bc203f741601c2e"


def test_the_api_refuses_a_pickle_flavor_with_the_fix(data_scientist, api_client, train_csv, eval_csv):
    api_client.force_authenticate(data_scientist)
    response = api_client.post(
        "/api/v1/models/credit-mlflow/versions/import-mlflow",
        {
            "mlflow_model": upload("credit-pickle.zip", _zip(FIXTURES / "credit-pickle")),
            "training_data": upload("german-train.csv", train_csv, "text/csv"),
            "evaluation_data": upload("german-eval.csv", eval_csv, "text/csv"),
            "label_column": "risk",
        },
        format="multipart",
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "pickle_refused" and 'serialization_format="skops"' in error["message"]
    assert ModelVersion.objects.count() == 0


def test_the_import_page_is_for_data_scientists(client, auditor, data_scientist):
    client.force_login(auditor)
    assert client.get("/registry/import-mlflow/").status_code == 403
    client.force_login(data_scientist)
    assert b"serialization_format" in client.get("/registry/import-mlflow/").content


def _zip_with_mlmodel(mlmodel: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted((FIXTURES / "credit-skops").rglob("*")):
            if path.is_file() and path.name != "MLmodel":
                archive.write(path, f"model/{path.relative_to(FIXTURES / 'credit-skops')}")
        archive.writestr("model/MLmodel", mlmodel)
    return buffer.getvalue()


def _post_mlmodel(api_client, mlmodel: bytes, train_csv: bytes, eval_csv: bytes):
    return api_client.post(
        "/api/v1/models/credit-mlflow/versions/import-mlflow",
        {
            "mlflow_model": upload("m.zip", _zip_with_mlmodel(mlmodel)),
            "training_data": upload("german-train.csv", train_csv, "text/csv"),
            "evaluation_data": upload("german-eval.csv", eval_csv, "text/csv"),
            "label_column": "risk",
        },
        format="multipart",
    )


def test_an_mlmodel_with_yaml_aliases_is_refused_before_it_is_expanded(data_scientist, api_client, train_csv, eval_csv):
    """A "billion laughs" MLmodel: anchors and aliases are refused outright (a real MLmodel has none)."""
    fixture = (FIXTURES / "credit-skops" / "MLmodel").read_bytes()
    laughs = b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for n in "bcd":
        prev = chr(ord(n) - 1)
        laughs += f"{n}: &{n} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n".encode()
    api_client.force_authenticate(data_scientist)
    mlmodel = laughs + fixture.replace(b"run_id: e8", b"run_id: *d\nx: e8")
    response = _post_mlmodel(api_client, mlmodel, train_csv, eval_csv)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "mlmodel_refused" and "alias" in error["message"]
    assert ModelVersion.objects.count() == 0


def test_an_mlmodel_nested_too_deep_is_a_named_400_not_a_recursion_error(
    data_scientist, api_client, train_csv, eval_csv
):
    fixture = (FIXTURES / "credit-skops" / "MLmodel").read_bytes()
    deep = b"x: " + b"[" * 5000 + b"]" * 5000 + b"\n"
    api_client.force_authenticate(data_scientist)
    response = _post_mlmodel(api_client, deep + fixture, train_csv, eval_csv)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "mlmodel_refused" and "deep" in error["message"]


def test_lineage_recorded_before_the_move_to_lifecycle_still_verifies(data_scientist, media_root):
    """Events written while MlflowImport was integrations' name their row `integrations.mlflowimport:N`;
    verification reads them under lifecycle's label (core.ledger.MOVED), and an edit is still named."""
    import json

    from compliance.evidence import verify_evidence
    from lifecycle.mlflow_demo import seed_mlflow_demo
    from tests.core.test_audit import _raw
    from tests.ledger import triggers_dropped

    seed_mlflow_demo(actor=data_scientist)
    row = MlflowImport.objects.get()
    event = AuditEvent.objects.get(action=audit.MLFLOW_IMPORTED)
    key = f"lifecycle.mlflowimport:{row.pk}"
    data = dict(event.data)
    data["evidence"] = [
        {**item, "row": item["row"].replace("lifecycle.", "integrations.")} for item in data["evidence"]
    ]
    assert any(item["row"] == f"integrations.mlflowimport:{row.pk}" for item in data["evidence"])
    _raw("UPDATE governance_auditevent SET data = %s WHERE seq = %s", [json.dumps(data), event.seq])
    before = verify_evidence()
    assert not any("mlflowimport" in f for f in before.failures), before.failures
    with triggers_dropped():
        MlflowImport.objects.filter(pk=row.pk).update(run_id="forged")
    after = verify_evidence()
    assert any(f.startswith(key) for f in after.failures), after.failures
