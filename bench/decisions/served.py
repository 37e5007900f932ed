"""`"explain": true` under `make bench`'s conditions: gunicorn with 2 sync workers (the same
command as bench/serving/servers.py), DEBUG off, persistent PostgreSQL connections, one thread
per process, wrk at c=8 on 127.0.0.1; 1-row v1 requests to the logistic demo model without and
with `"explain": true`, in alternating rounds, each answer logged as in production.

wrk's p50 at c=8 against 2 workers includes the queue (about four requests ahead of each), so a
cost added to each request shows in p50 several times over: that is what the target measures."""

from __future__ import annotations

import json
import os
import statistics
import sys
import urllib.parse
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))

from harness import OUT, THREADS_ENV, lua, measure, post_json, run_wrk, stop, wait_http  # noqa: E402
from servers import _ours  # noqa: E402  (the gunicorn command `make bench` runs)

WORKERS = 2
CONNECTIONS = 8
SMOKE = os.environ.get("BENCH_SMOKE") == "1"
SECONDS = int(os.environ.get("BENCH_SECONDS", "1" if SMOKE else "8"))
ROUNDS = int(os.environ.get("BENCH_EXPLAIN_ROUNDS", "1" if SMOKE else "5"))


def _audit_mac_key() -> bytes:
    from core.audit import _mac_key

    return _mac_key()


def server_env(db_url: str, mac_key: str) -> dict[str, str]:
    """bench/serving/run.py's environment for our server, on this benchmark's database (and its
    media and log MAC key, so that what the server logs verifies like the rest)."""
    env = {
        **os.environ,
        **THREADS_ENV,
        "DATABASE_URL": db_url,
        "DEBUG": "False",
        "SECRET_KEY": "benchmark-only-secret-key-0123456789abcdefghijklmnop",
        "LOG_MAC_KEY": mac_key,
        "AUDIT_MAC_KEY": _audit_mac_key().decode(),  # this process's: the server's events verify with ours
        "LOG_KEK": os.environ.get("LOG_KEK", "ab" * 32),  # run.py's: the demo's datasets are wrapped by it
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "False",
        "CONN_MAX_AGE": "600",
    }
    env.pop("CELERY_BROKER_URL", None)
    env.pop("BENCH_PHASE", None)
    return env


def explain_overhead_served(*, db_url: str, mac_key: str, key: str, model: str, row: dict[str, Any]) -> dict[str, Any]:
    """p50 (ms) and req/s of each round without and with "explain": true, and their medians."""
    OUT.mkdir(parents=True, exist_ok=True)
    processes, _urls, ready = _ours(WORKERS, server_env(db_url, mac_key))
    process = next(iter(processes.values()))
    base = urllib.parse.urlsplit(ready[0])
    url = f"{base.scheme}://{base.netloc}/api/v1/models/{model}/predict"
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    bodies = {flag: json.dumps({"instances": [row], "explain": flag}) for flag in (False, True)}
    scripts = {flag: lua(OUT / f"decisions-explain-{flag}.lua".lower(), bodies[flag], headers) for flag in bodies}
    rounds: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    try:
        wait_http(ready[0])
        answer = post_json(url, bodies[True], headers)
        assert len(answer["explanations"]) == 1 and answer["explanations"][0]["reason_codes"] is not None, answer
        assert "explanations" not in post_json(url, bodies[False], headers)
        for flag in (False, True):  # every worker loads the model and builds its explainer
            run_wrk(url, scripts[flag], CONNECTIONS, 3)
        for rnd in range(ROUNDS):
            order = (False, True) if rnd % 2 == 0 else (True, False)
            for flag in order:
                result = measure(url, scripts[flag], CONNECTIONS, SECONDS, process.pid)
                assert result["errors"] == 0, result
                rounds[flag].append(result)
            plain, explained = rounds[False][-1], rounds[True][-1]
            print(
                f"  round {rnd + 1}/{ROUNDS}: p50 {plain['p50']:.2f} ms without ({plain['rps']:.0f} req/s), "
                f"{explained['p50']:.2f} ms with ({explained['rps']:.0f} req/s): "
                f"+{explained['p50'] - plain['p50']:.2f} ms",
                flush=True,
            )
    finally:
        stop(process)
    diffs = [b["p50"] - a["p50"] for a, b in zip(rounds[False], rounds[True], strict=True)]
    return {
        "plain": statistics.median(r["p50"] for r in rounds[False]),
        "explained": statistics.median(r["p50"] for r in rounds[True]),
        "added": statistics.median(diffs),
        "diffs": diffs,
        "rps": (statistics.median(r["rps"] for r in rounds[False]), statistics.median(r["rps"] for r in rounds[True])),
        "cpu_ms": (
            statistics.median(r["cpu_ms"] for r in rounds[False]),
            statistics.median(r["cpu_ms"] for r in rounds[True]),
        ),
    }
