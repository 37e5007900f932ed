"""The only way serving reaches a model version: it can only return servable versions.

Asked on every request (one indexed query), so a retired version stops answering in every
process as soon as the retirement commits; no process keeps a stale "servable" answer."""

from __future__ import annotations

from lifecycle.models import SERVABLE_STATUSES, ModelVersion, RegisteredModel, Status
from serving.errors import ServingError


def get_servable_version(model_name: str, version: int | None = None) -> ModelVersion:
    """Production by default, or the named version if it is approved or in production.
    Unknown model or version: 404; known but not servable: 403 version_not_servable."""
    model = RegisteredModel.objects.filter(name=model_name).only("pk", "name").first()
    if model is None:
        raise ServingError(f"There is no model named {model_name!r}.", status=404, code="not_found")
    rows = ModelVersion.objects.filter(registered_model=model).select_related("registered_model")
    if version is None:
        found = rows.filter(status=Status.PRODUCTION).first()
        if found is None:
            raise ServingError(
                f"{model_name} has no version in production; name an approved version explicitly.",
                status=403,
                code="version_not_servable",
            )
        return found
    found = rows.filter(version=version).first()
    if found is None:
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
