"""make bench-all (every benchmark at full size) and make bench-smoke (--smoke: every benchmark at
its smoke size, peers skipped; what `make test` runs): each benchmark runs in turn, its own output
shown as it goes, then one summary table of every figure with its target, the peer it is compared
with, and pass/fail (bench/common.summary). A benchmark that stops with an error is a FAIL row and
makes this exit non-zero; in smoke mode only that counts (smoke figures mean nothing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMOKE = "--smoke" in sys.argv or os.environ.get("BENCH_SMOKE") == "1"
# (name, script): the quick ones first
BENCHMARKS = [
    ("ledger", "bench/ledger/run.py"),
    ("audit", "bench/audit/run.py"),
    ("decisions", "bench/decisions/run.py"),
    ("monitoring", "bench/monitoring/run.py"),
    ("personal", "bench/personal/run.py"),
    ("batch", "bench/batch/run.py"),
    ("serving", "bench/serving/run.py"),
]


def main() -> int:
    only = [a for a in sys.argv[1:] if not a.startswith("--")]
    chosen = [(name, script) for name, script in BENCHMARKS if not only or name in only]
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl", prefix="bench-summary-") as summary:
        env = {**os.environ, "BENCH_SUMMARY": summary.name}
        if SMOKE:
            env["BENCH_SMOKE"] = "1"
        runs = []
        for name, script in chosen:
            print(f"\n===== {name}: {script}{' (smoke)' if SMOKE else ''} =====", flush=True)
            started = time.perf_counter()
            code = subprocess.run([sys.executable, script], cwd=ROOT, env=env, check=False).returncode
            runs.append((name, code, time.perf_counter() - started))
        rows = [json.loads(line) for line in Path(summary.name).read_text().splitlines() if line.strip()]
    print()
    title = "Smoke run of every benchmark (figures mean nothing: only a benchmark that broke fails)" if SMOKE else (
        "Every benchmark, one run each"
    )  # fmt: skip
    print(title)
    print()
    print("| benchmark | figure | measured | target | peer | result |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, code, seconds in runs:
        for row in (r for r in rows if r["bench"] == name):
            result = "(smoke)" if SMOKE else row["result"]
            print(f"| {name} | {row['figure']} | {row['measured']} | {row['target']} | {row['peer']} | {result} |")
        status = "ran" if code == 0 else f"BROKE (exit {code})"
        print(f"| {name} | the benchmark itself | {status} in {seconds:.0f} s | runs to the end | | "
              f"{'pass' if code == 0 else 'FAIL'} |")  # fmt: skip
    broken = [name for name, code, _ in runs if code != 0]
    total = sum(seconds for _, _, seconds in runs)
    print(f"\n{len(runs) - len(broken)} of {len(runs)} benchmarks ran to the end in {total:.0f} s", end="")
    print(f"; broken: {', '.join(broken)}" if broken else "")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
