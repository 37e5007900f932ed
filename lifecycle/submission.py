"""What a new version must be before anything is saved: the model card's rules, the chosen
datasets, the artifact's features checked by a real predict, the personal declaration, the
favourable class and reason texts. validate_submission() runs every check at once and returns
the Submission that lifecycle.services saves; a draft edit asks the same card, sensitive-feature
and code-reference checks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from core.errors import DomainError
from lifecycle import dataset_store
from lifecycle.artifacts import InspectedArtifact, inspect_artifact
from lifecycle.datasets import ParsedDataset, dataset_name_from_filename, parse_csv
from lifecycle.errors import (
    LifecycleError,
    SubmissionInvalid,
    TooLarge,
)
from lifecycle.models import CARD_FIELDS, CARD_SECTIONS, Dataset, ModelVersion, RegisteredModel, Task

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


def clean_card(card: dict[str, Any] | None, errors: dict[str, list[str]], *, required: bool = True) -> dict[str, str]:
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


def _favourable(value: Any, classes: list[Any], task: str, errors: dict[str, list[str]]) -> Any:
    """The declared favourable class as one of the model's classes (forms send text, so "1"
    names the class 1); None (the last class) when none is declared."""
    if value is None or value == "":
        return None
    if task != Task.CLASSIFICATION:
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


def clean_names(names: list[str] | None) -> list[str]:
    """Column names as typed: stripped, blanks dropped."""
    return [s.strip() for s in (names or []) if s and s.strip()]


def check_sensitive_features(
    sensitive: list[str], *, columns: list[str], label_column: str, errors: dict[str, list[str]]
) -> None:
    """Sensitive features are columns of the evaluation data, never its label (at creation and at
    every draft edit)."""
    missing = [s for s in sensitive if s not in columns]
    if missing:
        errors.setdefault("sensitive_features", []).append(
            f"Sensitive feature(s) not in the evaluation data: {', '.join(missing)}."
        )
    if label_column and label_column in sensitive:
        errors.setdefault("sensitive_features", []).append("The label column cannot be a sensitive feature.")


def check_code_commit(code_commit: str, errors: dict[str, list[str]]) -> None:
    if len(code_commit or "") > 64:
        errors.setdefault("code_commit", []).append("At most 64 characters (a commit hash).")


@dataclass(frozen=True)
class Submission:
    """A new version that passed every check at once: what create_version saves."""

    registered: RegisteredModel
    inspected: InspectedArtifact
    artifact_bytes: bytes
    resolved: dict[str, tuple[ParsedDataset, Dataset | None, str]]
    features: list[str]
    label_column: str
    sensitive: list[str]
    personal: list[str]
    subject: str
    parent: ModelVersion | None
    code_repository: str
    code_commit: str
    card: dict[str, str]
    favourable: Any
    reasons: dict[str, str]


def validate_submission(
    *,
    registered: RegisteredModel,
    artifact: Any,
    training: DatasetChoice,
    evaluation: DatasetChoice,
    label_column: str,
    sensitive_features: list[str] | None,
    parent_version: int | None,
    code_repository: str,
    code_commit: str,
    card: dict[str, Any] | None,
    favourable_class: Any,
    reason_texts: dict[str, Any] | None,
    personal_features: list[str] | tuple[str, ...] | None,
    subject_field: str,
    card_complete: bool,
) -> Submission:
    """Every check of a new version (artifact, datasets, columns, a real predict, card, personal
    declaration), all at once: SubmissionInvalid names each field's problems (413 when a file
    was too large). Writes nothing."""
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
    sensitive = clean_names(sensitive_features)
    if not label_column:
        errors.setdefault("label_column", []).append("Name the label column.")
    for field, which in (("training_data", "training"), ("evaluation_data", "evaluation")):
        if field in resolved and label_column and label_column not in resolved[field][0].column_names:
            errors.setdefault("label_column", []).append(
                f"The {which} data has no column {label_column!r} (its columns: "
                f"{', '.join(resolved[field][0].column_names)})."
            )
    if "evaluation_data" in resolved:
        columns = resolved["evaluation_data"][0].column_names
        check_sensitive_features(sensitive, columns=columns, label_column=label_column, errors=errors)
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
            errors.setdefault("parent_version", []).append(f"{registered.name} has no version {parent_version}.")
    check_code_commit(code_commit, errors)
    if len(code_repository or "") > 500:
        errors.setdefault("code_repository", []).append("At most 500 characters.")
    cleaned_card = clean_card(card, errors, required=card_complete)
    favourable = None
    if inspected is not None:
        favourable = _favourable(favourable_class, inspected.classes, inspected.task, errors)
    reasons = _reason_texts(reason_texts, features, errors)

    if errors:
        raise SubmissionInvalid(errors, status=413 if too_large else 400)
    assert inspected is not None
    return Submission(
        registered=registered,
        inspected=inspected,
        artifact_bytes=artifact_bytes,
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
        favourable=favourable,
        reasons=reasons,
    )
