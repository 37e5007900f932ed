"""Personal data's cost, printed by `make bench-personal`: the same model deployed twice,
one version declaring two personal fields (age, sex; subject = the business key), served by
gunicorn (2 sync workers) on PostgreSQL with every answer logged; wrk at c=8 with one row (a new
applicant each request) and at c=4 with 1,000 rows (1,000 known applicants), rounds in rotating
order; then erasing one subject with 10,000 logged rows.

Smoke mode (BENCH_SMOKE=1 or --smoke, bench/common.py): one round of 1 s, a subject of 2,000 rows;
its database is dropped at the end."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from harness import OUT, ROOT, THREADS_ENV, free_port, run_wrk, start, stop, tree_cpu_seconds, wait_http  # noqa: E402

from bench.common import SMOKE, sized, summary  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SECONDS", str(sized(8, 1))))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", str(sized(5, 1))))
ERASED_BATCHES = sized(10, 2)  # 1,000-row requests about the subject then erased
MODELS = ("bench-plain", "bench-personal")


def environment() -> dict[str, str]:
    database = f"{os.environ.get('BENCH_DB_PREFIX', 'modelgov_bench_')}personal_{int(time.time())}"
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    env = {
        **os.environ,
        **THREADS_ENV,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}",
        "MEDIA_ROOT": str(OUT / "personal" / "media"),
        "DEBUG": "False",
        "SECRET_KEY": "benchmark-only-secret-key-0123456789abcdefghijklmnop",
        "LOG_MAC_KEY": "benchmark-only-log-mac-key",
        "AUDIT_MAC_KEY": "benchmark-only-audit-mac-key",
        "LOG_KEK": "ab" * 32,
        "CHECKPOINT_SIGNING_KEY": "0" * 64,
        "CHECKPOINT_WITNESS_KEY": "1" * 64,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "False",
        "CONN_MAX_AGE": "600",
    }
    env.pop("CELERY_BROKER_URL", None)
    return env


def lua_one(path: Path, row: dict, key: str) -> Path:
    """One row per request, a new business key (a new data subject) each time: unique per run
    (a fresh prefix each time the script is written), per wrk thread and per request (wrk's
    math.random is not seeded: the same numbers in every run and thread)."""
    body = json.dumps({"instances": [row], "business_keys": ["KEY"]})
    head, tail = body.split('"KEY"')
    path.write_text(
        'wrk.method = "POST"\n'
        f'wrk.headers["Content-Type"] = "application/json"\nwrk.headers["Authorization"] = "Bearer {key}"\n'
        "local threads = 0\nfunction setup(thread)\n  threads = threads + 1\n  thread:set('tid', threads)\nend\n"
        "local n = 0\nrequest = function()\n  n = n + 1\n"
        f"  local body = {json.dumps(head)} .. '\"applicant-{uuid.uuid4().hex}-' .. tid .. '-' .. n .. '\"'"
        f" .. {json.dumps(tail)}\n"
        "  return wrk.format(nil, nil, nil, body)\nend\n"
    )
    return path


def lua_batch(path: Path, rows: list[dict], key: str) -> Path:
    batch = [rows[i % len(rows)] for i in range(1000)]
    body = json.dumps({"instances": batch, "business_keys": [f"customer-{i}" for i in range(1000)]})
    path.write_text(
        f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
        f'wrk.headers["Content-Type"] = "application/json"\nwrk.headers["Authorization"] = "Bearer {key}"\n'
    )
    return path


def postmaster() -> int:
    """The PostgreSQL server's first process: its tree is every backend, whose CPU counts too."""
    found = subprocess.run(["pgrep", "-o", "-x", "postgres"], capture_output=True, text=True, check=False)  # noqa: S607
    return int(found.stdout.split()[0]) if found.stdout.strip() else -1


