"""The only way serving reaches a model version: it can only return servable versions.

Asked on every request, so a retired version stops answering in every process as soon as the
retirement commits; no process keeps a stale "servable" answer. It is one precompiled SQL
statement (the ORM's query building cost more than the prediction itself, BENCHMARKS.md)."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models import QuerySet

from lifecycle.models import SERVABLE_STATUSES, ModelVersion, RegisteredModel, Status
from serving import rawsql
from serving.errors import ServingError
from serving.models import PredictionLog

FIELDS = [
    ModelVersion._meta.get_field(name)
    for name in (
        "id",
        "registered_model",
        "version",
        "status",
        "task",
        "input_schema",
        "classes",
        "artifact_sha256",
        "review_round",
        "artifact",
    )
]
SQL = rawsql.select_sql(
    ModelVersion,
    FIELDS,
    "JOIN lifecycle_registeredmodel m ON m.id = t.registered_model_id "
    "WHERE m.name = %s AND (t.status = 'production' OR t.version = %s)",
)


def _version_from_row(row: tuple) -> ModelVersion:
    return rawsql.instance(ModelVersion, FIELDS, row)


def get_servable_version(model_name: str, version: int | None = None) -> ModelVersion:
    """Production by default, or the named version if it is approved or in production.
    Unknown model or version: 404; known but not servable: 403 version_not_servable."""
    if version is not None and not 0 < version < 2**31:  # found by schemathesis: beyond any column range
        raise ServingError(f"{model_name} has no version {version}.", status=404, code="not_found")
    with connection.cursor() as cursor:
        cursor.execute(SQL, [model_name, version if version is not None else -1])
        rows = cursor.fetchall()
    found = None
    for row in rows:
        candidate = _version_from_row(row)
        if version is None and candidate.status == Status.PRODUCTION:
            found = candidate
            break
        if version is not None and candidate.version == version:
            found = candidate
            break
    if found is None:
        if not RegisteredModel.objects.filter(name=model_name).exists():
            raise ServingError(f"There is no model named {model_name!r}.", status=404, code="not_found")
        if version is None:
            raise ServingError(
                f"{model_name} has no version in production; name an approved version explicitly.",
                status=403,
                code="version_not_servable",
            )
        raise ServingError(f"{model_name} has no version {version}.", status=404, code="not_found")
    if found.status not in SERVABLE_STATUSES:
        raise ServingError(
            f"{model_name} v{version} is {found.get_status_display().lower()}: only approved and production "
            "versions are served.",
            status=403,
            code="version_not_servable",
            details={"status": found.status},
        )
    return found


def logged_predictions(
    *,
    model: str = "",
    version: int | None = None,
    since: Any = None,
    until: Any = None,
    outcome: str = "",
    request_id: str = "",
) -> QuerySet[PredictionLog]:
    """The prediction log for auditors, filtered; newest first is the paginator's job."""
    records = PredictionLog.objects.all()
    if model:
        records = records.filter(model_name=model)
    if version is not None:
        records = records.filter(version_number=version)
    if since is not None:
        records = records.filter(created_at__gte=since)
    if until is not None:
        records = records.filter(created_at__lt=until)
    if outcome:
        records = records.filter(outcome=outcome)
    if request_id:
        records = records.filter(request_id=request_id)
    return records
