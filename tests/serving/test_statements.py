"""Each statement of serving.statements, run through this process's writer (serving.writers) and
pinned by what it writes or reads. These run on SQLite here and on PostgreSQL in
tests/services/test_statements_services.py, which imports them and adds the statements only
PostgreSQL sends."""

from __future__ import annotations

import inspect
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from core import caches
from lifecycle.models import ModelVersion
from serving import log, statements
from serving.models import ApiKey, Disposition, PredictionKey, PredictionLog, SubjectKey
from serving.writers import PortableLogWriter, PostgresLogWriter, writer

pytestmark = pytest.mark.django_db


def _entry(version: ModelVersion | None, **fields: Any) -> log.Entry:
    values: dict[str, Any] = {
        "model_name": "credit-risk",
        "version": version,
        "api_key": None,
        "user": None,
        "caller": "api-key:scoring-client",
        "request_id": "r-1",
        "protocol": "v1",
        "outcome": Disposition.OK,
        "started": time.perf_counter(),
        "inputs": [{"age": 30}],
        "outputs": {"predictions": ["good"]},
        "engine": "onnx",
    }
    return log.Entry(**{**values, **fields})


def _guard(version: ModelVersion, **changes: Any) -> log.Guard:
    values: dict[str, Any] = {
        "version_id": version.pk,
        "artifact_sha256": version.artifact_sha256,
        "manifest_sha256": version.manifest_sha256,
        "statuses": ("production",),
        "api_key_id": None,
        "fallback": False,
    }
    return log.Guard(**{**values, **changes})


def _stored(record: PredictionLog) -> PredictionLog:
    return PredictionLog.objects.get(public_id=record.public_id)


def test_the_writer_is_chosen_once_for_the_vendor():
    expected = PostgresLogWriter if connection.vendor == "postgresql" else PortableLogWriter
    assert type(writer()) is expected
    assert writer() is writer()


def test_servable_versions_reads_production_and_the_named_version_with_the_kill_switch(production):
    name = production.registered_model.name
    width = len(statements.VERSION_FIELDS)
    rows = writer().fetch(statements.servable_versions(), [name, -1])
    assert [(row[0], row[width:]) for row in rows] == [(production.pk, (None, None))]
    assert writer().fetch(statements.servable_versions(), ["no-such-model", -1]) == []


def test_key_by_hash_reads_the_key_and_nothing_for_an_unknown_hash(client_key):
    stored = ApiKey.objects.get()
    rows = writer().fetch(statements.key_by_hash(), [stored.key_hash])
    assert len(rows) == 1 and len(rows[0]) == len(statements.KEY_FIELDS)
    assert stored.key_hash in rows[0] and stored.pk in rows[0]
    assert writer().fetch(statements.key_by_hash(), ["0" * 64]) == []


def test_record_insert_writes_a_refusal_exactly_as_sealed_and_record_written_finds_it(production):
    record = log.write(_entry(None, outcome=Disposition.REFUSED, reason="forbidden: no", inputs=[]))
    assert record is not None
    stored = _stored(record)
    assert stored.version_id is None and stored.reason == "forbidden: no"
    assert stored.leaf_hash == log.record_leaf(stored).hex() and stored.mac == log.mac_of(log.record_leaf(stored))
    public_id = PredictionLog._meta.get_field("public_id")
    written = [public_id.get_db_prep_value(record.public_id, connection)]
    assert writer().fetch(statements.record_written(), written) == [(1,)]
    assert writer().fetch(statements.record_written(), [public_id.get_db_prep_value(uuid.uuid4(), connection)]) == []


def test_guarded_record_insert_writes_only_while_everything_the_answer_depends_on_holds(production, client_key):
    key = ApiKey.objects.get()
    assert log.write(_entry(production, api_key=key), _guard(production, api_key_id=key.pk)) is not None
    refused = [
        _guard(production, artifact_sha256="0" * 64),
        _guard(production, manifest_sha256="0" * 64),
        _guard(production, statuses=("approved",)),
        _guard(production, fallback=True),  # the model is not stopped: its fallback may not answer
    ]
    for guard in refused:
        assert log.write(_entry(production), guard) is None
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
    assert log.write(_entry(production, api_key=key), _guard(production, api_key_id=key.pk)) is None
    assert PredictionLog.objects.count() == 1


def test_a_keyed_record_writes_its_index_rows_with_it(production):
    record = log.write(_entry(production, business_keys=["a-1"], inputs=[{"age": 30}]), _guard(production))
    assert record is not None
    assert list(PredictionKey.objects.values_list("record_id", "row", "key")) == [(record.public_id, 0, "a-1")]
    assert PredictionKey.objects.get().created_at == record.created_at  # (its month is its record's)
    assert log.write(_entry(production, business_keys=["a-2"]), _guard(production, statuses=("approved",))) is None
    assert PredictionKey.objects.count() == 1  # a refused guard writes no index row either
    unguarded = log.write(_entry(None, business_keys=["b-1"]))  # (decisions of a model served elsewhere)
    assert unguarded is not None and PredictionKey.objects.filter(record_id=unguarded.public_id).count() == 1
    assert PredictionKey.objects.get(record_id=unguarded.public_id).created_at == unguarded.created_at


