"""On PostgreSQL, the log's business keys are TOAST-compressed with lz4 like its inputs and
outputs (0005): a 1,000-row record of personal business keys (keyed hashes, 69 kB) took 2.4 ms
of database time to compress with pglz and 0.7 ms with lz4. Other databases, or a PostgreSQL
built without lz4, are left as they are."""

from __future__ import annotations

import importlib

from django.db import migrations

compression = importlib.import_module("serving.migrations.0005_log_lz4_compression").compression
COLUMNS = ("business_keys_json",)


class Migration(migrations.Migration):
    dependencies = [("serving", "0012_personal_data")]

    operations = [migrations.RunPython(compression("lz4", COLUMNS), compression("pglz", COLUMNS))]
