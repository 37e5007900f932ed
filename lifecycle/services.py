"""Writes to the registry. Each function validates everything first, then saves in one
transaction with its audit event; a refused call leaves no row and no file behind."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Max

from core import audit
from core.errors import DomainError
from core.evidence import evidence
from core.roles import DATA_SCIENTISTS, has_role
from lifecycle import dataset_store, materiality
from lifecycle.artifacts import InspectedArtifact, inspect_artifact, read_verified_bytes
from lifecycle.datasets import ParsedDataset, dataset_name_from_filename, parse_csv
from lifecycle.errors import (
    ArtifactIntegrityError,
    Forbidden,
    LifecycleError,
    NotFound,
    SubmissionInvalid,
    TooLarge,
)
from lifecycle.models import (
    CARD_FIELDS,
    CARD_SECTIONS,
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

log = logging.getLogger(__name__)
CARD_TITLES = {name: title.lower() for name, title, _ in CARD_SECTIONS}
MAX_CARD_SECTION_CHARS = 50_000
# Model card sections a version is never submitted without: required at creation and on every
# draft edit, so no draft reaches review with them blank (the data notes come from the lineage).
REQUIRED_CARD_FIELDS = (
    "intended_use",
    "out_of_scope_uses",
    "factors",
    "metrics",
    "ethical_considerations",
    "caveats_and_recommendations",
)
PREDICT_PROBE_ROWS = 5
# What a required section must not be (docs/decisions-duties.md): a note that it is still to be
# written, in brackets or not, a TBD/TODO marker or filler text; and it needs three words at least.
_PLACEHOLDER = re.compile(
    r"^\s*(\[[^\[\]]*\]|<[^<>]*>|\{[^{}]*\})\s*\.?\s*$"  # the whole text in one pair of brackets
    r"|\bto\s+be\s+(completed|written|filled|provided|defined|determined|confirmed|added)\b"
    r"|\b(TBD|TBC|TODO|FIXME)\b|lorem\s+ipsum",
    re.IGNORECASE | re.DOTALL,
)
MIN_CARD_WORDS = 3


def card_section_problem(name: str, text: str) -> str:
    """Why a required card section's text is no evidence ("" when it is): blank, a placeholder,
    or fewer than three words. The one test, at creation, at a draft edit and at submission."""
    title = CARD_TITLES.get(name, name)
    text = (text or "").strip()
    if not text:
        return f"The model card's {title} section is required."
    if _PLACEHOLDER.search(text):
        return f"The model card's {title} section holds a placeholder, not the text itself: write it."
    if len(re.findall(r"\w+", text)) < MIN_CARD_WORDS:
        return f"The model card's {title} section needs at least three words."
    return ""


def require_data_scientist(actor: Any) -> None:
    if not has_role(actor, DATA_SCIENTISTS):
        raise Forbidden("Only members of the data-scientists group may do this.")


@transaction.atomic
def register_model(
    *,
    actor: Any,
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
                owner=actor,
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


@dataclass
class DatasetChoice:
    """Either a new upload or the id of an existing dataset."""

    upload: Any = None
    dataset_id: int | None = None


def _read_upload(upload: Any, *, limit: int, field: str) -> bytes:
    size = getattr(upload, "size", None)
    if size is not None and size > limit:
        raise TooLarge(f"The file is {size} bytes; the limit is {limit} bytes.", field=field)
    upload.seek(0)
    data = upload.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"The file is larger than the limit of {limit} bytes.", field=field)
    return data


def _resolve_dataset(choice: DatasetChoice, *, field: str) -> tuple[ParsedDataset, Dataset | None, str]:
    """Parse the chosen dataset. Returns (parsed, existing row or None, name for a new row)."""
    if choice.upload is not None and choice.dataset_id:
        raise LifecycleError("Upload a file or choose an existing dataset, not both.", field=field)
    if choice.dataset_id:
        existing = Dataset.objects.filter(pk=choice.dataset_id).first()
        if existing is None:
            raise LifecycleError(f"There is no dataset with id {choice.dataset_id}.", field=field)
        try:
            data = dataset_store.read_dataset_bytes(existing)
        except DomainError as exc:  # a destroyed key, a wrong LOG_KEK, a changed file: named beside the field
            exc.field = field
            raise
        return parse_csv(data, field=field), existing, existing.name
    if choice.upload is None:
        raise LifecycleError("Upload a CSV file or choose an existing dataset.", field=field)
    data = _read_upload(choice.upload, limit=settings.MAX_DATASET_BYTES, field=field)
    parsed = parse_csv(data, field=field)
    return parsed, None, dataset_name_from_filename(getattr(choice.upload, "name", "") or "dataset")


def _check_features(
    artifact: InspectedArtifact, evaluation: ParsedDataset, training: ParsedDataset, label: str
) -> tuple[list[str], list[str]]:
    """The model's feature columns, checked against both datasets; returns (features, errors)."""
    errors: list[str] = []
    if artifact.feature_names is not None:
        features = artifact.feature_names
    else:
        features = [c for c in evaluation.column_names if c != label]
        if artifact.n_features is not None and artifact.n_features != len(features):
            errors.append(
                f"The model was fitted on {artifact.n_features} unnamed features but the evaluation data has "
                f"{len(features)} feature columns. Fit it on a pandas DataFrame so it records its column names."
            )
            return features, errors
    if label in features:
        errors.append(f"The model uses the label column {label!r} as a feature.")
    for which, parsed in (("evaluation", evaluation), ("training", training)):
        missing = [f for f in features if f not in parsed.column_names]
        if missing:
            errors.append(f"The model expects feature(s) missing from the {which} data: {', '.join(missing)}.")
    if errors:
        return features, errors
    probe = evaluation.frame[features].head(PREDICT_PROBE_ROWS)
    try:
        artifact.model.predict(probe)
    except Exception as exc:  # any failure of the real model on real rows is the user's to see
        errors.append(f"The model failed to predict on the evaluation data's first rows ({type(exc).__name__}: {exc}).")
    return features, errors


