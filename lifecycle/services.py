"""Writes to the registry. Each function validates everything first, then saves in one
transaction with its audit event; a refused call leaves no row and no file behind."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Max

from core import audit
from core.actors import Actor, person
from core.evidence import evidence
from core.roles import DATA_SCIENTISTS, has_role
from lifecycle import dataset_store, materiality
from lifecycle.artifacts import inspect_artifact, read_verified_bytes
from lifecycle.datasets import ParsedDataset, categories_of
from lifecycle.errors import (
    ArtifactIntegrityError,
    Forbidden,
    LifecycleError,
    NotFound,
    SubmissionInvalid,
)
from lifecycle.models import (
    Dataset,
    DatasetKey,
    ModelCard,
    ModelDependency,
    ModelKind,
    ModelVersion,
    RegisteredModel,
    RiskTier,
    Status,
    slug_validator,
)
from lifecycle.submission import (
    DatasetChoice,
    Submission,
    check_code_commit,
    check_sensitive_features,
    clean_card,
    clean_names,
    validate_submission,
)

log = logging.getLogger(__name__)


def require_data_scientist(actor: Actor) -> None:
    if not has_role(actor, DATA_SCIENTISTS):
        raise Forbidden("Only members of the data-scientists group may do this.")


@transaction.atomic
def register_model(
    *,
    actor: Actor,
    name: str,
    title: str,
    description: str = "",
    risk_tier: str | None = None,
    kind: str = ModelKind.IN_HOUSE,
    purpose: str = "",
    exposure: int | None = None,
    decisions_per_year: int | None = None,
    affected_people: int | None = None,
    depends_on: list[str] | None = None,
) -> RegisteredModel:
    """Create a registered model owned by the acting data scientist, with its inventory entry:
    kind, purpose, materiality inputs and the models it depends on. Without a proposed tier, the
    one the materiality proposes (lifecycle.materiality) is the proposal."""
    require_data_scientist(actor)
    errors: dict[str, list[str]] = {}
    name = (name or "").strip()
    try:
        slug_validator(name)
    except ValidationError as exc:
        errors["name"] = [str(m) for m in exc.messages]
    if not errors.get("name") and RegisteredModel.objects.filter(name=name).exists():
        errors["name"] = [f"A model named {name!r} already exists."]
    if not (title or "").strip():
        errors["title"] = ["A title is required."]
    if kind not in ModelKind.values:
        errors["kind"] = [f"Choose one of {', '.join(ModelKind.values)}."]
    inputs = {"exposure": exposure, "decisions_per_year": decisions_per_year, "affected_people": affected_people}
    for field, value in inputs.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**62):
            errors[field] = ["A whole number, zero or more."]
    suggested = None if any(f in errors for f in inputs) else materiality.proposed_tier(**inputs)
    if risk_tier in (None, "") and suggested is not None:
        risk_tier = suggested
    if risk_tier not in RiskTier.values:
        errors["risk_tier"] = [f"Choose one of {', '.join(RiskTier.values)} (or give the materiality inputs)."]
    names = list(dict.fromkeys(depends_on or []))
    upstream = list(RegisteredModel.objects.filter(name__in=names))
    unknown = sorted(set(names) - {m.name for m in upstream})
    if unknown:
        errors["depends_on"] = [f"No model named {', '.join(map(repr, unknown))}."]
    if errors or risk_tier is None:
        raise SubmissionInvalid(errors)
    try:
        with transaction.atomic():
            model = RegisteredModel.objects.create(
                name=name,
                title=title.strip(),
                description=description or "",
                owner=person(actor),
                risk_tier=risk_tier,
                kind=kind,
                purpose=(purpose or "").strip(),
                **inputs,
            )
    except IntegrityError:  # a concurrent registration won the name
        raise SubmissionInvalid({"name": [f"A model named {name!r} already exists."]})
    dependencies = [ModelDependency.objects.create(model=model, depends_on=m) for m in upstream]
    audit.record(
        audit.MODEL_REGISTERED,
        actor=actor,
        target=model,
        data={
            "name": name,
            "risk_tier": risk_tier,
            "title": title,
            "kind": kind,
            "materiality": inputs,
            "materiality_tier": suggested,
            "depends_on": [m.name for m in upstream],
            "evidence": evidence(*dependencies),
        },
    )
    return model


def _lineage_note(dataset: ParsedDataset, name: str, label: str) -> str:
    cols = ", ".join(f"{c['name']} ({c['dtype']})" for c in dataset.columns)
    return (
        f"Dataset {name}: {len(dataset.frame)} rows, SHA-256 {dataset.sha256}. Label column: {label}. Columns: {cols}."
    )


def create_version(
    *,
    actor: Actor,
    model_name: str,
    artifact: Any,
    training: DatasetChoice,
    evaluation: DatasetChoice,
    label_column: str,
    sensitive_features: list[str] | None = None,
    parent_version: int | None = None,
    code_repository: str = "",
    code_commit: str = "",
    card: dict[str, Any] | None = None,
    dataset_source: str = "",
    favourable_class: Any = None,
    reason_texts: dict[str, Any] | None = None,
    personal_features: list[str] | tuple[str, ...] | None = None,
    subject_field: str = "",
    card_complete: bool = True,
) -> ModelVersion:
    """Validate a whole submission (artifact, datasets, columns, a real predict), then save the
    draft version, its datasets and card in one transaction. Refused: nothing is saved."""
    require_data_scientist(actor)
    registered = RegisteredModel.objects.filter(name=model_name).first()
    if registered is None:
        raise NotFound(f"There is no registered model named {model_name!r}.")
    if registered.kind != ModelKind.IN_HOUSE:
        raise LifecycleError(
            f"{model_name} is a {registered.get_kind_display().lower()} model: it has no artifact here and is never "
            "served; record its decisions and outcomes instead (POST /api/v1/models/{name}/decisions).",
            code="model_not_served",
            status=409,
        )

    submission = validate_submission(
        registered=registered,
        artifact=artifact,
        training=training,
        evaluation=evaluation,
        label_column=label_column,
        sensitive_features=sensitive_features,
        parent_version=parent_version,
        code_repository=code_repository,
        code_commit=code_commit,
        card=card,
        favourable_class=favourable_class,
        reason_texts=reason_texts,
        personal_features=personal_features,
        subject_field=subject_field,
        card_complete=card_complete,
    )

    written: list[str] = []
    try:
        version = _save_version(actor=actor, submission=submission, dataset_source=dataset_source, written=written)
    except BaseException:
        # The transaction rolled back: remove the files it wrote so nothing is left behind.
        for name in written:
            default_storage.delete(name)
        raise
    return version


@transaction.atomic
def _save_version(*, actor: Actor, submission: Submission, dataset_source: str, written: list[str]) -> ModelVersion:
    s = submission
    inspected, resolved, features, label_column = s.inspected, s.resolved, s.features, s.label_column
    parent, code_commit, card, favourable, reasons = s.parent, s.code_commit, s.card, s.favourable, s.reasons
    # Lock the registered model so concurrent submissions get distinct version numbers.
    registered = RegisteredModel.objects.select_for_update().get(pk=s.registered.pk)
    datasets: dict[str, Dataset] = {}
    for field, (parsed, existing, name) in resolved.items():
        if existing is not None:
            _require_live_dataset(existing.pk, field=field)
        datasets[field] = existing or _store_dataset(
            actor=actor, parsed=parsed, name=name, source=dataset_source, written=written
        )
    number = (registered.versions.aggregate(n=Max("version"))["n"] or 0) + 1
    artifact_name = default_storage.save(
        f"artifacts/{registered.name}/v{number}-{inspected.sha256[:16]}.skops", ContentFile(s.artifact_bytes)
    )
    written.append(artifact_name)
    evaluation, training = resolved["evaluation_data"][0], resolved["training_data"][0]
    dtypes = {c["name"]: c["dtype"] for c in evaluation.columns}
    schema: list[dict[str, Any]] = [{"name": f, "dtype": dtypes[f]} for f in features]
    for column in schema:  # a text column's categories bound what serving logs of it
        if column["dtype"] == "string":
            found = categories_of(column["name"], training.frame, evaluation.frame)
            if found is not None:
                column["categories"] = found
    version = ModelVersion.objects.create(
        registered_model=registered,
        version=number,
        status=Status.DRAFT,
        artifact=artifact_name,
        artifact_sha256=inspected.sha256,
        artifact_size=inspected.size,
        artifact_types=inspected.types,
        estimator_class=inspected.estimator_class,
        sklearn_version=inspected.sklearn_version,
        params=inspected.params,
        task=inspected.task,
        input_schema=schema,
        classes=inspected.classes,
        label_column=label_column,
        sensitive_features=s.sensitive,
        personal_features=s.personal,
        subject_field=s.subject,
        training_dataset=datasets["training_data"],
        evaluation_dataset=datasets["evaluation_data"],
        parent=parent,
        code_repository=s.code_repository,
        code_commit=code_commit,
        created_by=person(actor),
        favourable_class=favourable,
        reason_texts=reasons or {},
    )
    if not card.get("training_data_notes"):
        card["training_data_notes"] = _lineage_note(
            resolved["training_data"][0], str(datasets["training_data"]), label_column
        )
    if not card.get("evaluation_data_notes"):
        card["evaluation_data_notes"] = _lineage_note(evaluation, str(datasets["evaluation_data"]), label_column)
    model_card = ModelCard.objects.create(version=version, **card)
    audit.record(
        audit.VERSION_CREATED,
        actor=actor,
        target=version,
        data={
            "artifact_sha256": version.artifact_sha256,
            "estimator_class": version.estimator_class,
            "training_dataset_sha256": version.training_dataset.sha256,
            "evaluation_dataset_sha256": version.evaluation_dataset.sha256,
            "card_sha256": model_card.content_hash(),
            "parent_version": parent.version if parent else None,
            "code_commit": code_commit,
            "favourable_class": favourable,
            "reason_texts": reasons or {},
            "evidence": evidence(model_card),
        },
    )
    return version


def _require_live_dataset(dataset_id: int, *, field: str) -> None:
    """An existing dataset named by a new version: locked, so that destroying its key
    (governance.datasets, which locks it too) either sees this version or is seen here."""
    dataset = Dataset.objects.select_for_update().get(pk=dataset_id)
    key = DatasetKey.objects.filter(dataset=dataset).first()
    if key is not None and key.destroyed_at is not None:
        raise dataset_store.key_destroyed(dataset, key, field=field)


def _store_dataset(*, actor: Actor, parsed: ParsedDataset, name: str, source: str, written: list[str]) -> Dataset:
    """Reuse a dataset with the same name and bytes (unless its key was destroyed); otherwise
    store it, encrypted under a key of its own, as the name's next version."""
    same = Dataset.objects.filter(name=name, sha256=parsed.sha256, data_key__destroyed_at__isnull=True).first()
    if same is not None:
        return same
    number = (Dataset.objects.filter(name=name).aggregate(n=Max("version"))["n"] or 0) + 1
    stored = dataset_store.write_encrypted(name=name, version=number, sha256=parsed.sha256, data=parsed.raw)
    written.append(stored.name)
    dataset = Dataset.objects.create(
        name=name,
        version=number,
        file=stored.name,
        sha256=parsed.sha256,
        size_bytes=parsed.size,
        row_count=len(parsed.frame),
        columns=parsed.columns,
        source=source,
        created_by=person(actor),
    )
    DatasetKey.objects.create(dataset=dataset, wrapped=stored.wrapped, kek_id=stored.kek_id)
    audit.record(
        audit.DATASET_CREATED,
        actor=actor,
        target=dataset,
        data={"sha256": dataset.sha256, "rows": dataset.row_count, "encrypted": True, "kek_id": stored.kek_id},
    )
    return dataset