def test_copy_records_or_a_bulk_insert_writes_sealed_records(production):
    from django.db import transaction

    records = [log.sealed_form(PredictionLog(**_fields(production, i))) for i in range(3)]
    with transaction.atomic():
        log.write_many(records)
    stored = PredictionLog.objects.order_by("request_id")
    assert [r.request_id for r in stored] == ["bulk-0", "bulk-1", "bulk-2"]
    assert all(r.mac == log.mac_of(log.record_leaf(r)) for r in stored)


def _fields(version: ModelVersion, i: int) -> dict[str, Any]:
    return {
        "public_id": uuid.uuid4(),
        "created_at": timezone.now(),
        "model_name": "credit-risk",
        "version": version,
        "version_number": version.version,
        "caller": "batch",
        "request_id": f"bulk-{i}",
        "protocol": "v1",
        "outcome": Disposition.OK,
        "n_rows": 1,
        "inputs_json": "[]",
        "outputs_json": "{}",
        "engine": "onnx",
        "latency_ms": float(i),
    }


def test_new_subject_keys_are_written_once_per_subject_and_month():
    month = date(2026, 12, 1)
    made = writer().make_subject_keys(
        "credit-risk", {"h1": ("kek", b"w1"), "h2": ("kek", b"w2")}, month, timezone.now()
    )
    assert made == dict(SubjectKey.objects.values_list("subject_hash", "pk"))
    again = writer().make_subject_keys("credit-risk", {"h1": ("kek", b"other")}, month, timezone.now())
    assert again == {}  # another process's key (here, the first one) is left out, to be read back
    assert SubjectKey.objects.count() == 2


def test_latency_percentiles_are_the_nearest_rank_of_the_answered_records(production):
    from django.db import transaction

    with transaction.atomic():
        log.write_many([log.sealed_form(PredictionLog(**_fields(production, i))) for i in range(1, 11)])
    answered = PredictionLog.objects.filter(outcome="ok")
    assert writer().latency_percentiles(answered, (0.5, 0.95, 0.99)) == [5.0, 10.0, 10.0]
    assert writer().latency_percentiles(answered.filter(request_id="none"), (0.5, 0.95)) == [None, None]


def test_the_log_mac_is_the_mac_the_hand_built_pads_gave(settings):
    # (values computed by the RFC 2104 pads this module used before: records already written verify)
    assert log.mac_of(b"\x00leaf") == "5b6e14ba417d7f3e7450576d161ec1a89ecde2cf410495aef8975361d766be4d"
    settings.LOG_MAC_KEY = "k" * 100  # longer than SHA-256's block: the key is hashed first
    log.forget_mac_key()
    try:
        assert log.mac_of(b"\x00leaf") == "a9df36d72bef2df0511f70e7116cff8b45b69faf6eaeb4fc4c0ea7fcd0998680"
        assert log.keyed_hexdigests([b"\x00leaf"]) == [log.mac_of(b"\x00leaf")]
    finally:
        log.forget_mac_key()


def test_every_statement_has_its_test():
    defined = [(name, f) for name, f in vars(statements).items() if callable(f) and not inspect.isclass(f)]
    public = {name for name, f in defined if f.__module__ == statements.__name__ and not name.startswith("_")}
    assert public == {f.__name__ for f in statements.STATEMENTS} | {"latency_percentiles"}
    here = Path(__file__).read_text(encoding="utf-8")
    there = (Path(__file__).parents[1] / "services" / "test_statements_services.py").read_text(encoding="utf-8")
    tests = [line for line in (here + there).splitlines() if line.startswith("def test_")]
    for name in public:
        assert any(name in test for test in tests), f"no test is named for {name}"


def test_clear_all_empties_every_cache_of_the_process(keyed, production, german):
    from serving import engine, keys, selectors

    assert (
        keyed.post("/api/v1/models/credit-risk/predict", {"instances": _rows(german)}, format="json").status_code == 200
    )
    assert engine._cache and selectors._recent and keys.recent_keys
    names = caches.inventory()
    for expected in (
        "serving.engine.models",
        "serving.keys.recent_keys",
        "serving.log.mac_key",
        "serving.writers.writer",
    ):
        assert expected in names
    caches.clear_all()
    assert not engine._cache and not selectors._recent and not keys.recent_keys
    assert writer.cache_info().currsize == 0


def _rows(german: Any) -> list[dict[str, Any]]:
    from tests.serving.conftest import rows

    return rows(german, 1)