def _lineage_note(dataset: ParsedDataset, name: str, label: str) -> str:
    cols = ", ".join(f"{c['name']} ({c['dtype']})" for c in dataset.columns)
    return (
        f"Dataset {name}: {len(dataset.frame)} rows, SHA-256 {dataset.sha256}. Label column: {label}. Columns: {cols}."
    )


def _clean_card(card: dict[str, Any] | None, errors: dict[str, list[str]], *, required: bool = True) -> dict[str, str]:
    """The card's sections, stripped; required sections checked unless `required` is False (an
    import leaves missing ones empty, and submission asks for them)."""
    cleaned: dict[str, str] = {}
    for name in CARD_FIELDS:
        value = (card or {}).get(name) or ""
        if not isinstance(value, str):
            errors.setdefault(name, []).append("Must be text.")
            continue
        if len(value) > MAX_CARD_SECTION_CHARS:
            errors.setdefault(name, []).append(f"At most {MAX_CARD_SECTION_CHARS} characters.")
        cleaned[name] = value.strip()
        if name in REQUIRED_CARD_FIELDS and (required or cleaned[name]):
            problem = card_section_problem(name, cleaned[name])
            if problem:
                errors.setdefault(name, []).append(problem)
    return cleaned


BUSINESS_KEY = "business_key"
# personal_features=SENSITIVE_INPUTS: the sensitive features that are model inputs (what the
# form and the API default to: sensitive features are personal unless the scientist says otherwise)
SENSITIVE_INPUTS = ("__sensitive_inputs__",)


def _personal_declaration(
    personal_features: list[str] | tuple[str, ...] | None, subject_field: str, features: list[str],
    sensitive: list[str], errors: dict[str, list[str]],
) -> tuple[list[str], str]:  # fmt: skip
    """The personal input fields and the data subject's field (an input, or "business_key"; ""
    when none is named: the values are then encrypted under one key per month, erased by
    retention only). The interfaces offer the sensitive features as personal by default."""
    if personal_features == SENSITIVE_INPUTS or list(personal_features or []) == list(SENSITIVE_INPUTS):
        personal_features = [s for s in sensitive if s in features]
    named = [p.strip() for p in (personal_features or []) if p and p.strip()]
    subject = (subject_field or "").strip()
    if len(set(named)) != len(named):
        errors.setdefault("personal_features", []).append("A personal feature is listed twice.")
    if features:
        unknown = [p for p in named if p not in features]
        if unknown:
            errors.setdefault("personal_features", []).append(
                f"Personal feature(s) that are not model inputs: {', '.join(unknown)}."
            )
        if subject and subject != BUSINESS_KEY and subject not in features:
            errors.setdefault("subject_field", []).append(
                f"The subject field must be a model input or {BUSINESS_KEY!r}; {subject!r} is neither."
            )
    if subject and not named:
        errors.setdefault("personal_features", []).append("A subject field needs at least one personal feature.")
    return sorted(set(named)), subject


