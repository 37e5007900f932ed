"""Import an MLflow model directory (or a zip of one) as a draft version, through the same
submission service as an upload (lifecycle.services.create_version).

MLflow is not a dependency: `MLmodel` is YAML, read with yaml.safe_load after a scan of its events
that refuses anchors and aliases (a "billion laughs" expands from a few hundred bytes) and nesting
deeper than MAX_MLMODEL_DEPTH (PyYAML's composer recurses). Only the sklearn flavor
saved with serialization_format="skops" is accepted; a pickle or cloudpickle flavor is refused
from `MLmodel` alone, before any other file is opened. The run id, signature, MLflow version and
pip requirements are kept as lineage (MlflowImport, an evidence row), and the signature is checked
against the evaluation data's columns and types before anything is saved."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import models, transaction

from core import audit
from core.actors import Actor, username_of
from core.errors import DomainError
from core.evidence import evidence
from lifecycle import services, submission
from lifecycle.datasets import parse_csv
from lifecycle.errors import MlflowImportRefused
from lifecycle.models import CARD_FIELDS, Dataset, MlflowImport, ModelVersion, RegisteredModel

SKOPS_FIX = (
    'Save the model again with mlflow.sklearn.save_model(..., serialization_format="skops") '
    '(or mlflow.sklearn.log_model(..., serialization_format="skops")): pickle is never loaded here.'
)
# A real MLmodel is a few kilobytes, nested four or five levels (docs/operations-limits.md)
MAX_MLMODEL_BYTES = 256 * 1024
MAX_MLMODEL_DEPTH = 32
MAX_REQUIREMENTS_BYTES = 256 * 1024
MAX_ZIP_ENTRIES = 1000
# MLflow column types -> the dtype kinds lifecycle.datasets reports for a CSV column
SIGNATURE_TYPES = {
    "long": {"int64"},
    "integer": {"int64"},
    "double": {"float64", "int64"},
    "float": {"float64", "int64"},
    "boolean": {"bool"},
    "string": {"string"},
    "binary": {"string"},
    "datetime": {"string"},
}


class Source:
    """The files of an MLflow model, from a directory or an uploaded zip, read one by one."""

    def __init__(self, *, directory: Path | None = None, archive: bytes | None = None):
        self.directory, self.zip, self.prefix = directory, None, ""
        if archive is not None:
            try:
                self.zip = zipfile.ZipFile(io.BytesIO(archive))
            except zipfile.BadZipFile:
                raise MlflowImportRefused("Upload a zip of the MLflow model directory.", field="mlflow_model") from None
            names = self.zip.namelist()
            if len(names) > MAX_ZIP_ENTRIES:
                raise MlflowImportRefused("The zip holds too many files for a model directory.", field="mlflow_model")
            mlmodels = sorted((n for n in names if PurePosixPath(n).name == "MLmodel"), key=len)
            if not mlmodels:
                raise MlflowImportRefused(
                    "The zip has no MLmodel file: zip the MLflow model directory.", field="mlflow_model"
                )
            self.prefix = mlmodels[0][: -len("MLmodel")]

    def read(self, name: str, *, limit: int) -> bytes:
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise MlflowImportRefused(
                f"MLmodel names a file outside the model directory: {name!r}.", field="mlflow_model"
            )
        try:
            if self.zip is not None:
                info = self.zip.getinfo(self.prefix + str(relative))
                if info.file_size > limit:
                    raise MlflowImportRefused(f"{name} is larger than {limit} bytes.", field="mlflow_model", status=413)
                return self.zip.read(info)
            assert self.directory is not None
            path = self.directory / relative
            if not path.is_file():
                raise FileNotFoundError(name)
            if path.stat().st_size > limit:
                raise MlflowImportRefused(f"{name} is larger than {limit} bytes.", field="mlflow_model", status=413)
            return path.read_bytes()
        except (KeyError, FileNotFoundError):
            raise MlflowImportRefused(f"The MLflow model has no file {name!r}.", field="mlflow_model") from None


@dataclass
class MlflowModel:
    mlmodel_sha256: str
    run_id: str
    model_uuid: str
    mlflow_version: str
    sklearn_version: str
    serialization_format: str
    model_file: str
    signature: dict[str, Any] = field(default_factory=dict)
    pip_requirements: list[str] = field(default_factory=list)
    utc_time_created: str = ""


def _json_list(value: Any) -> list[dict[str, Any]]:
    if value in (None, ""):
        return []
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError:
        raise MlflowImportRefused("MLmodel's signature is not valid JSON.", field="mlflow_model") from None
    return [c for c in parsed if isinstance(c, dict)] if isinstance(parsed, list) else []


def _refused(message: str) -> MlflowImportRefused:
    return MlflowImportRefused(message, field="mlflow_model", code="mlmodel_refused")


def load_mlmodel_yaml(raw: bytes) -> Any:
    """yaml.safe_load, once the event stream (flat, no recursion) shows no anchor or alias and
    no nesting deeper than MAX_MLMODEL_DEPTH."""
    if len(raw) > MAX_MLMODEL_BYTES:
        raise _refused(f"MLmodel is larger than {MAX_MLMODEL_BYTES} bytes.")
    depth = 0
    try:
        for event in yaml.parse(raw, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise _refused("MLmodel uses YAML anchors or aliases (&name / *name), which are refused.")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_MLMODEL_DEPTH:
                    raise _refused(f"MLmodel is nested too deep (more than {MAX_MLMODEL_DEPTH} levels).")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise MlflowImportRefused(f"MLmodel is not valid YAML ({exc}).", field="mlflow_model") from None


def read_mlmodel(source: Source) -> MlflowModel:
    """Parse MLmodel and refuse anything but the skops sklearn flavor, before reading other files."""
    raw = source.read("MLmodel", limit=MAX_MLMODEL_BYTES)
    meta = load_mlmodel_yaml(raw)
    if not isinstance(meta, dict) or not isinstance(meta.get("flavors"), dict):
        raise MlflowImportRefused("MLmodel has no flavors: is this an MLflow model directory?", field="mlflow_model")
    flavor = meta["flavors"].get("sklearn")
    if not isinstance(flavor, dict):
        found = ", ".join(sorted(meta["flavors"])) or "none"
        raise MlflowImportRefused(
            f"Only scikit-learn models are imported (MLmodel's flavors: {found}). {SKOPS_FIX}", field="mlflow_model"
        )
    fmt = str(flavor.get("serialization_format") or "cloudpickle")
    if fmt != "skops":
        raise MlflowImportRefused(
            f'This MLflow model was saved with serialization_format="{fmt}". {SKOPS_FIX}',
            field="mlflow_model",
            code="pickle_refused",
        )
    model_file = str(flavor.get("pickled_model") or "")
    if not model_file:
        raise MlflowImportRefused("MLmodel's sklearn flavor names no model file.", field="mlflow_model")
    signature: dict[str, Any] = meta["signature"] if isinstance(meta.get("signature"), dict) else {}
    return MlflowModel(
        mlmodel_sha256=hashlib.sha256(raw).hexdigest(),
        run_id=str(meta.get("run_id") or ""),
        model_uuid=str(meta.get("model_uuid") or meta.get("model_id") or ""),
        mlflow_version=str(meta.get("mlflow_version") or ""),
        sklearn_version=str(flavor.get("sklearn_version") or ""),
        serialization_format=fmt,
        model_file=model_file,
        signature={"inputs": _json_list(signature.get("inputs")), "outputs": _json_list(signature.get("outputs"))},
        utc_time_created=str(meta.get("utc_time_created") or ""),
    )


def read_requirements(source: Source) -> list[str]:
    try:
        text = source.read("requirements.txt", limit=MAX_REQUIREMENTS_BYTES).decode("utf-8", "replace")
    except MlflowImportRefused:
        return []
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def signature_problems(signature: dict[str, Any], columns: list[dict[str, str]], label: str) -> list[str]:
    """What in the evaluation data contradicts the MLflow signature's inputs (names and types)."""
    dtypes = {c["name"]: c["dtype"] for c in columns}
    problems = []
    for spec in signature.get("inputs", []):
        name, kind = spec.get("name"), str(spec.get("type", ""))
        if name is None:
            problems.append("The signature has unnamed (tensor) inputs; only column signatures are checked and served.")
            break
        if name == label:
            problems.append(f"The signature takes the label column {label!r} as an input.")
        elif name not in dtypes:
            problems.append(f"The signature's input {name!r} is not a column of the evaluation data.")
        elif kind in SIGNATURE_TYPES and dtypes[name] not in SIGNATURE_TYPES[kind]:
            problems.append(f"The signature says {name!r} is {kind}, the evaluation data has {dtypes[name]} values.")
    return problems


