"""make bench: our serving API (gunicorn, 2 sync workers, PostgreSQL, every prediction logged)
against `mlflow models serve -w 2` (tuned with uvloop + httptools, as BENCHMARKS.md asks), on
the same two models, loaded with wrk in alternating rounds. Prints a table and the ratios."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "var"
MLFLOW_VENV = ROOT / "bench" / ".mlflow-venv"
PY = sys.executable
DURATION = int(os.environ.get("BENCH_SECONDS", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
THREADS_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
SCENARIOS = [("1 row", "one", 1), ("1 row", "one", 8), ("1 row", "one", 32), ("1,000 rows", "batch", 4)]
MODELS = ["bench-rf", "bench-logreg"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 (local benchmark servers)
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"server at {url} did not start")


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of a process and all its descendants, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
            todo += [int(c) for c in children]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return total


def lua(path: Path, body: str, headers: dict[str, str]) -> Path:
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}"]
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_wrk(url: str, script: Path | None, connections: int, seconds: int) -> dict[str, float]:
    cmd = ["wrk", f"-t{min(connections, 2)}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "30s"]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout  # noqa: S603
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {
        "rps": rps,
        "requests": total,
        "errors": int(non2xx.group(1)) if non2xx else 0,
        "p50": pct("50"),
        "p99": pct("99"),
    }


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd,
        env=env,
        cwd=ROOT,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,  # noqa: S603
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    database = f"modelgov_bench_{int(time.time())}"
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
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "False",
        "CONN_MAX_AGE": "600",
    }
    env.pop("CELERY_BROKER_URL", None)
    print(f"Preparing models in {database} through the workflow (checks, approval, deploy)...", flush=True)
    subprocess.run([PY, "manage.py", "migrate", "-v0"], env=env, cwd=ROOT, check=True)  # noqa: S603
    subprocess.run([PY, "bench/serving/prepare.py", str(OUT)], env=env, cwd=ROOT, check=True)  # noqa: S603
    setup = json.loads((OUT / "setup.json").read_text())
    subprocess.run(
        [str(MLFLOW_VENV / "bin" / "python"), "bench/serving/mlflow_models.py", str(OUT)],  # noqa: S603
        cwd=ROOT,
        check=True,
        env={**os.environ, **THREADS_ENV},
    )

    ours_port = free_port()
    ours = start(
        [
            PY,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{ours_port}",
            "--workers",
            "2",
            "--worker-class",
            "sync",
            "--keep-alive",
            "75",
        ],
        env,
        OUT / "ours.log",
    )
    # mlflow execs `uvicorn` by name: its virtualenv must come first on PATH
    mlflow_env = {**os.environ, **THREADS_ENV, "PATH": f"{MLFLOW_VENV / 'bin'}:{os.environ['PATH']}"}
    mlflow_ports, mlflow_servers = {}, {}
    for name in MODELS:
        port = free_port()
        mlflow_ports[name] = port
        mlflow_servers[name] = start(
            [
                str(MLFLOW_VENV / "bin" / "mlflow"),
                "models",
                "serve",
                "-m",
                str(OUT / "mlflow" / name),
                "--env-manager",
                "local",
                "-w",
                "2",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            mlflow_env,
            OUT / f"mlflow-{name}.log",
        )
    try:
        wait_http(f"http://127.0.0.1:{ours_port}/v2/health/live")
        for port in mlflow_ports.values():
            wait_http(f"http://127.0.0.1:{port}/ping")
        features = setup["features"]
        bodies = {}
        for kind in ("one", "batch"):
            rows = setup[kind]
            bodies[("ours", kind)] = json.dumps({"instances": rows})
            bodies[("mlflow", kind)] = json.dumps(
                {"dataframe_split": {"columns": features, "data": [[r[f] for f in features] for r in rows]}}
            )
        scripts = {}
        for (who, kind), body in bodies.items():
            headers = {"Content-Type": "application/json"}
            if who == "ours":
                headers["Authorization"] = f"Bearer {setup['key']}"
            scripts[(who, kind)] = lua(OUT / f"{who}-{kind}.lua", body, headers)

        def url(who: str, model: str) -> str:
            if who == "ours":
                return f"http://127.0.0.1:{ours_port}/api/v1/models/{model}/predict"
            return f"http://127.0.0.1:{mlflow_ports[model]}/invocations"

        def pid(who: str, model: str) -> int:
            return ours.pid if who == "ours" else mlflow_servers[model].pid

        # warm up every process of every server
        for model in MODELS:
            for who in ("ours", "mlflow"):
                run_wrk(url(who, model), scripts[(who, "one")], 4, 2)
                run_wrk(url(who, model), scripts[(who, "batch")], 2, 2)
        results: dict[tuple[str, str, str, int], list[dict[str, float]]] = {}
        # The empty view at c=1 is measured right before our c=1 run of each model, so that each
        # p50 ratio compares two runs taken under the same conditions on this noisy machine.
        empty: dict[str, list[dict[str, float]]] = {model: [] for model in MODELS}
        empty8: list[dict[str, float]] = []
        for rnd in range(ROUNDS):
            order = ("ours", "mlflow") if rnd % 2 == 0 else ("mlflow", "ours")
            print(f"Round {rnd + 1}/{ROUNDS} ({' then '.join(order)})...", flush=True)
            empty8.append(run_wrk(f"http://127.0.0.1:{ours_port}/v2/health/live", None, 8, DURATION))
            for model in MODELS:
                for _label, kind, conns in SCENARIOS:
                    for who in order:
                        if (who, kind, conns) == ("ours", "one", 1):
                            live = f"http://127.0.0.1:{ours_port}/v2/health/live"
                            empty[model].append(run_wrk(live, None, 1, DURATION))
                        before = tree_cpu_seconds(pid(who, model))
                        r = run_wrk(url(who, model), scripts[(who, kind)], conns, DURATION)
                        r["cpu_ms"] = (tree_cpu_seconds(pid(who, model)) - before) * 1000 / max(r["requests"], 1)
                        results.setdefault((who, model, kind, conns), []).append(r)
        report(results, empty, empty8, setup, db_url)
    finally:
        stop(ours)
        for server in mlflow_servers.values():
            stop(server)


def med(values: list[dict[str, float]], key: str) -> float:
    return statistics.median(v[key] for v in values)


def report(
    results: dict[Any, list[dict[str, float]]],
    empty: dict[str, list[dict[str, float]]],
    empty8: list[dict[str, float]],
    setup: dict[str, Any],
    db_url: str,
) -> None:
    print()
    print("Serving benchmark: ours = gunicorn 2 sync workers + Django/DRF + PostgreSQL, every prediction logged;")
    print("peer = `mlflow models serve --env-manager local -w 2` (MLflow 3.17.2, uvloop + httptools installed).")
    print(f"Medians over {ROUNDS} alternating rounds of {DURATION}s; OMP_NUM_THREADS=1 everywhere; wrk on 127.0.0.1.")
    engines = {m: setup["checks"][m].get("onnx") for m in MODELS}
    print(f"Our engine: ONNX Runtime where the ONNX check passed: {engines} (failed -> skops model).")
    print()
    header = (
        f"{'model':<13} {'load':<16} {'ours req/s':>10} {'mlflow req/s':>12} {'ratio':>7} "
        f"{'ours rows/s':>11} {'mlflow rows/s':>13} {'ours p50':>9} {'ours p99':>9} {'mlflow p50':>10} "
        f"{'mlflow p99':>10} {'ours CPU/req':>12} {'mlflow CPU/req':>14}"
    )
    print(header)
    print("-" * len(header))
    ratios = {}
    for model in MODELS:
        for label, kind, conns in SCENARIOS:
            o, m = results[("ours", model, kind, conns)], results[("mlflow", model, kind, conns)]
            rows = 1000 if kind == "batch" else 1
            ratio = med(o, "rps") / med(m, "rps")
            ratios[(model, kind, conns)] = ratio
            print(
                f"{model:<13} {label + f', c={conns}':<16} {med(o, 'rps'):>10.1f} {med(m, 'rps'):>12.1f} "
                f"{ratio:>6.1f}x {med(o, 'rps') * rows:>11.0f} {med(m, 'rps') * rows:>13.0f} "
                f"{med(o, 'p50'):>7.2f}ms {med(o, 'p99'):>7.2f}ms {med(m, 'p50'):>8.2f}ms {med(m, 'p99'):>8.2f}ms "
                f"{med(o, 'cpu_ms'):>10.2f}ms {med(m, 'cpu_ms'):>12.2f}ms"
            )
            for who, runs in (("our server", o), ("MLflow", m)):
                errors = sum(r["errors"] for r in runs)
                if errors:  # an error answered fast would inflate that side's rate
                    print(f"  !! {errors} non-2xx answers from {who}: this line's rates are not comparable")
    failed = {who: sum(r["errors"] for k, v in results.items() if k[0] == who for r in v) for who in ("ours", "mlflow")}
    print(f"Non-2xx answers in the timed runs: ours {failed['ours']}, MLflow {failed['mlflow']}.")
    print()
    print("Targets (ratios from this run):")
    for model in MODELS:
        r8 = ratios[(model, "one", 8)]
        rb = ratios[(model, "batch", 4)]
        p50 = med(results[("ours", model, "one", 1)], "p50")
        empty_p50 = med(empty[model], "p50")
        # the median of each round's ratio (ours and the empty view measured back to back)
        p50_ratio = statistics.median(
            o["p50"] / e["p50"] for o, e in zip(results[("ours", model, "one", 1)], empty[model], strict=True)
        )
        print(
            f"  {model}: 1-row c=8 {r8:.1f}x MLflow (target >= 15x: {'MET' if r8 >= 15 else 'NOT MET'}); "
            f"1,000-row batches {rb:.1f}x (target >= 4x: {'MET' if rb >= 4 else 'NOT MET'}); "
            f"p50 c=1 {p50:.2f} ms, {p50_ratio:.1f}x the empty DRF view's ({empty_p50:.2f} ms, measured just "
            f"before it) (target <= 4x: {'MET' if p50_ratio <= 4 else 'NOT MET'})"
        )
    floor = med(empty8, "rps")
    print()
    print("What the targets ask of this machine, against floors measured in this run:")
    print(f"  An empty DRF view on our server (same gunicorn, 2 sync workers) answers {floor:.0f} req/s at c=8.")
    for model in MODELS:
        need = 15 * med(results[("mlflow", model, "one", 8)], "rps")
        verdict = "above" if need > floor else "below"
        print(f"  {model}: 15x MLflow at c=8 is {need:.0f} req/s, {verdict} that floor.")
    for model in MODELS:
        mlflow_rows = med(results[("mlflow", model, "batch", 4)], "rps") * 1000
        budget = 2 * 1000 / (4 * mlflow_rows) * 1000  # ms per batch per worker, 2 workers on 2 cores
        engine_ms = setup.get("engine_ms_per_batch", {}).get(model, float("nan"))
        print(
            f"  {model}: 4x MLflow's batch rows/s leaves each of the 2 workers {budget:.1f} ms per 1,000-row "
            f"batch (parse, check, predict, log, answer); the model alone takes {engine_ms:.1f} ms in-process."
        )
    import psycopg

    with psycopg.connect(db_url.replace("postgres://", "postgresql://")) as conn:
        logged = conn.execute(
            "SELECT count(*), coalesce(sum(n_rows), 0) FROM serving_predictionlog WHERE outcome = 'ok'"
        ).fetchone()
    answered = sum(r["requests"] - r["errors"] for k, v in results.items() if k[0] == "ours" for r in v)
    print(
        f"Prediction log: {logged[0]} records holding {logged[1]} predictions; our timed runs answered "
        f"{answered} requests (plus warm-up), every one logged before it was returned."
    )


if __name__ == "__main__":
    main()
