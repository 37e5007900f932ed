"""Artifacts that would take a worker's memory or stack are refused by name before skops reads
them: arrays are judged by their .npy headers, the schema by its nesting."""

from __future__ import annotations

import io
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

from lifecycle import artifacts
from lifecycle.errors import SubmissionInvalid
from lifecycle.models import ModelVersion
from tests.conftest import make_version, upload


def _rewritten(data: bytes, replace: dict[str, bytes]) -> bytes:
    """The skops zip with some members' bytes replaced (the directory's sizes follow)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            target.writestr(info.filename, replace.get(info.filename, source.read(info.filename)))
    return buffer.getvalue()


def _npy_declaring(shape: tuple[int, ...], body: bytes = b"\0" * 16) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return out.getvalue() + body


def _first_npy(data: bytes) -> str:
    return next(n for n in zipfile.ZipFile(io.BytesIO(data)).namelist() if n.endswith(".npy"))


def test_the_uncompressed_limit_defaults_to_four_artifacts():
    from django.conf import settings

    assert settings.SKOPS_MAX_UNCOMPRESSED_BYTES == 4 * settings.MAX_ARTIFACT_BYTES


def test_an_array_declaring_eight_gigabytes_is_refused_from_its_header_without_allocating(skops_bytes):
    member = _first_npy(skops_bytes)
    crafted = _rewritten(skops_bytes, {member: _npy_declaring((10**9,))})
    assert len(crafted) < len(skops_bytes) + 1000  # a tiny body: only the header lies
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(artifacts.ArtifactRefused) as refused:
            artifacts.inspect_artifact(crafted)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 1
    assert peak < 20 * 1024 * 1024  # numpy's allocations are traced: nothing near 8 GB was taken
    assert refused.value.code == "array_refused" and refused.value.details == {"member": member}
    assert f"member {member} is refused" in refused.value.message
    assert "shape (1000000000,), 8000000000 bytes; at most" in refused.value.message


def test_an_array_declaring_more_than_its_member_holds_is_refused(skops_bytes, settings):
    member = _first_npy(skops_bytes)
    crafted = _rewritten(skops_bytes, {member: _npy_declaring((1_000_000,))})  # 8 MB declared, 16 B held
    with pytest.raises(artifacts.ArtifactRefused, match=f"{member} is refused: .* but holds fewer"):
        artifacts.inspect_artifact(crafted)


def test_a_sparse_matrix_member_is_checked_inside_its_npz(settings):
    import scipy.sparse as sp
    import skops.io as sio

    data = sio.dumps({"matrix": sp.csr_matrix(np.eye(3))})
    member = next(n for n in zipfile.ZipFile(io.BytesIO(data)).namelist() if n.endswith(".npz"))
    npz = io.BytesIO()
    with zipfile.ZipFile(npz, "w") as inner:
        inner.writestr("data.npy", _npy_declaring((10**9,)))
    crafted = _rewritten(data, {member: npz.getvalue()})
    with pytest.raises(artifacts.ArtifactRefused, match=f"{member} is refused: its member data.npy: .*8000000000"):
        artifacts.inspect_artifact(crafted)


def test_real_models_with_arrays_and_sparse_matrices_still_load(german, skops_bytes):
    import skops.io as sio

    from lifecycle import demo_data

    forest = demo_data.train_random_forest(german[0], n_estimators=3)
    assert artifacts.inspect_artifact(sio.dumps(forest)).task == "classification"
    assert artifacts.inspect_artifact(skops_bytes).task == "classification"


@pytest.mark.django_db
def test_a_schema_nested_a_thousand_deep_is_refused_by_name_and_nothing_is_saved(
    data_scientist, registered_model, skops_bytes, train_csv, eval_csv
):
    deep = ('{"a":' * 1000 + "1" + "}" * 1000).encode()
    crafted = _rewritten(skops_bytes, {"schema.json": deep})
    with pytest.raises(artifacts.ArtifactRefused, match="nested more than 100 levels") as refused:
        artifacts.inspect_artifact(crafted)
    assert refused.value.code == "schema_too_deep"
    shallow_but_deep_enough = ("[" * 150 + "]" * 150).encode()  # parses, but deeper than the limit
    with pytest.raises(artifacts.ArtifactRefused, match="nested more than 100 levels"):
        artifacts.inspect_artifact(_rewritten(skops_bytes, {"schema.json": shallow_but_deep_enough}))
    with pytest.raises(SubmissionInvalid) as invalid:
        make_version(data_scientist, registered_model, crafted, train_csv, eval_csv)
    assert "nested more than 100 levels" in " ".join(invalid.value.errors["artifact"])
    assert not ModelVersion.objects.exists()


def _without(logreg, name: str) -> bytes:
    """The fitted model dumped with skops after one attribute of its state was removed (as a
    hand-edited or hostile schema.json would have it)."""
    import copy

    import skops.io as sio

    model = copy.deepcopy(logreg)
    estimator = model.steps[-1][1] if hasattr(model, "steps") else model
    delattr(estimator, name)
    return sio.dumps(model)


@pytest.mark.django_db
def test_a_skops_state_lacking_a_parameter_is_a_named_400_at_upload(
    api_client, data_scientist, registered_model, logreg, train_csv, eval_csv
):
    crafted = _without(logreg, "C")
    with pytest.raises(artifacts.ArtifactRefused, match="lacks") as refused:
        artifacts.inspect_artifact(crafted)
    assert refused.value.code == "incomplete_state" and "'C'" in refused.value.message
    api_client.force_authenticate(data_scientist)
    response = api_client.post(
        "/api/v1/models/credit-risk/versions/",
        {
            "artifact": upload("model.skops", crafted),
            "training_data": upload("train.csv", train_csv, "text/csv"),
            "evaluation_data": upload("eval.csv", eval_csv, "text/csv"),
            "label_column": "risk",
        },
        format="multipart",
    )
    assert response.status_code == 400, response.content
    assert "lacks the parameter 'C'" in " ".join(response.json()["error"]["details"]["artifact"])
    assert not ModelVersion.objects.exists()
