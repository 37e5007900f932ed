"""What every benchmark shares: smoke mode, database names, and the summary `make bench-all` prints.

Smoke mode (BENCH_SMOKE=1, or --smoke): a few thousand rows, the peers skipped, short load runs;
it checks that the benchmark still runs end to end (what `make test` runs), and its figures
mean nothing. BENCH_DB_PREFIX (default "modelgov_bench_") prefixes the databases the benchmarks
create and drop. With BENCH_SUMMARY naming a file, each benchmark appends its figures to it as
JSON lines (bench/all.py prints them as one table)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

SMOKE = os.environ.get("BENCH_SMOKE") == "1" or "--smoke" in sys.argv
if SMOKE:
    os.environ["BENCH_SMOKE"] = "1"  # (child processes too)


def database_url(name: str) -> str:
    prefix = os.environ.get("BENCH_DB_PREFIX", "modelgov_bench_")
    return f"postgres://postgres@127.0.0.1:5432/{prefix}{name}{'_smoke' if SMOKE else ''}"


def sized(full: int, smoke: int) -> int:
    return smoke if SMOKE else full


def summary(bench: str, figure: str, measured: str, target: str = "", peer: str = "", ok: bool | None = None) -> None:
    """One row of the summary table (appended to BENCH_SUMMARY when set; printed by bench/all.py)."""
    path = os.environ.get("BENCH_SUMMARY")
    if not path:
        return
    row: dict[str, Any] = {"bench": bench, "figure": figure, "measured": measured, "target": target, "peer": peer}
    row["result"] = "" if ok is None else "pass" if ok else "FAIL"
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")