def _dataset_columns(choice: submission.DatasetChoice) -> list[dict[str, str]] | None:
    if choice.dataset_id:
        dataset = Dataset.objects.filter(pk=choice.dataset_id).first()
        return dataset.columns if dataset else None
    if choice.upload is None:
        return None
    choice.upload.seek(0)
    try:
        parsed = parse_csv(choice.upload.read(), field="evaluation_data")
    except DomainError:
        return None  # create_version reports what is wrong with the file
    finally:
        choice.upload.seek(0)
    return parsed.columns


def import_mlflow_model(
    *,
    actor: Actor,
    source: Source,
    model_name: str,
    training: submission.DatasetChoice,
    evaluation: submission.DatasetChoice,
    label_column: str,
    sensitive_features: list[str] | None = None,
    title: str = "",
    risk_tier: str = "medium",
    card: dict[str, Any] | None = None,
    source_path: str = "",
) -> ModelVersion:
    """Register the model if needed and create a draft version from an MLflow skops model, with
    its MLflow lineage, in one transaction; refused: nothing is saved."""
    services.require_data_scientist(actor)
    mlflow = read_mlmodel(source)  # refuses pickle before any other file is read
    columns = _dataset_columns(evaluation)
    if columns is not None:
        problems = signature_problems(mlflow.signature, columns, (label_column or "").strip())
        if problems:
            raise MlflowImportRefused(" ".join(problems), field="evaluation_data", details={"signature": problems})
    artifact = source.read(mlflow.model_file, limit=settings.MAX_ARTIFACT_BYTES)
    mlflow.pip_requirements = read_requirements(source)
    card = {k: v for k, v in (card or {}).items() if k in CARD_FIELDS and v}
    details = (
        f"Imported from MLflow {mlflow.mlflow_version} (run {mlflow.run_id or 'unknown'}, model {mlflow.model_uuid}, "
        f"scikit-learn {mlflow.sklearn_version}, saved with skops)."
    )
    card["model_details"] = (card.get("model_details", "") + "\n\n" + details).strip()
    # Sections the run did not carry stay empty: submission asks the data scientist for them.
    created: ModelVersion | None = None
    try:
        with transaction.atomic():
            if not RegisteredModel.objects.filter(name=model_name).exists():
                services.register_model(
                    actor=actor, name=model_name, title=title or model_name, risk_tier=risk_tier, description=details
                )
            version = created = services.create_version(
                actor=actor,
                model_name=model_name,
                artifact=SimpleUploadedFile(PurePosixPath(mlflow.model_file).name, artifact),
                training=training,
                evaluation=evaluation,
                label_column=label_column,
                sensitive_features=sensitive_features or [],
                card=card,
                card_complete=False,
                dataset_source=f"MLflow import ({source_path or 'upload'})",
            )
            row = MlflowImport.objects.create(
                version=version,
                run_id=mlflow.run_id,
                model_uuid=mlflow.model_uuid,
                mlflow_version=mlflow.mlflow_version,
                sklearn_version=mlflow.sklearn_version,
                serialization_format=mlflow.serialization_format,
                signature=mlflow.signature,
                pip_requirements=mlflow.pip_requirements,
                mlmodel_sha256=mlflow.mlmodel_sha256,
                source_path=source_path[:500],
                utc_time_created=mlflow.utc_time_created[:40],
                imported_by_username=username_of(actor),
            )
            audit.record(
                audit.MLFLOW_IMPORTED,
                actor=actor,
                target=version,
                data={
                    "run_id": mlflow.run_id,
                    "model_uuid": mlflow.model_uuid,
                    "mlflow_version": mlflow.mlflow_version,
                    "signature": mlflow.signature,
                    "pip_requirements": mlflow.pip_requirements,
                    "mlmodel_sha256": mlflow.mlmodel_sha256,
                    "artifact_sha256": version.artifact_sha256,
                    "evidence": evidence(row),
                },
            )
    except BaseException:
        if created is not None:
            _remove_files(created)
        raise
    return version


def _remove_files(version: ModelVersion) -> None:
    """create_version removes the files of a save that failed; a failure after it (the lineage
    row, the audit event) rolls its rows back too, so remove the files no row names any more."""
    names: list[tuple[type[models.Model], str, str | None]] = [(ModelVersion, "artifact", version.artifact.name)]
    names += [(Dataset, "file", d.file.name) for d in (version.training_dataset, version.evaluation_dataset)]
    for model, column, name in names:
        if name and not model._default_manager.filter(**{column: name}).exists():
            default_storage.delete(name)
