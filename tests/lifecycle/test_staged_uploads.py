"""A refused version form keeps the files that were not the problem (lifecycle.staging): shown
with their SHA-256, sent again by token, encrypted at rest, and only for the session that
staged them."""

from __future__ import annotations

import hashlib
import pickle
import re
from pathlib import Path

import pytest
from django.test import Client

from lifecycle.models import ModelVersion
from tests.conftest import CARD, stored_files
from tests.lifecycle.test_pages import _form_data

URL = "/registry/models/credit-risk/versions/new/"
pytestmark = pytest.mark.django_db


@pytest.fixture
def staged_dir(settings, tmp_path) -> Path:
    settings.STAGED_UPLOAD_DIR = tmp_path / "staged"
    return settings.STAGED_UPLOAD_DIR


def _tokens(page: str) -> dict[str, str]:
    return dict(re.findall(r'name="staged_(\w+)" value="([^"]+)"', page))


def test_a_card_error_keeps_every_file_and_the_next_post_needs_none(
    client, data_scientist, registered_model, skops_bytes, train_csv, eval_csv, media_root, staged_dir
):
    client.force_login(data_scientist)
    refused = client.post(URL, _form_data(skops_bytes, train_csv, eval_csv, intended_use="TBD"))
    assert refused.status_code == 400 and ModelVersion.objects.count() == 0
    assert stored_files(media_root) == []  # nothing saved: the kept files are apart, encrypted
    page = refused.content.decode()
    tokens = _tokens(page)
    assert set(tokens) == {"artifact", "training_data", "evaluation_data"}
    for data in (skops_bytes, train_csv, eval_csv):
        assert hashlib.sha256(data).hexdigest()[:16] in page  # each kept file's hash is shown
    on_disk = b"".join(p.read_bytes() for p in staged_dir.iterdir())
    assert train_csv[:40] not in on_disk and b"credit_amount" not in on_disk  # never in clear
    again = {
        k: v for k, v in _form_data(b"", b"", b"").items() if k not in ("artifact", "training_data", "evaluation_data")
    }
    saved = client.post(URL, {**again, **CARD, **{f"staged_{f}": t for f, t in tokens.items()}})
    assert saved.status_code == 302, saved.content.decode()[:500]
    version = ModelVersion.objects.get()
    assert version.artifact_sha256 == hashlib.sha256(skops_bytes).hexdigest()
    assert version.training_dataset.sha256 == hashlib.sha256(train_csv).hexdigest()
    assert list(staged_dir.iterdir()) == []  # gone once the version is saved


def test_the_file_that_was_the_problem_is_not_kept(
    client, data_scientist, registered_model, logreg, train_csv, eval_csv, staged_dir
):
    client.force_login(data_scientist)
    refused = client.post(URL, _form_data(pickle.dumps(logreg), train_csv, eval_csv))
    assert refused.status_code == 400
    assert set(_tokens(refused.content.decode())) == {"training_data", "evaluation_data"}


def test_another_session_cannot_use_a_token(
    client, data_scientist, second_scientist, registered_model, skops_bytes, train_csv, eval_csv, staged_dir
):
    client.force_login(data_scientist)
    tokens = _tokens(
        client.post(URL, _form_data(skops_bytes, train_csv, eval_csv, intended_use="TBD")).content.decode()
    )
    other = Client()
    other.force_login(second_scientist)
    again = {
        k: v for k, v in _form_data(b"", b"", b"").items() if k not in ("artifact", "training_data", "evaluation_data")
    }
    response = other.post(URL, {**again, **CARD, **{f"staged_{f}": t for f, t in tokens.items()}})
    assert response.status_code == 400 and ModelVersion.objects.count() == 0
