"""Reads that carry a rule: who may see which models and versions."""

from __future__ import annotations

from django.db.models import QuerySet

from core.actors import Actor
from core.roles import roles_of
from lifecycle.models import SERVABLE_STATUSES, Dataset, ModelVersion, RegisteredModel, Status


def can_read_registry(actor: Actor) -> bool:
    """People with a role see everything; an API key bound to no user sees servable versions."""
    return bool(roles_of(actor)) or _is_api_client(actor)


def _is_api_client(actor: Actor) -> bool:
    return getattr(actor, "is_authenticated", False) and not hasattr(actor, "groups")


def visible_models() -> QuerySet[RegisteredModel]:
    return RegisteredModel.objects.select_related("owner").prefetch_related("versions")


def visible_versions(actor: Actor, model: RegisteredModel) -> QuerySet[ModelVersion]:
    versions = model.versions.select_related("training_dataset", "evaluation_dataset", "parent", "created_by")
    if roles_of(actor):
        return versions.order_by("-version")
    return versions.filter(status__in=SERVABLE_STATUSES).order_by("-version")


def production_version(model: RegisteredModel) -> ModelVersion | None:
    return next((v for v in model.versions.all() if v.status == Status.PRODUCTION), None)


def approved_versions(model: RegisteredModel) -> list[ModelVersion]:
    return sorted((v for v in model.versions.all() if v.status == Status.APPROVED), key=lambda v: -v.version)


def readable_datasets() -> QuerySet[Dataset]:
    """The datasets a new version may name: all but those whose key was destroyed."""
    return Dataset.objects.filter(data_key__destroyed_at__isnull=True)
