"""make bench: our serving API (gunicorn sync workers, PostgreSQL, every prediction logged) against
two peers on the same two models: `mlflow models serve` (tuned with uvloop + httptools, as
docs/benchmarks.md asks) and Seldon MLServer (mlserver-sklearn, Open Inference Protocol v2), loaded
with wrk in rounds whose order rotates. Prints a table and our ratios against each peer.

Each server runs with the worker count that was best for it on this machine (2 cores), found by
BENCH_WORKER_SWEEP=1, which measures 1, 2 and 4 workers per server and prints them instead of
the benchmark. BENCH_OURS_WORKERS, BENCH_MLFLOW_WORKERS and BENCH_MLSERVER_WORKERS override.

Smoke mode (BENCH_SMOKE=1 or --smoke, bench/common.py): ours alone, 1-row c=8 and 1,000-row c=4,
one round of 1 s; the database is dropped at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, str(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
import report  # noqa: E402
from harness import OUT, ROOT, THREADS_ENV, measure, run_wrk  # noqa: E402
from servers import MLFLOW_VENV, MLSERVER_VENV, MODELS, NAMES, SERVERS, Server, launch  # noqa: E402

from bench.common import SMOKE, sized  # noqa: E402

PY = sys.executable
DURATION = int(os.environ.get("BENCH_SECONDS", str(sized(8, 1))))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", str(sized(2, 1))))
SCENARIOS = [("1 row", "one", 1), ("1 row", "one", 8), ("1 row", "one", 32), ("1,000 rows", "batch", 4)]
if SMOKE:
    SCENARIOS = [("1 row", "one", 8), ("1,000 rows", "batch", 4)]
RUN = ["ours"] if SMOKE else SERVERS  # the servers started
SWEEP_COUNTS = (1, 2, 4)
SWEEP_SECONDS = int(os.environ.get("BENCH_SWEEP_SECONDS", "3"))
SWEEP_ROUNDS = int(os.environ.get("BENCH_SWEEP_ROUNDS", "2"))
# Each server's best of SWEEP_COUNTS in BENCH_WORKER_SWEEP=1 on this 2-core machine: 1 worker was
# the worst for all three; 2 and 4 were within the noise of a busy machine for all three (two sweeps
# disagreed), so the tie goes to fewer processes, one per core.
BEST_WORKERS = {"ours": 2, "mlflow": 2, "mlserver": 2}


def worker_counts() -> dict[str, tuple[int, str]]:
    """Each server's worker count, and where it comes from."""
    counts = {}
    for key in SERVERS:
        variable = f"BENCH_{key.upper()}_WORKERS"
        value = os.environ.get(variable)
        counts[key] = (int(value), f"from {variable}") if value else (BEST_WORKERS[key], "default")
    return counts


def prepare() -> tuple[dict[str, str], dict[str, Any], str]:
    """A fresh PostgreSQL database with both models deployed through the workflow, and the same
    models saved for the peers. Returns our server's environment, setup.json and the database URL."""
    OUT.mkdir(parents=True, exist_ok=True)
    database = f"{os.environ.get('BENCH_DB_PREFIX', 'modelgov_bench_')}{int(time.time())}"
    db_url = f"postgres://postgres@127.0.0.1:5432/{database}"
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    env = {
        **os.environ,
        **THREADS_ENV,
        "DATABASE_URL": db_url,
        "MEDIA_ROOT": str(OUT / "media"),
        "DEBUG": "False",
        "SECRET_KEY": "benchmark-only-secret-key-0123456789abcdefghijklmnop",
        "LOG_MAC_KEY": "benchmark-only-log-mac-key",
        "AUDIT_MAC_KEY": "benchmark-only-audit-mac-key",
        "LOG_KEK": "ab" * 32,  # benchmark only: DEBUG=False requires a key encryption key
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "False",
        "CONN_MAX_AGE": "600",
    }
    env.pop("CELERY_BROKER_URL", None)
    print(f"Preparing models in {database} through the workflow (checks, approval, deploy)...", flush=True)
    subprocess.run([PY, "manage.py", "migrate", "-v0"], env=env, cwd=ROOT, check=True)  # noqa: S603
    subprocess.run([PY, "bench/serving/prepare.py", str(OUT)], env=env, cwd=ROOT, check=True)  # noqa: S603
    for venv, script in () if SMOKE else ((MLFLOW_VENV, "mlflow_models.py"), (MLSERVER_VENV, "mlserver_models.py")):
        subprocess.run(
            [str(venv / "bin" / "python"), f"bench/serving/{script}", str(OUT)],  # noqa: S603
            cwd=ROOT,
            check=True,
            env={**os.environ, **THREADS_ENV},
        )
    return env, json.loads((OUT / "setup.json").read_text()), db_url


def warm_up(server: Server) -> None:
    """Load the models into every worker process of a server."""
    for model in MODELS:
        run_wrk(server.urls[model], server.scripts["one"], max(4, server.workers), sized(2, 1))
        run_wrk(server.urls[model], server.scripts["batch"], 2, sized(2, 1))


