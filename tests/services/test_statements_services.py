"""The serving path's statements on PostgreSQL: every test of tests/serving/test_statements.py
(run here through PostgresLogWriter's prepared statements), and the statements only PostgreSQL
sends: a record's INSERT that writes its new subjects' keys and its key index rows, COPY, the
subject keys' id reservation and the FOR SHARE locks of a batch chunk's commit."""

from __future__ import annotations

from datetime import date

import psycopg
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.db import connection, transaction

from serving import log, statements, subject_keys
from serving.models import PredictionLog, SubjectKey
from serving.writers import PostgresLogWriter, writer
from tests.serving.test_statements import *  # noqa: F403  (the same tests, on PostgreSQL)
from tests.serving.test_statements import _entry, _guard

MONTH = date(2026, 12, 1)


def test_the_writer_here_is_the_postgresql_writer():
    assert type(writer()) is PostgresLogWriter


@pytest.mark.django_db
def test_reserve_subject_key_ids_takes_new_ids_from_the_sequence():
    first = writer().reserve_subject_key_ids(3)
    second = writer().reserve_subject_key_ids(2)
    assert len(set(first + second)) == 5 and max(first) < min(second)
    assert statements.reserve_subject_key_ids().startswith("SELECT nextval(")


def _pending(key_id: int) -> subject_keys.NewKeys:
    pending = subject_keys.NewKeys()
    data_key = AESGCM.generate_key(bit_length=256)
    kek_id, wrapped = subject_keys._wrap(data_key)
    pending.add("credit-risk", "subject-1", MONTH, key_id, wrapped, kek_id, AESGCM(data_key))
    return pending


@pytest.mark.django_db
def test_record_insert_with_new_subject_keys_with_ids_writes_the_keys_and_the_record_or_neither(production):
    first, second = writer().reserve_subject_key_ids(2)
    record = log.write(_entry(production, new_keys=_pending(first)), _guard(production))
    assert record is not None and PredictionLog.objects.filter(public_id=record.public_id).exists()
    assert list(SubjectKey.objects.values_list("pk", "subject_hash")) == [(first, "subject-1")]
    # Another live key for the same subject and month was made meanwhile: neither is written.
    assert log.write(_entry(production, new_keys=_pending(second)), _guard(production)) is None
    assert PredictionLog.objects.count() == 1 and SubjectKey.objects.count() == 1
    sql = statements.record_insert_with(1, keyed=False, fallback=False, new_keys=1, indexed=True)
    assert sql.startswith("WITH prelude AS (INSERT INTO") and "unnest(%s::text[])" in sql
    assert "RETURNING public_id, created_at)" in sql and "t.k, record.created_at FROM record" in sql
    assert statements.new_subject_keys_with_ids(2).count("(%s, %s, %s, %s, %s, %s, %s, NULL, '')") == 2


@pytest.mark.django_db
def test_new_subject_keys_and_copy_records_are_postgresql_statements():
    assert "ON CONFLICT (model_name, subject_hash, month) WHERE erased_at IS NULL" in statements.new_subject_keys(1)
    assert statements.copy_records().startswith('COPY "serving_predictionlog" (')


@pytest.mark.django_db
def test_a_prepared_statement_is_planned_once_per_connection(production):
    name = production.registered_model.name
    with transaction.atomic():
        for _ in range(6):  # psycopg prepares a statement after its fifth run, or at once with prepare=True
            writer().fetch(statements.servable_versions(), [name, -1])
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ["%lifecycle_registeredmodel m%"]
            )
            assert cursor.fetchone()[0] == 1


def test_share_version_and_share_model_hold_both_rows_until_the_commit(committed_db, production):
    db = connection.settings_dict
    other = psycopg.connect(
        host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], password=db["PASSWORD"] or None, dbname=db["NAME"],
        autocommit=True,
    )  # fmt: skip
    locks = [
        ("lifecycle_modelversion", production.pk),
        ("lifecycle_registeredmodel", production.registered_model_id),
    ]
    try:
        with transaction.atomic():
            writer().share_servable(production)
            for table, pk in locks:
                with pytest.raises(psycopg.errors.LockNotAvailable):
                    other.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR UPDATE NOWAIT", [pk])  # noqa: S608
        for table, pk in locks:  # committed: free again
            other.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR UPDATE NOWAIT", [pk])  # noqa: S608
    finally:
        other.close()
    assert statements.share_version().endswith("FOR SHARE") and statements.share_model().endswith("FOR SHARE")
