"""Stored artifacts are checked against their upload hash on every load."""

from __future__ import annotations

import pytest

from core.models import AuditEvent
from lifecycle import artifacts, services
from lifecycle.errors import ArtifactIntegrityError

pytestmark = pytest.mark.django_db


def test_a_stored_artifact_loads_and_predicts(draft_version, german):
    model = services.load_version_model(draft_version)
    features = draft_version.feature_names
    assert len(model.predict(german[1][features].head(3))) == 3


def test_changing_the_artifact_bytes_on_disk_is_detected_on_the_next_load(draft_version):
    path = draft_version.artifact.path
    with open(path, "r+b") as handle:
        handle.seek(-1, 2)
        last = handle.read(1)
        handle.seek(-1, 2)
        handle.write(bytes([last[0] ^ 0xFF]))
    with pytest.raises(ArtifactIntegrityError, match="changed after upload"):
        services.load_version_model(draft_version)
    event = AuditEvent.objects.get(action="lifecycle.artifact.tampered")
    assert event.data["expected_sha256"] == draft_version.artifact_sha256


def test_a_submitted_version_with_a_tampered_artifact_is_flagged_by_the_check(
    draft_version, data_scientist, django_capture_on_commit_callbacks, eager_tasks
):
    from governance import workflow

    with open(draft_version.artifact.path, "ab") as handle:
        handle.write(b"appended")
    with django_capture_on_commit_callbacks(execute=True):
        workflow.submit_version(draft_version.pk, actor=data_scientist)
    assert AuditEvent.objects.filter(action="lifecycle.artifact.tampered").count() == 5  # one per check
    statuses = set(draft_version.checks.values_list("status", flat=True))
    assert statuses == {"error"}
    assert "changed after upload" in draft_version.checks.first().error


def test_the_allow_list_comes_from_settings(settings, skops_bytes):
    settings.SKOPS_ALLOWED_TYPES = "lifecycle.allowlist.BUILTIN_TYPES"  # scikit-learn no longer trusted
    with pytest.raises(artifacts.ArtifactRefused, match="sklearn.pipeline.Pipeline"):
        artifacts.inspect_artifact(skops_bytes)


def test_a_zip_bomb_is_refused_before_skops_opens_it(settings, skops_bytes):
    settings.SKOPS_MAX_UNCOMPRESSED_BYTES = 1000
    with pytest.raises(artifacts.ArtifactRefused, match="unpacks to"):
        artifacts.inspect_artifact(skops_bytes)
    settings.SKOPS_MAX_UNCOMPRESSED_BYTES = 10**9
    settings.SKOPS_MAX_ZIP_ENTRIES = 2
    with pytest.raises(artifacts.ArtifactRefused, match="entries"):
        artifacts.inspect_artifact(skops_bytes)


def test_a_zip_that_is_not_skops_is_refused():
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x04K\x01.")
    with pytest.raises(artifacts.ArtifactRefused, match="no skops schema.json"):
        artifacts.inspect_artifact(buffer.getvalue())


def test_something_that_is_not_an_estimator_is_refused():
    import numpy as np
    import skops.io as sio

    with pytest.raises(artifacts.ArtifactRefused, match="no predict"):
        artifacts.inspect_artifact(sio.dumps(np.arange(3)))


def test_recorded_metadata(draft_version):
    assert draft_version.sklearn_version.startswith("1.")
    assert draft_version.params["steps"][1][1]["__estimator__"] == "LogisticRegression"
    assert draft_version.classes == [0, 1]
    assert "sklearn.linear_model._logistic.LogisticRegression" in draft_version.artifact_types


def test_a_forest_loads_and_its_trees_are_checked(german):
    import skops.io as sio

    from lifecycle import demo_data

    forest = demo_data.train_random_forest(german[0], n_estimators=5)
    assert artifacts.inspect_artifact(sio.dumps(forest)).estimator_class == "sklearn.pipeline.Pipeline"


def test_a_tree_with_out_of_range_children_is_refused(german):
    """A crafted Tree would make scikit-learn read memory out of bounds at predict time."""
    import numpy as np
    import skops.io as sio
    from sklearn.tree import DecisionTreeClassifier

    from lifecycle import demo_data

    X, y = german[0][demo_data.NUMERIC], german[0]["risk"]
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    state = tree.tree_.__getstate__()
    nodes = state["nodes"].copy()
    nodes["left_child"][0] = 10_000  # points far outside the node array
    state["nodes"] = nodes
    tree.tree_.__setstate__(state)
    with pytest.raises(artifacts.ArtifactRefused, match="child index is out of range"):
        artifacts.inspect_artifact(sio.dumps(tree))
    assert np.asarray(tree.tree_.children_left)[0] == 10_000
