"""Checks run on a submitted version. For now: the stored artifact still matches the hash
recorded at upload and loads under the allow-list (the validation and fairness checks
build on this)."""

from __future__ import annotations

from django.db import transaction

from governance import audit
from lifecycle.errors import ArtifactIntegrityError, LifecycleError
from lifecycle.models import ModelVersion
from lifecycle.services import load_version_model


def verify_stored_artifact(version_id: int) -> str:
    """Load the stored artifact as serving would and record the outcome."""
    version = ModelVersion.objects.select_related("registered_model").get(pk=version_id)
    try:
        load_version_model(version)
    except ArtifactIntegrityError:
        return "tampered"  # load_version_model recorded the event
    except (LifecycleError, OSError) as exc:
        with transaction.atomic():
            audit.record(audit.ARTIFACT_TAMPERED, actor=None, target=version, data={"error": str(exc)})
        return "unloadable"
    with transaction.atomic():
        audit.record(audit.ARTIFACT_VERIFIED, actor=None, target=version, data={"sha256": version.artifact_sha256})
    return "verified"