def check_answers(servers: dict[str, Server]) -> None:
    """Every server answers 200 with the same labels for the same rows (1 row, and 1,000), or the
    benchmark stops: rates of wrong answers compare nothing."""
    for model in MODELS:
        for kind in ("one", "batch"):
            answers = {key: server.labels(model, kind) for key, server in servers.items()}
            for key, labels in answers.items():
                if labels != answers["ours"]:
                    differ = sum(a != b for a, b in zip(labels, answers["ours"], strict=False))
                    raise SystemExit(
                        f"{NAMES[key]} and our server disagree on {model} ({kind}): {differ} labels differ, "
                        f"{len(labels)} vs {len(answers['ours'])} labels"
                    )
    sample = servers["mlserver"].labels(MODELS[0], "batch")[:8]
    print(f"Answers checked: all servers give the same labels for the same rows (first {MODELS[0]} ones: {sample}).")


def run_rounds(servers: dict[str, Server]) -> tuple[dict[tuple, list], dict[str, list], list]:
    """All loads on all servers, ROUNDS times, the servers' order rotating each round."""
    ours = servers["ours"]
    live = ours.ready[0]
    results: dict[tuple[str, str, str, int], list[dict[str, float]]] = {}
    # The empty view at c=1 is measured right before our c=1 run of each model, so that each
    # p50 ratio compares two runs taken under the same conditions on this noisy machine.
    empty: dict[str, list[dict[str, float]]] = {model: [] for model in MODELS}
    empty8: list[dict[str, float]] = []
    keys = list(servers)
    for rnd in range(ROUNDS):
        shift = rnd % len(keys)
        order = keys[shift:] + keys[:shift]
        print(f"Round {rnd + 1}/{ROUNDS} ({' then '.join(NAMES[k] for k in order)})...", flush=True)
        empty8.append(run_wrk(live, None, 8, DURATION))
        for model in MODELS:
            for _label, kind, conns in SCENARIOS:
                for key in order:
                    server = servers[key]
                    if (key, kind, conns) == ("ours", "one", 1):
                        empty[model].append(run_wrk(live, None, 1, DURATION))
                    r = measure(server.urls[model], server.scripts[kind], conns, DURATION, server.pid(model))
                    results.setdefault((key, model, kind, conns), []).append(r)
    return results, empty, empty8


def sweep(env: dict[str, str], setup: dict[str, Any]) -> None:
    """For each server: one instance per worker count, side by side, and a short 1-row c=8 and
    batch c=4 run per model on each, back to back in rotating order, so that the machine's drift
    hits every count alike."""
    loads = [(model, kind, conns) for model in MODELS for kind, conns in report.SWEEP_LOADS]
    figures: dict[tuple, list[dict[str, float]]] = {}
    for key in SERVERS:
        print(f"Sweep: {NAMES[key]} with {' and '.join(map(str, SWEEP_COUNTS))} workers...", flush=True)
        servers: dict[int, Server] = {}
        try:
            for workers in SWEEP_COUNTS:  # one at a time: MLServer reads its settings.json at start
                servers[workers] = launch(key, workers, env, setup)
                servers[workers].wait()
            for server in servers.values():
                warm_up(server)
            for rnd in range(SWEEP_ROUNDS):
                for i, (model, kind, conns) in enumerate(loads):
                    shift = (rnd + i) % len(SWEEP_COUNTS)
                    for workers in SWEEP_COUNTS[shift:] + SWEEP_COUNTS[:shift]:
                        server = servers[workers]
                        r = measure(server.urls[model], server.scripts[kind], conns, SWEEP_SECONDS, server.pid(model))
                        figures.setdefault((key, workers, model, kind, conns), []).append(r)
        finally:
            for server in servers.values():
                server.stop()
    best = report.sweep(figures, SWEEP_COUNTS, SWEEP_SECONDS, SWEEP_ROUNDS)
    settings = ", ".join(f"BENCH_{k.upper()}_WORKERS={n}" for k, n in best.items())
    print(f"Set them in BEST_WORKERS (bench/serving/run.py) or with {settings}.")


def logged_summary(db_url: str, results: dict[tuple, list]) -> None:
    import psycopg

    with psycopg.connect(db_url.replace("postgres://", "postgresql://")) as conn:
        logged = conn.execute(
            "SELECT count(*), coalesce(sum(n_rows), 0) FROM serving_predictionlog WHERE outcome = 'ok'"
        ).fetchone()
    answered = sum(r["requests"] - r["errors"] for k, v in results.items() if k[0] == "ours" for r in v)
    print(
        f"Prediction log: {logged[0]} records holding {logged[1]} predictions; our timed runs answered "
        f"{answered} requests (plus warm-up and the answer check), every one logged before it was returned."
    )


def main() -> None:
    env, setup, db_url = prepare()
    if os.environ.get("BENCH_WORKER_SWEEP") == "1":
        sweep(env, setup)
        return
    workers = worker_counts()
    servers: dict[str, Server] = {}
    try:
        for key in RUN:
            servers[key] = launch(key, workers[key][0], env, setup)
        for server in servers.values():
            server.wait()
        if not SMOKE:
            check_answers(servers)
        for server in servers.values():
            warm_up(server)
        results, empty, empty8 = run_rounds(servers)
        if SMOKE:
            report.smoke(results, empty8)
        else:
            report.header(workers, ROUNDS, DURATION, setup)
            report.table(results, SCENARIOS)
            report.targets(results, empty8, empty)
            report.floors(results, empty8, setup, workers["ours"][0])
        logged_summary(db_url, results)
    finally:
        for server in servers.values():
            server.stop()
    if SMOKE:
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_url.rsplit("/", 1)[1]}" WITH (FORCE)')


if __name__ == "__main__":
    main()
