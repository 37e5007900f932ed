"""The prediction log's indexes: every answer's INSERT writes each of them, so the log carries
only those its lookups use (migration serving 0006)."""

from __future__ import annotations

import pytest
from django.db import connection

from serving.models import PredictionLog

pytestmark = pytest.mark.django_db


def test_the_log_has_only_the_indexes_its_lookups_use():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, PredictionLog._meta.db_table)
    indexed = sorted(
        tuple(c["columns"]) for c in constraints.values() if (c["index"] or c["unique"]) and not c["primary_key"]
    )
    # One index per looked-up column set: no FK index on version beside (version, created_at),
    # and, on PostgreSQL, no LIKE pattern twins of model_name and request_id.
    assert indexed == sorted(
        [
            ("public_id",),
            ("created_at",),
            ("version_id", "created_at"),
            ("model_name",),
            ("request_id",),
            ("api_key_id",),
            ("user_id",),
            ("seal_id",),
            ("batch_job_id", "batch_chunk"),  # partial: only batch rows
        ]
    )


def test_the_key_user_and_batch_indexes_hold_only_rows_that_name_one():
    names = ["serving_log_api_key", "serving_log_user", "serving_log_batch"]
    if connection.vendor == "postgresql":
        sql, params = "SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY(%s)", [names]
    else:
        sql, params = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name IN (%s, %s, %s)", names
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        definitions = {name: text.replace('"', "").replace("(", "").replace(")", "") for name, text in cursor}
    assert definitions["serving_log_api_key"].endswith("WHERE api_key_id IS NOT NULL")
    assert definitions["serving_log_user"].endswith("WHERE user_id IS NOT NULL")
    assert definitions["serving_log_batch"].endswith("WHERE batch_job_id IS NOT NULL")
