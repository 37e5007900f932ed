"""Where personal data's extra CPU goes, in one process: the predict service (no HTTP) answers the
benchmark's bodies for the plain and the personal version in alternating blocks on PostgreSQL,
and prints the CPU per request of this process (time.process_time) and of its PostgreSQL backend
(/proc), then, with --profile, the functions whose own time differs most (cProfile).

    BENCH_DB_PREFIX=hpe_ .venv/bin/python bench/personal/profile_cpu.py [--rows 1000] [--n 200] [--profile]

It makes (and at the end drops) a database of its own, prepared by bench/personal/prepare.py."""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "serving"))
sys.path.insert(0, str(ROOT / "bench" / "personal"))  # (first: bench/serving has a run.py too)
import run  # noqa: E402 (bench/personal/run.py: the benchmark's environment and versions)


def backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--n", type=int, default=200, help="requests per version per block")
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    env = run.environment()  # creates the database
    os.environ.update(env)
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, cwd=ROOT, check=True)  # noqa: S603
        out = subprocess.run(  # noqa: S603
            [sys.executable, "bench/personal/prepare.py"], env=env, cwd=ROOT, check=True, capture_output=True, text=True
        )
        setup = json.loads(out.stdout.strip().splitlines()[-1])
        measure(setup, args)
    finally:
        from django.db import connections

        connections.close_all()
        run.drop(env["DATABASE_URL"])


CURRENT = [""]  # the version being asked


def timed(parts: dict[str, float]) -> None:
    """Wrap the serving path's parts so that the CPU each takes is added up, per version."""
    from serving import log, personal, predict, writers

    def wrap(owner: object, name: str, label: str) -> None:
        inner = getattr(owner, name, None)
        if inner is None:  # (not in this commit)
            return

        def outer(*args: object, **kwargs: object) -> object:
            started = time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                label_now = f"{label}, {CURRENT[0]}"
                parts[label_now] = parts.get(label_now, 0.0) + time.process_time() - started

        setattr(owner, name, outer)

    wrap(personal, "protect", "personal.protect")
    wrap(personal, "subject_hashes_of", "personal.protect: subject_hashes_of")
    wrap(personal, "write_keys", "personal.protect: write_keys")
    wrap(predict.log, "write", "log.write")
    wrap(log, "record_leaf", "log.record_leaf")
    wrap(log, "dump_json", "log.dump_json")
    wrap(writers.PostgresLogWriter, "insert_record", "insert_record")
    wrap(predict.engine, "predict", "engine.predict")


def measure(setup: dict, args: argparse.Namespace) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.db import connection

    from serving import predict
    from serving.models import ApiKey

    key = ApiKey.objects.get(name="bench")
    parts: dict[str, float] = {}
    timed(parts)
    rows = setup["rows"]
    if args.rows == 1:
        counter = iter(range(10**9))
        bodies = lambda: ([rows[0]], [f"applicant-{next(counter)}"])  # noqa: E731 (a new subject each)
    else:
        batch = [rows[i % len(rows)] for i in range(args.rows)]
        keys = [f"customer-{i}" for i in range(args.rows)]
        bodies = lambda: ([dict(r) for r in batch], list(keys))  # noqa: E731 (as parsed from JSON, fresh)

    def answer(model: str) -> None:
        CURRENT[0] = model
        instances, business_keys = bodies()
        request = predict.PredictionRequest(
            predict.Caller(None, key), model, "v1", instances=instances, business_keys=business_keys
        )
        predict.predict(request)

    for model in run.MODELS:  # warm: models loaded, keys made, statements prepared
        for _ in range(5):
            answer(model)
    parts.clear()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    gc.collect()
    gc.freeze()  # as config/wsgi.py does
    cpu: dict[str, list[float]] = {m: [] for m in run.MODELS}
    db: dict[str, list[float]] = {m: [] for m in run.MODELS}
    profiles = {m: cProfile.Profile(time.process_time) for m in run.MODELS}  # CPU: the machine is shared
    for b in range(args.blocks):
        for model in run.MODELS if b % 2 == 0 else run.MODELS[::-1]:
            started, db_started = time.process_time(), backend_cpu(backend)
            for _ in range(args.n):
                answer(model)
            cpu[model].append((time.process_time() - started) * 1000 / args.n)
            db[model].append((backend_cpu(backend) - db_started) * 1000 / args.n)
    print(f"{args.rows} row(s) a request, {args.n} requests per block, {args.blocks} blocks (ms per request)")
    for model in run.MODELS:
        print(f"  {model:15} python {min(cpu[model]):6.2f}  postgres {min(db[model]):6.2f}  (min over blocks)")
        print(f"  {'':15} blocks: python {', '.join(f'{v:.2f}' for v in cpu[model])}; ")
        print(f"  {'':15}         postgres {', '.join(f'{v:.2f}' for v in db[model])}")
    print("  CPU by part, ms per request (all blocks):")
    total = args.n * args.blocks
    for name, spent in sorted(parts.items()):
        print(f"    {name:40} {spent * 1000 / total:8.3f}")
    if not args.profile:
        return
    for model in run.MODELS:
        profiles[model].enable()
        for _ in range(args.n):
            answer(model)
        profiles[model].disable()
    stats = {m: pstats.Stats(profiles[m]).stats for m in run.MODELS}  # type: ignore[attr-defined]
    own: dict[str, dict[str, tuple[float, float]]] = {m: {} for m in run.MODELS}
    for m in run.MODELS:
        for (file, line, name), (_, _, tottime, cumtime, _) in stats[m].items():
            label = f"{Path(file).name}:{line}({name})"
            own[m][label] = (tottime * 1000 / args.n, cumtime * 1000 / args.n)
    plain, pers = (own[m] for m in run.MODELS)
    total_plain = sum(v[0] for v in plain.values())
    total_pers = sum(v[0] for v in pers.values())
    print(f"\ncProfile, own time per request: plain {total_plain:.2f} ms, personal {total_pers:.2f} ms")
    diffs = sorted(((pers.get(k, (0, 0))[0] - plain.get(k, (0, 0))[0], k) for k in {*plain, *pers}), reverse=True)
    print(f"{'function':70} {'extra own ms':>12} {'personal cum ms':>15}")
    for d, k in diffs[:30]:
        print(f"{k[:70]:70} {d:12.3f} {pers.get(k, (0, 0))[1]:15.3f}")


if __name__ == "__main__":
    main()