def post(url: str, body: dict, key: str) -> dict:
    request = urllib.request.Request(  # noqa: S310 (local)
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310
        return json.load(answer)


def main() -> None:
    (OUT / "personal").mkdir(parents=True, exist_ok=True)
    env = environment()
    print("Preparing the two versions through the workflow...", flush=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, cwd=ROOT, check=True)  # noqa: S603
    out = subprocess.run(  # noqa: S603
        [sys.executable, "bench/personal/prepare.py"], env=env, cwd=ROOT, check=True, capture_output=True, text=True
    )
    setup = json.loads(out.stdout.strip().splitlines()[-1])
    port = free_port()
    server = start(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "2",
         "--worker-class", "sync", "--keep-alive", "75"],
        env, OUT / "personal" / "gunicorn.log",
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/v2/health/live")
        base = f"http://127.0.0.1:{port}"
        scripts = {}
        for m in MODELS:
            scripts[(m, "one")] = lua_one(OUT / "personal" / f"{m}-one.lua", setup["rows"][0], setup["key"])
            scripts[(m, "batch")] = lua_batch(OUT / "personal" / f"{m}-batch.lua", setup["rows"], setup["key"])
            for kind, conns in (("one", 8), ("batch", 4)):  # warm every worker
                run_wrk(f"{base}/api/v1/models/{m}/predict", scripts[(m, kind)], conns, sized(2, 1))
        results: dict[tuple[str, str], list[float]] = {}
        cpu: dict[tuple[str, str], list[float]] = {}
        postgres = postmaster()
        for r in range(ROUNDS):
            order = MODELS if r % 2 == 0 else MODELS[::-1]
            for kind, conns in (("one", 8), ("batch", 4)):
                for m in order:
                    if kind == "one":  # new subjects: never sent before
                        lua_one(scripts[(m, kind)], setup["rows"][0], setup["key"])
                    before = tree_cpu_seconds(server.pid) + tree_cpu_seconds(postgres)
                    got = run_wrk(f"{base}/api/v1/models/{m}/predict", scripts[(m, kind)], conns, SECONDS)
                    spent = tree_cpu_seconds(server.pid) + tree_cpu_seconds(postgres) - before
                    assert got["errors"] == 0, got
                    results.setdefault((m, kind), []).append(got["rps"])
                    cpu.setdefault((m, kind), []).append(spent * 1000 / max(got["requests"], 1))
        # erasure: one subject with 10,000 logged rows
        batch = [setup["rows"][i % len(setup["rows"])] for i in range(1000)]
        for _ in range(ERASED_BATCHES):
            post(
                f"{base}/api/v1/models/bench-personal/predict",
                {"instances": batch, "business_keys": ["subject-x"] * 1000},
                setup["key"],
            )
        started = time.perf_counter()
        erased = post(
            f"{base}/api/v1/subjects/erasure", {"model": "bench-personal", "subject": "subject-x"}, setup["officer_key"]
        )
        erase_seconds = time.perf_counter() - started
    finally:
        stop(server)
    print()
    print(f"Serving with and without two personal fields (gunicorn 2 workers, PostgreSQL, {ROUNDS} rounds, median)")
    print(f"{'load':34} {'plain req/s':>12} {'personal req/s':>15} {'difference':>11} {'target':>8}")
    for kind, label, target in (("one", "1 row, c=8, a new subject each", 0.10), ("batch", "1,000 rows, c=4", 0.20)):
        plain = statistics.median(results[("bench-plain", kind)])
        pers = statistics.median(results[("bench-personal", kind)])
        diff = (plain - pers) / plain
        verdict = "met" if diff <= target else "MISSED"
        print(f"{label:34} {plain:12.1f} {pers:15.1f} {diff:10.1%} {'<= ' + format(target, '.0%'):>8} {verdict}")
        summary("personal", f"personal data's cost, {label}", f"{diff:.1%} slower ({plain:.0f} → {pers:.0f} req/s)",
                f"≤ {target:.0%}", "", diff <= target)  # fmt: skip
        rounds = zip(results[("bench-plain", kind)], results[("bench-personal", kind)], strict=True)
        print(f"{'':34} rounds: " + ", ".join(f"{a:.1f}/{b:.1f}" for a, b in rounds))
        plain_cpu, pers_cpu = (statistics.median(cpu[(m, kind)]) for m in MODELS)
        print(
            f"{'':34} CPU per request (gunicorn + PostgreSQL): {plain_cpu:.2f} ms plain, {pers_cpu:.2f} ms personal "
            f"({(pers_cpu - plain_cpu) / plain_cpu:+.1%})"
        )
    print(
        f"Erasing one subject with {ERASED_BATCHES * 1000:,} logged rows: {erase_seconds * 1000:.1f} ms over HTTP "
        f"({erased['keys_erased']} key(s) destroyed; target <= 1 s: {'met' if erase_seconds <= 1 else 'MISSED'})"
    )
    summary("personal", f"erasing one subject with {ERASED_BATCHES * 1000:,} logged rows",
            f"{erase_seconds * 1000:.0f} ms", "≤ 1 s", "", erase_seconds <= 1)  # fmt: skip
    if SMOKE:
        drop(env["DATABASE_URL"])


def drop(url: str) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


if __name__ == "__main__":
    main()
