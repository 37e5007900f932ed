"""On PostgreSQL, a batch chunk's result lines (about 4 MB for 50,000 rows) are TOAST-compressed
with lz4 instead of pglz: pglz cost each chunk's commit tens of milliseconds (bench-batch).
Other databases, or a PostgreSQL built without lz4, are left as they are."""

from __future__ import annotations

import importlib

from django.db import migrations

compression = importlib.import_module("serving.migrations.0005_log_lz4_compression").compression
COLUMNS = ("result_csv",)
TABLE = "serving_batchchunk"


class Migration(migrations.Migration):
    dependencies = [("serving", "0013_business_keys_lz4")]

    operations = [migrations.RunPython(compression("lz4", COLUMNS, TABLE), compression("pglz", COLUMNS, TABLE))]