def create_version(
    *,
    actor: Any,
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

    errors: dict[str, list[str]] = {}
    too_large = False

    def fail(exc: DomainError, default_field: str) -> None:
        nonlocal too_large
        too_large = too_large or isinstance(exc, TooLarge)
        errors.setdefault(exc.field or default_field, []).append(exc.message)

    inspected: InspectedArtifact | None = None
    artifact_bytes = b""
    if artifact is None:
        errors["artifact"] = ["Upload the model artifact (a .skops file)."]
    else:
        try:
            artifact_bytes = _read_upload(artifact, limit=settings.MAX_ARTIFACT_BYTES, field="artifact")
            inspected = inspect_artifact(artifact_bytes)
        except DomainError as exc:
            fail(exc, "artifact")

    resolved: dict[str, tuple[ParsedDataset, Dataset | None, str]] = {}
    for field, choice in (("training_data", training), ("evaluation_data", evaluation)):
        try:
            resolved[field] = _resolve_dataset(choice, field=field)
        except DomainError as exc:
            fail(exc, field)

    label_column = (label_column or "").strip()
    sensitive = [s.strip() for s in (sensitive_features or []) if s and s.strip()]
    if not label_column:
        errors.setdefault("label_column", []).append("Name the label column.")
    for field, which in (("training_data", "training"), ("evaluation_data", "evaluation")):
        if field in resolved and label_column and label_column not in resolved[field][0].column_names:
            errors.setdefault("label_column", []).append(
                f"The {which} data has no column {label_column!r} (its columns: "
                f"{', '.join(resolved[field][0].column_names)})."
            )
    if "evaluation_data" in resolved:
        eval_columns = resolved["evaluation_data"][0].column_names
        missing = [s for s in sensitive if s not in eval_columns]
        if missing:
            errors.setdefault("sensitive_features", []).append(
                f"Sensitive feature(s) not in the evaluation data: {', '.join(missing)}."
            )
        if label_column and label_column in sensitive:
            errors.setdefault("sensitive_features", []).append("The label column cannot be a sensitive feature.")
    if len(set(sensitive)) != len(sensitive):
        errors.setdefault("sensitive_features", []).append("A sensitive feature is listed twice.")

    features: list[str] = []
    if inspected is not None and len(resolved) == 2 and "label_column" not in errors:
        features, feature_errors = _check_features(
            inspected, resolved["evaluation_data"][0], resolved["training_data"][0], label_column
        )
        if feature_errors:
            errors.setdefault("artifact", []).extend(feature_errors)

    personal, subject = _personal_declaration(personal_features, subject_field, features, sensitive, errors)

    parent: ModelVersion | None = None
    if parent_version:
        parent = ModelVersion.objects.filter(registered_model=registered, version=parent_version).first()
        if parent is None:
            errors.setdefault("parent_version", []).append(f"{model_name} has no version {parent_version}.")
    if len(code_commit or "") > 64:
        errors.setdefault("code_commit", []).append("At most 64 characters (a commit hash).")
    if len(code_repository or "") > 500:
        errors.setdefault("code_repository", []).append("At most 500 characters.")
    cleaned_card = _clean_card(card, errors, required=card_complete)
    favourable = None
    if inspected is not None:
        favourable = _favourable(favourable_class, inspected.classes, inspected.task, errors)
    reasons = _reason_texts(reason_texts, features, errors)

    if errors:
        raise SubmissionInvalid(errors, status=413 if too_large else 400)
    assert inspected is not None

    written: list[str] = []
    try:
        version = _save_version(
            actor=actor,
            registered=registered,
            inspected=inspected,
            resolved=resolved,
            features=features,
            label_column=label_column,
            sensitive=sensitive,
            personal=personal,
            subject=subject,
            parent=parent,
            code_repository=code_repository or "",
            code_commit=code_commit or "",
            card=cleaned_card,
            dataset_source=dataset_source,
            artifact_bytes=artifact_bytes,
            written=written,
            favourable=favourable,
            reasons=reasons,
        )
    except BaseException:
        # The transaction rolled back: remove the files it wrote so nothing is left behind.
        for name in written:
            default_storage.delete(name)
        raise
    return version


@transaction.atomic
def _save_version(
    *,
    actor: Any,
    registered: RegisteredModel,
    inspected: InspectedArtifact,
    resolved: dict[str, tuple[ParsedDataset, Dataset | None, str]],
    features: list[str],
    label_column: str,
    sensitive: list[str],
    personal: list[str],
    subject: str,
    parent: ModelVersion | None,
    code_repository: str,
    code_commit: str,
    card: dict[str, str],
    dataset_source: str,
    artifact_bytes: bytes,
    written: list[str],
    favourable: Any = None,
    reasons: dict[str, str] | None = None,
) -> ModelVersion:
    # Lock the registered model so concurrent submissions get distinct version numbers.
    registered = RegisteredModel.objects.select_for_update().get(pk=registered.pk)
    datasets: dict[str, Dataset] = {}
    for field, (parsed, existing, name) in resolved.items():
        if existing is not None:
            _require_live_dataset(existing.pk, field=field)
        datasets[field] = existing or _store_dataset(
            actor=actor, parsed=parsed, name=name, source=dataset_source, written=written
        )
    number = (registered.versions.aggregate(n=Max("version"))["n"] or 0) + 1
    artifact_name = default_storage.save(
        f"artifacts/{registered.name}/v{number}-{inspected.sha256[:16]}.skops", ContentFile(artifact_bytes)
    )
    written.append(artifact_name)
    evaluation = resolved["evaluation_data"][0]
    dtypes = {c["name"]: c["dtype"] for c in evaluation.columns}
    schema = [{"name": f, "dtype": dtypes[f]} for f in features]
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
        sensitive_features=sensitive,
        personal_features=personal,
        subject_field=subject,
        training_dataset=datasets["training_data"],
        evaluation_dataset=datasets["evaluation_data"],
        parent=parent,
        code_repository=code_repository,
        code_commit=code_commit,
        created_by=actor,
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


def _favourable(value: Any, classes: list[Any], task: str, errors: dict[str, list[str]]) -> Any:
    """The declared favourable class as one of the model's classes (forms send text, so "1"
    names the class 1); None (the last class) when none is declared."""
    if value is None or value == "":
        return None
    if task != "classification":
        errors.setdefault("favourable_class", []).append("Only a classifier has a favourable class.")
        return None
    for c in classes:
        if (type(c) is type(value) and c == value) or str(c) == str(value).strip():
            return c
    errors.setdefault("favourable_class", []).append(
        f"{value!r} is not one of the model's classes ({', '.join(str(c) for c in classes)})."
    )
    return None


def _reason_texts(value: dict[str, Any] | None, features: list[str], errors: dict[str, list[str]]) -> dict[str, str]:
    """Reason texts per input feature, for adverse-action notices; each names a model input."""
    cleaned: dict[str, str] = {}
    for name, text in (value or {}).items():
        text = str(text or "").strip()
        if not text:
            continue
        if features and name not in features:
            errors.setdefault("reason_texts", []).append(f"{name!r} is not an input of the model.")
        elif len(text) > 300:
            errors.setdefault("reason_texts", []).append(f"The reason text of {name!r} is longer than 300 characters.")
        else:
            cleaned[str(name)] = text
    return cleaned


def parse_reason_lines(text: str) -> dict[str, str]:
    """ "feature: reason text" per line (the form's and the API's text shape) as a dict."""
    reasons: dict[str, str] = {}
    for line in (text or "").splitlines():
        if ":" in line:
            name, _, reason = line.partition(":")
            if name.strip():
                reasons[name.strip()] = reason.strip()
    return reasons


def _require_live_dataset(dataset_id: int, *, field: str) -> None:
    """An existing dataset named by a new version: locked, so that destroying its key
    (governance.datasets, which locks it too) either sees this version or is seen here."""
    dataset = Dataset.objects.select_for_update().get(pk=dataset_id)
    key = DatasetKey.objects.filter(dataset=dataset).first()
    if key is not None and key.destroyed_at is not None:
        raise dataset_store.key_destroyed(dataset, key, field=field)


def _store_dataset(*, actor: Any, parsed: ParsedDataset, name: str, source: str, written: list[str]) -> Dataset:
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
        created_by=actor,
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
    actor: Any,
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
    cleaned = _clean_card(card, errors)
    sensitive = [s.strip() for s in sensitive_features if s and s.strip()]
    columns = version.evaluation_dataset.column_names
    missing = [s for s in sensitive if s not in columns]
    if missing:
        errors.setdefault("sensitive_features", []).append(
            f"Sensitive feature(s) not in the evaluation data: {', '.join(missing)}."
        )
    if version.label_column in sensitive:
        errors.setdefault("sensitive_features", []).append("The label column cannot be a sensitive feature.")
    if len(code_commit or "") > 64:
        errors.setdefault("code_commit", []).append("At most 64 characters (a commit hash).")
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
