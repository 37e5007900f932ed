"""The demo's MLflow import (lifecycle/demo_mlflow): seed_mlflow_demo imports it as a draft
for dana, the README's walkthrough command works as written, from the repository's own files,
and data scientists find the import page in the navigation."""

from __future__ import annotations

import filecmp
import io
import re
import shlex
from pathlib import Path

from django.core.management import call_command

from lifecycle.mlflow_demo import DEMO_MLFLOW, MLFLOW_DEMO_MODEL
from lifecycle.models import MlflowImport, ModelVersion, Status

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"


def readme_import_command() -> list[str]:
    """The arguments of the `import_mlflow_model` command in the README's walkthrough."""
    readme = (ROOT / "README.md").read_text()
    for block in re.findall(r"```sh\n(.*?)```", readme, flags=re.S):
        words = shlex.split(block.replace("\\\n", " "))  # a backslash-newline continues the line
        if "import_mlflow_model" in words:
            args = words[words.index("import_mlflow_model") + 1 :]
            if args[0].startswith("lifecycle/demo_mlflow/"):
                return args
    raise AssertionError("the README has no import_mlflow_model command for lifecycle/demo_mlflow")


def test_seed_mlflow_demo_imports_the_shipped_model_as_a_draft_for_dana_once(data_scientist):
    out = io.StringIO()
    call_command("seed_mlflow_demo", f"--user={data_scientist.username}", stdout=out)
    call_command("seed_mlflow_demo", f"--user={data_scientist.username}", stdout=out)  # idempotent
    version = ModelVersion.objects.get(registered_model__name=MLFLOW_DEMO_MODEL)
    assert version.status == Status.DRAFT and version.created_by == data_scientist
    assert MlflowImport.objects.get(version=version).run_id == "e836f8f5e76945c78bc203f741601c2e"
    assert "Imported credit-mlflow v1 from MLflow as a draft" in out.getvalue()
    assert "already loaded" in out.getvalue()


def test_the_demo_model_is_the_mlflow_fixture(db):
    same, different, missing = filecmp.cmpfiles(
        FIXTURES / "credit-skops", DEMO_MLFLOW / "credit-skops", ["MLmodel", "model.skops", "requirements.txt"]
    )
    assert (different, missing) == ([], [])


def test_the_readme_walkthrough_command_imports_from_the_repository_files(data_scientist, monkeypatch):
    args = readme_import_command()
    assert f"--user={data_scientist.username}" in args or data_scientist.username in args
    monkeypatch.chdir(ROOT)  # the README's paths are relative to the repository
    out = io.StringIO()
    call_command("import_mlflow_model", *args, stdout=out)
    assert "Imported credit-mlflow v1 as a draft" in out.getvalue()
    version = ModelVersion.objects.get(registered_model__name="credit-mlflow")
    assert sorted(version.sensitive_features) == ["age_group", "sex"]


def test_data_scientists_find_the_mlflow_import_in_the_navigation(client, data_scientist, risk_officer):
    client.force_login(data_scientist)
    assert b'href="/registry/import-mlflow/">Import from MLflow</a>' in client.get("/").content
    client.force_login(risk_officer)
    assert b"Import from MLflow" not in client.get("/").content
