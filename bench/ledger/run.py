"""make bench-ledger: the cost of proving the ledger both ways (compliance.evidence.verify_evidence)
as the number of proven rows grows, on PostgreSQL. Each size adds governed rows (API keys, each
written with its audit event through the service) and times one verification; the cost per row
stays flat when the proof grows with the rows, not their square (docs/ledger.md).

BENCH_LEDGER_SIZES (default "5000,10000,20000,40000") are the cumulative row counts;
BENCH_DATABASE_URL the database (dropped and created again). Smoke mode (BENCH_SMOKE=1 or
--smoke, bench/common.py): 500 and 1,000 rows."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.common import SMOKE, database_url, summary  # noqa: E402

SIZES = [
    int(s) for s in os.environ.get("BENCH_LEDGER_SIZES", "500,1000" if SMOKE else "5000,10000,20000,40000").split(",")
]
DB_URL = os.environ.get("BENCH_DATABASE_URL", database_url("ledger"))
os.environ["DATABASE_URL"] = DB_URL
os.environ.pop("CELERY_BROKER_URL", None)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("AUDIT_MAC_KEY", "bench-audit-mac-key-not-a-secret")


def fresh_database() -> None:
    import psycopg

    name = DB_URL.rsplit("/", 1)[1]
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    fresh_database()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from compliance.evidence import verify_evidence
    from serving.services import create_api_key

    print(f"{'proven rows':>12} {'verify s':>9} {'us per row':>11}")
    made = 0
    per_row = []
    for size in SIZES:
        while made < size:
            create_api_key(actor=None, name=f"bench-{made}")
            made += 1
        started = time.perf_counter()
        result = verify_evidence()
        seconds = time.perf_counter() - started
        assert result.ok, result.message
        per_row.append(seconds / result.rows_checked * 1e6)
        print(f"{result.rows_checked:>12,} {seconds:>9.2f} {per_row[-1]:>11.1f}")
    growth = per_row[-1] / per_row[0]
    print(
        f"cost per row at {SIZES[-1]:,} rows / at {SIZES[0]:,}: {growth:.2f}x (target <= 1.5x: linear, not quadratic)"
        + (" (SMOKE: figures mean nothing)" if SMOKE else "")
    )
    summary("ledger", f"verify_evidence per row, {SIZES[-1]:,} rows vs {SIZES[0]:,}",
            f"{growth:.2f}x ({per_row[-1]:.0f} µs/row)", "≤ 1.5x (linear)", "", growth <= 1.5)  # fmt: skip


if __name__ == "__main__":
    main()
