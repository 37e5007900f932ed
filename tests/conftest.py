"""Personas, real demo data and real skops artifacts shared by the whole suite."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest
import skops.io as sio
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from core.actors import Actor
from core.roles import AUDITORS, CASE_OFFICERS, DATA_SCIENTISTS, RISK_OFFICERS
from lifecycle import demo_data, services, submission
from lifecycle.models import CARD_FIELDS, ModelVersion, RegisteredModel
from tests.factories import RegisteredModelFactory, UserFactory

PASSWORD = "correct-horse-battery"


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Path) -> Path:
    """Every test stores files in its own folder, so 'no file left behind' can be checked."""
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = str(root)
    return root


@pytest.fixture(autouse=True)
def checkpoints_in_tmp(settings: Any, tmp_path: Path) -> Path:
    """Each test's checkpoints (and, beside them, its witness's copies) in its own folder: a witness
    that saw another test's chain would rightly refuse this one's."""
    settings.CHECKPOINT_DIR = tmp_path / "checkpoints"
    settings.CHECKPOINT_WITNESS_DIR = ""
    return settings.CHECKPOINT_DIR


def stored_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


APPEND_ONLY_TABLES = ("governance_auditevent", "serving_predictionlog")


def pytest_configure(config: Any) -> None:
    # Personas are created in nearly every test: Django's production password hasher was most of
    # their cost. Logging in through the pages still checks real passwords, with a fast hash.
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # (tests run with DEBUG=False, where the prediction log's MAC key must be configured)
    settings.LOG_MAC_KEY = "test-log-mac-key-not-a-secret"
    settings.AUDIT_MAC_KEY = "test-audit-mac-key-not-a-secret"
    settings.CHECKPOINT_WITNESS_KEY = "77" * 32  # the checkpoint witness's cosigning key (compliance.checkpoints)
    settings.LOG_KEK = "5a" * 32  # the personal data's key encryption key (serving.personal)
    _own_broker_database_per_xdist_worker(settings)


def _own_broker_database_per_xdist_worker(settings: Any) -> None:
    """Under pytest-xdist (make test runs each suite on two processes) every process has its own
    PostgreSQL test database (pytest-django's _gw<n> suffix) and here its own Redis database, the
    next ones after the suite's: its worker must not take the other process's tasks, and its
    flushes must not empty the other's queue. The children a test starts (gunicorn, a worker)
    inherit it through the environment."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    url = settings.CELERY_BROKER_URL
    if not worker.startswith("gw") or not url.startswith("redis://"):
        return
    base, _, number = url.rpartition("/")
    own = f"{base}/{int(number or 0) + 1 + int(worker[2:])}"
    settings.CELERY_BROKER_URL = os.environ["CELERY_BROKER_URL"] = own
    from config.celery import app

    app.conf.broker_url = own


@pytest.fixture(autouse=True)
def _fresh_serving_caches() -> Any:
    """Each test's database starts again at the same ids: what a previous test's process
    remembered (loaded models, resolved versions, client keys) must not leak into the next."""
    from core import caches

    caches.clear_all()
    yield
    caches.clear_all()


@pytest.fixture(autouse=True)
def _flushable_append_only_tables(request: pytest.FixtureRequest) -> Any:
    """Transactional tests end with a TRUNCATE of every table, which the append-only triggers
    refuse on PostgreSQL: switch them off for that cleanup only (the next test turns them on).
    On SQLite the flush is a DELETE of every row, which the ledger's never-deleted triggers
    refuse: they are dropped for it and put back at the start of every test that uses the
    database (tests.ledger)."""
    marker = request.node.get_closest_marker("django_db")
    transactional = "transactional_db" in request.fixturenames or bool(marker and marker.kwargs.get("transaction"))
    if not transactional and "db" not in request.fixturenames and marker is None:
        yield
        return
    # set up inside this fixture, so torn down after it
    request.getfixturevalue("transactional_db" if transactional else "db")
    from django.db import connection

    from tests.ledger import drop_delete_triggers, ensure_triggers

    if connection.vendor == "sqlite":
        ensure_triggers()
    if transactional and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for table in APPEND_ONLY_TABLES:
                cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    yield
    if not transactional:
        return
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for table in APPEND_ONLY_TABLES:
                cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    else:
        drop_delete_triggers()


@pytest.fixture
def eager_tasks() -> Any:
    """Run Celery tasks in-process for this test, whatever broker the suite is configured with
    (the services suite proves the real worker separately)."""
    from config.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


# --- personas ---------------------------------------------------------------------------
@pytest.fixture
def data_scientist(db: None) -> Any:
    return UserFactory(username="dana", roles=[DATA_SCIENTISTS])


@pytest.fixture
def second_scientist(db: None) -> Any:
    return UserFactory(username="sam", roles=[DATA_SCIENTISTS])


@pytest.fixture
def risk_officer(db: None) -> Any:
    return UserFactory(username="rita", roles=[RISK_OFFICERS], is_staff=True)


@pytest.fixture
def second_officer(db: None) -> Any:
    return UserFactory(username="omar", roles=[RISK_OFFICERS], is_staff=True)


@pytest.fixture
def auditor(db: None) -> Any:
    return UserFactory(username="audrey", roles=[AUDITORS])


@pytest.fixture
def case_officer(db: None) -> Any:
    return UserFactory(username="cora", roles=[CASE_OFFICERS])


@pytest.fixture
def outsider(db: None) -> Any:
    return UserFactory(username="olly", roles=[])


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


# --- data and artifacts -----------------------------------------------------------------
@pytest.fixture(scope="session")
def german() -> Any:
    return demo_data.split(demo_data.load_german_credit())


@pytest.fixture(scope="session")
def train_csv(german: Any) -> bytes:
    return demo_data.to_csv_bytes(german[0])


@pytest.fixture(scope="session")
def eval_csv(german: Any) -> bytes:
    return demo_data.to_csv_bytes(german[1])


@pytest.fixture(scope="session")
def logreg(german: Any) -> Any:
    return demo_data.train_logistic_regression(german[0])


@pytest.fixture(scope="session")
def skops_bytes(logreg: Any) -> bytes:
    return sio.dumps(logreg)


def upload(name: str, data: bytes, content_type: str = "application/octet-stream") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


CARD = {name: f"{name.replace('_', ' ').capitalize()} written by the data scientist." for name in CARD_FIELDS}
CARD["training_data_notes"] = ""  # left empty: pre-filled from lineage


@pytest.fixture
def registered_model(data_scientist: Any) -> RegisteredModel:
    return RegisteredModelFactory(name="credit-risk", owner=data_scientist)


def make_version(
    actor: Actor, model: RegisteredModel, skops_bytes: bytes, train_csv: bytes, eval_csv: bytes, **overrides: Any
) -> ModelVersion:
    kwargs: dict[str, Any] = {
        "actor": actor,
        "model_name": model.name,
        "artifact": upload("model.skops", skops_bytes),
        "training": submission.DatasetChoice(upload=upload("german-train.csv", train_csv, "text/csv")),
        "evaluation": submission.DatasetChoice(upload=upload("german-eval.csv", eval_csv, "text/csv")),
        "label_column": demo_data.LABEL,
        "sensitive_features": ["sex", "age_group"],
        "code_repository": "https://git.example.org/credit/scoring",
        "code_commit": "3f2c9a1",
        "card": dict(CARD),
    }
    kwargs.update(overrides)
    return services.create_version(**kwargs)


@pytest.fixture
def draft_version(
    data_scientist: Any, registered_model: RegisteredModel, skops_bytes: bytes, train_csv: bytes, eval_csv: bytes
) -> ModelVersion:
    return make_version(data_scientist, registered_model, skops_bytes, train_csv, eval_csv)


def as_bytes_io(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)


def tamper(model: Any, filters: dict[str, Any], **changes: Any) -> int:
    """Edit append-only rows behind the application's back, as an attacker with database access
    would: on PostgreSQL the guard triggers are switched off for this one UPDATE."""
    from django.db import connection

    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # run the deferred foreign-key checks first: ALTER TABLE refuses pending trigger events
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        try:
            return model.objects.filter(**filters).update(**changes)
        finally:
            if connection.vendor == "postgresql":
                cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


@pytest.fixture
def as_dba(db: None) -> Any:
    """The ledger's triggers dropped for the test, as a DBA with the owner's rights would."""
    from tests.ledger import triggers_dropped

    with triggers_dropped():
        yield