@transaction.atomic
def update_draft(
    version_id: int,
    *,
    actor: Actor,
    card: dict[str, Any],
    sensitive_features: list[str],
    code_repository: str = "",
    code_commit: str = "",
) -> ModelVersion:
    """Edit a draft's card, sensitive features and code reference. The artifact, datasets and
    label are fixed once uploaded: a different model is a new version."""
    require_data_scientist(actor)
    version = ModelVersion.objects.select_for_update().filter(pk=version_id).first()
    if version is None:
        raise NotFound("There is no such version.")
    if version.status != Status.DRAFT:
        raise LifecycleError(
            f"{version} is {version.get_status_display().lower()}; only drafts can be edited.", code="not_editable"
        )
    errors: dict[str, list[str]] = {}
    cleaned = clean_card(card, errors)
    sensitive = clean_names(sensitive_features)
    columns = version.evaluation_dataset.column_names
    check_sensitive_features(sensitive, columns=columns, label_column=version.label_column, errors=errors)
    check_code_commit(code_commit, errors)
    if errors:
        raise SubmissionInvalid(errors)
    model_card = version.card
    before = model_card.content_hash()
    for name, value in cleaned.items():
        setattr(model_card, name, value)
    model_card.save()
    version.sensitive_features = sensitive
    version.code_repository = code_repository or ""
    version.code_commit = code_commit or ""
    version.save(update_fields=["sensitive_features", "code_repository", "code_commit"])
    audit.record(
        audit.VERSION_UPDATED,
        actor=actor,
        target=version,
        data={
            "card_sha256_before": before,
            "card_sha256": model_card.content_hash(),
            "sensitive_features": sensitive,
            "code_commit": version.code_commit,
            "evidence": evidence(model_card),
        },
    )
    return version


def load_version_model(version: ModelVersion) -> Any:
    """Load a version's estimator: the stored bytes must still match the SHA-256 recorded at
    upload (a mismatch is refused and audited), and the allow-list is applied again."""
    try:
        data = read_verified_bytes(version.artifact, version.artifact_sha256)
    except ArtifactIntegrityError as exc:
        with transaction.atomic():
            audit.record(audit.ARTIFACT_TAMPERED, actor=None, target=version, data=exc.details, prove_target=False)
        raise
    return inspect_artifact(data).model
