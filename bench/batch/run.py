"""make bench-batch: a 1,000,000-row CSV scored as a batch job by the benchmark's two models
(bench-rf, bench-logreg), with 1 and with 2 Celery workers on this machine, every row logged in
PostgreSQL; against the model alone in-process on the same rows (the floor) and
`mlflow models predict` on the same file (its own virtualenv), in the same run. Prints a table.

End to end is from the moment the file is handed to the service (accept_batch: stored,
planned, chunks queued; what the API's POST does once the body has arrived) to the moment the
result CSV and its SHA-256 are recorded.

Smoke mode (BENCH_SMOKE=1 or --smoke, bench/common.py): 3,000 rows, 2 workers only, no peer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.common import SMOKE, sized, summary  # noqa: E402

OUT = ROOT / "bench" / "var" / ("batch-smoke" if SMOKE else "batch")
MLFLOW = ROOT / "bench" / ".mlflow-venv" / "bin" / "mlflow"
ROWS = int(os.environ.get("BENCH_BATCH_ROWS", str(sized(1_000_000, 3_000))))
MODELS = ("bench-logreg", "bench-rf")
THREADS_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/12")


def environment() -> dict[str, str]:
    database = f"{os.environ.get('BENCH_DB_PREFIX', 'modelgov_bench_')}batch_{int(time.time())}"
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    return {
        **os.environ,
        **THREADS_ENV,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}",
        "CELERY_BROKER_URL": BROKER,
        "MEDIA_ROOT": str(OUT / "media"),
        "DEBUG": "False",
        "SECRET_KEY": "benchmark-only-secret-key-0123456789abcdefghijklmnop",
        "LOG_MAC_KEY": "benchmark-only-log-mac-key",
        "AUDIT_MAC_KEY": "benchmark-only-audit-mac-key",
        "LOG_KEK": "ab" * 32,  # benchmark only: DEBUG=False requires a key encryption key
        "CHECKPOINT_SIGNING_KEY": "0" * 64,
        "CHECKPOINT_WITNESS_KEY": "1" * 64,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "False",
        "CONN_MAX_AGE": "600",
    }


def prepare(env: dict[str, str]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"Preparing the models in {env['DATABASE_URL'].rsplit('/', 1)[1]} (checks, approval, deploy)...", flush=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, cwd=ROOT, check=True)  # noqa: S603
    # the checks run in-process while preparing (no worker yet)
    eager = {k: v for k, v in env.items() if k != "CELERY_BROKER_URL"}
    subprocess.run([sys.executable, "bench/serving/prepare.py", str(OUT)], env=eager, cwd=ROOT, check=True)  # noqa: S603
    if not SMOKE:
        subprocess.run(  # noqa: S603
            [str(MLFLOW.parent / "python"), "bench/serving/mlflow_models.py", str(OUT)], cwd=ROOT, check=True,
            env={**os.environ, **THREADS_ENV},
        )  # fmt: skip
    from lifecycle import demo_data

    evaluation = demo_data.split(demo_data.load_german_credit())[1]
    features = demo_data.NUMERIC + demo_data.CATEGORICAL
    import pandas as pd

    frame = pd.concat([evaluation[features]] * (ROWS // len(evaluation) + 1)).head(ROWS)
    path = OUT / f"portfolio-{ROWS}.csv"
    frame.to_csv(path, index=False)
    print(f"{ROWS:,} rows, {path.stat().st_size / 1e6:.0f} MB: {path}", flush=True)
    return path


def floor(path: Path) -> dict[str, float]:
    """Each model alone in this process (one core), on the rows read beforehand."""
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import pandas as pd

    from lifecycle import demo_data

    frame = pd.read_csv(path)
    train = pd.read_csv(OUT / "train.csv")
    models = {
        "bench-rf": demo_data.train_random_forest(train, n_estimators=100),
        "bench-logreg": demo_data.train_logistic_regression(train),
    }
    seconds = {}
    for name, model in models.items():
        started = time.perf_counter()
        proba = model.predict_proba(frame)
        np.asarray(model.classes_).take(proba.argmax(axis=1))
        seconds[name] = time.perf_counter() - started
    return seconds


def start_workers(env: dict[str, str], n: int) -> list[subprocess.Popen]:
    procs = []
    for i in range(n):
        log = (OUT / f"worker-{n}-{i}.log").open("w")
        procs.append(
            subprocess.Popen(  # noqa: S603
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "worker",
                    "--pool=solo",
                    "--loglevel=WARNING",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "-n",
                    f"bench{i}@%h",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        )
    time.sleep(6)  # started and connected (a job queued before they are up just waits)
    return procs


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


def ours(env: dict[str, str], path: Path, workers: int) -> dict[str, Any]:
    procs = start_workers(env, workers)
    try:
        out = subprocess.run(  # noqa: S603
            [sys.executable, "bench/batch/job.py", str(path), *MODELS], cwd=ROOT, env=env, check=True,
            capture_output=True, text=True,
        )  # fmt: skip
    finally:
        stop(procs)
    return json.loads(out.stdout.strip().splitlines()[-1])


def mlflow(path: Path) -> dict[str, float]:
    seconds = {}
    for name in MODELS:
        started = time.perf_counter()
        subprocess.run(  # noqa: S603
            [str(MLFLOW), "models", "predict", "-m", str(OUT / "mlflow" / name), "-i", str(path), "-t", "csv",
             "-o", str(OUT / f"mlflow-{name}.json"), "--env-manager", "local"],
            check=True, capture_output=True, env={**os.environ, **THREADS_ENV},
        )  # fmt: skip
        seconds[name] = time.perf_counter() - started
    return seconds


def main() -> None:
    if not SMOKE and not MLFLOW.exists():
        sys.exit("bench/.mlflow-venv is missing: run `make bench-batch`, which installs it.")
    env = environment()
    path = prepare(env)
    print("The model alone in-process...", flush=True)
    alone = floor(path)
    results = {}
    for workers in (2,) if SMOKE else (1, 2):
        print(f"Batch jobs with {workers} worker(s)...", flush=True)
        results[workers] = ours(env, path, workers)
    if SMOKE:
        print("mlflow models predict: skipped (smoke)")
        peer = {}
    else:
        print("mlflow models predict...", flush=True)
        peer = mlflow(path)
    print()
    print(f"Batch scoring of {ROWS:,} rows ({path.stat().st_size / 1e6:.0f} MB CSV), 2 cores, PostgreSQL + Redis")
    print(f"{'model':14} {'what':46} {'seconds':>8} {'rows/s':>10}")
    for name in MODELS:
        rows = [
            ("model alone in-process (floor, 1 core)", alone[name]),
            *([("ours, 1 worker, every row logged", results[1][name]["seconds"])] if 1 in results else []),
            ("ours, 2 workers, every row logged", results[2][name]["seconds"]),
            *([("mlflow models predict (same file)", peer[name])] if peer else []),
        ]
        for what, seconds in rows:
            print(f"{name:14} {what:46} {seconds:8.2f} {ROWS / seconds:10,.0f}")
        two = ROWS / results[2][name]["seconds"]
        # the floor on two cores: the model alone on one core, twice
        of_floor = two / (2 * ROWS / alone[name])
        logged, lines = results[2][name]["logged_rows"], results[2][name]["result_rows"]
        assert logged == lines == ROWS, (logged, lines)  # every row logged and answered, exactly once
        text = f"{name:14} 2 workers: {of_floor:.0%} of the two-core floor (target >= 50%)"
        summary("batch", f"{name}, {ROWS:,} rows, 2 workers: of the two-core floor", f"{of_floor:.0%}", "≥ 50%",
                f"floor {2 * ROWS / alone[name]:,.0f} rows/s", of_floor >= 0.5)  # fmt: skip
        if peer:
            ratio = two / (ROWS / peer[name])
            text += f", {ratio:.1f}x mlflow (target >= 3x)"
            summary("batch", f"{name}, {ROWS:,} rows, 2 workers: ours / mlflow models predict", f"{ratio:.1f}x",
                    "≥ 3x", f"mlflow {peer[name]:.2f} s", ratio >= 3)  # fmt: skip
        if 1 in results:
            text += f", {results[1][name]['seconds'] / results[2][name]['seconds']:.2f}x 1 worker (target >= 1.6x)"
        print(f"{text}; logged rows {logged:,}, result lines {lines:,}")
    if SMOKE:
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{env["DATABASE_URL"].rsplit("/", 1)[1]}" WITH (FORCE)')


if __name__ == "__main__":
    main()
