"""What the serving benchmark prints: the table of the three servers, the targets and the floors
(run.py), and the worker sweep's figures (run.py with BENCH_WORKER_SWEEP=1)."""

from __future__ import annotations

import math
import os
import statistics
from typing import Any

from harness import med, pinned
from servers import MODELS, NAMES, SERVERS

from bench.common import summary

PEERS = ["mlflow", "mlserver"]
Runs = list[dict[str, float]]


def header(workers: dict[str, tuple[int, str]], rounds: int, duration: int, setup: dict[str, Any]) -> None:
    n = {key: count for key, (count, _why) in workers.items()}
    print()
    print(
        f"Serving benchmark: ours = gunicorn {n['ours']} sync workers + Django/DRF + PostgreSQL, every prediction "
        "logged (answers labels and probabilities);"
    )
    print("peers, which answer labels only (their default output):")
    print(
        f"  MLflow = `mlflow models serve --env-manager local -w {n['mlflow']}` (MLflow {pinned('mlflow', 'mlflow')}, "
        "uvloop + httptools installed), one server per model;"
    )
    print(
        f"  MLServer = `mlserver start` (MLServer {pinned('mlserver', 'mlserver')} + mlserver-sklearn, "
        f"parallel_workers {n['mlserver']}, uvloop {pinned('mlserver', 'uvloop')} + httptools), both models in one "
        "server, Open Inference Protocol v2 requests (content type pd, one tensor per column)."
    )
    counts = ", ".join(f"{NAMES[k]} {c}" + ("" if why == "default" else f" ({why})") for k, (c, why) in workers.items())
    print(
        f"Workers: {counts}. Defaults: each server's best of 1, 2 and 4 workers in the worker sweep "
        f"(BENCH_WORKER_SWEEP=1) on this {os.cpu_count()}-core machine."
    )
    print(f"Medians over {rounds} rounds of {duration}s, the servers' order rotating each round; ", end="")
    print("OMP_NUM_THREADS=1 everywhere; wrk on 127.0.0.1.")
    engines = {m: setup["checks"][m].get("onnx") for m in MODELS}
    print(f"Our engine: ONNX Runtime where the ONNX check passed: {engines} (failed -> skops model).")
    print()


# (group title, column titles, column width): one row per model and load
COLUMNS = [
    ("req/s", [NAMES[k] for k in SERVERS], 9),
    ("ours vs", [NAMES[k] for k in PEERS], 9),
    ("rows/s", [NAMES[k] for k in SERVERS], 9),
    ("p50/p99 ms", [NAMES[k] for k in SERVERS], 12),
    ("CPU ms/req", [NAMES[k] for k in SERVERS], 9),
]
LEFT = 31  # model and load


def _cells(runs: dict[str, Runs], rows: int) -> list[str]:
    rps = {k: med(runs[k], "rps") for k in SERVERS}
    cells = [f"{rps[k]:.1f}" for k in SERVERS]
    cells += [f"{rps['ours'] / rps[k]:.1f}x" for k in PEERS]
    cells += [f"{rps[k] * rows:.0f}" for k in SERVERS]
    cells += [f"{med(runs[k], 'p50'):.1f}/{med(runs[k], 'p99'):.0f}" for k in SERVERS]
    cells += [f"{med(runs[k], 'cpu_ms'):.2f}" for k in SERVERS]
    return cells


def table(results: dict[tuple, Runs], scenarios: list[tuple[str, str, int]]) -> dict[tuple, float]:
    """Print the table; return our ratio against each peer, by (peer, model, kind, connections)."""
    groups = " ".join(f"{title:^{len(cols) * (width + 1) - 1}}" for title, cols, width in COLUMNS)
    titles = " ".join(f"{c:>{width}}" for _title, cols, width in COLUMNS for c in cols)
    print(f"{'':<{LEFT}} {groups}".rstrip())
    print(f"{'model':<13} {'load':<{LEFT - 14}} {titles}")
    print("-" * (LEFT + 1 + len(titles)))
    widths = [width for _title, cols, width in COLUMNS for _c in cols]
    ratios = {}
    for model in MODELS:
        for label, kind, conns in scenarios:
            runs = {k: results[(k, model, kind, conns)] for k in SERVERS}
            for peer in PEERS:
                ratios[(peer, model, kind, conns)] = med(runs["ours"], "rps") / med(runs[peer], "rps")
            cells = " ".join(
                f"{c:>{w}}" for c, w in zip(_cells(runs, 1000 if kind == "batch" else 1), widths, strict=True)
            )
            print(f"{model:<13} {label + f', c={conns}':<{LEFT - 14}} {cells}")
            for key in SERVERS:
                errors = sum(r["errors"] for r in runs[key])
                if errors:  # an error answered fast would inflate that side's rate
                    print(f"  !! {errors} non-2xx answers from {NAMES[key]}: this line's rates are not comparable")
    failed = {k: sum(r["errors"] for key, runs in results.items() if key[0] == k for r in runs) for k in SERVERS}
    print("Non-2xx answers in the timed runs: " + ", ".join(f"{NAMES[k]} {failed[k]}" for k in SERVERS) + ".")
    return ratios


def met(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def targets(results: dict[tuple, Runs], empty8: Runs, empty: dict[str, Runs]) -> None:
    """Today's targets: 1 row at c=8 at >= 50% of the empty DRF view measured in the same
    run, and 1,000-row requests at >= 2x the best peer; each also appended to bench-all's summary."""
    floor = med(empty8, "rps")
    print()
    print(f"Targets (from this run; the empty DRF view answered {floor:.0f} req/s at c=8):")
    for model in MODELS:
        one = med(results[("ours", model, "one", 8)], "rps")
        share = one / floor
        best = max(PEERS, key=lambda k: med(results[(k, model, "one", 8)], "rps"))
        print(
            f"  {model}: 1-row c=8 {one:.0f} req/s = {share:.0%} of the empty view (target >= 50%: "
            f"{met(share >= 0.5)}); best peer {NAMES[best]} {med(results[(best, model, 'one', 8)], 'rps'):.0f} req/s"
        )
        summary(
            "serving", f"{model}, 1 row, c=8: share of the empty DRF view", f"{share:.0%} ({one:.0f} req/s)",
            "≥ 50%", f"{NAMES[best]} {med(results[(best, model, 'one', 8)], 'rps'):.0f} req/s", share >= 0.5,
        )  # fmt: skip
        rows = med(results[("ours", model, "batch", 4)], "rps") * 1000
        best = max(PEERS, key=lambda k: med(results[(k, model, "batch", 4)], "rps"))
        peer_rows = med(results[(best, model, "batch", 4)], "rps") * 1000
        ratio = rows / peer_rows
        print(
            f"  {model}: 1,000-row batches c=4 {rows:,.0f} rows/s = {ratio:.1f}x the best peer, {NAMES[best]} "
            f"({peer_rows:,.0f}) (target >= 2x: {met(ratio >= 2)})"
        )
        summary(
            "serving", f"{model}, 1,000-row requests, c=4: ours / best peer", f"{ratio:.1f}x ({rows:,.0f} rows/s)",
            "≥ 2x", f"{NAMES[best]} {peer_rows:,.0f} rows/s", ratio >= 2,
        )  # fmt: skip
        ours_c1 = results[("ours", model, "one", 1)]
        p50_ratio = statistics.median(o["p50"] / e["p50"] for o, e in zip(ours_c1, empty[model], strict=True))
        print(
            f"  {model}: p50 c=1 {med(ours_c1, 'p50'):.2f} ms, {p50_ratio:.1f}x the empty DRF view's "
            f"({med(empty[model], 'p50'):.2f} ms, measured just before it) (target <= 4x: {met(p50_ratio <= 4)})"
        )


def smoke(results: dict[tuple, Runs], empty8: Runs) -> None:
    """Smoke mode: ours alone, one short round; figures printed, nothing compared."""
    print()
    print(f"Serving smoke run (ours only, figures mean nothing): empty DRF view {med(empty8, 'rps'):.0f} req/s at c=8")
    for (key, model, kind, conns), runs in sorted(results.items()):
        errors = sum(r["errors"] for r in runs)
        print(f"  {NAMES[key]} {model} {kind} c={conns}: {med(runs, 'rps'):.0f} req/s, {errors} non-2xx")
        assert errors == 0, f"{errors} non-2xx answers from {model} ({kind})"


def floors(results: dict[tuple, Runs], empty8: Runs, setup: dict[str, Any], ours_workers: int) -> None:
    floor = med(empty8, "rps")
    cores = os.cpu_count() or 1
    print()
    print("What the targets ask of this machine, against floors measured in this run:")
    print(
        f"  An empty DRF view on our server (same gunicorn, {ours_workers} sync workers) answers {floor:.0f} req/s "
        "at c=8."
    )
    print(f"  Half of it, the 1-row target, is {floor / 2:.0f} req/s at c=8.")
    for model in MODELS:
        engine_ms = setup.get("engine_ms_per_batch", {}).get(model, float("nan"))
        best = max(PEERS, key=lambda k: med(results[(k, model, "batch", 4)], "rps"))
        peer_rows = med(results[(best, model, "batch", 4)], "rps") * 1000
        budget = cores * 1000 / (2 * peer_rows) * 1000  # CPU ms per batch, all cores busy
        print(
            f"  {model}: 2x {NAMES[best]}'s batch rows/s leaves {budget:.1f} ms of CPU ({cores} cores) per "
            f"1,000-row batch (parse, check, predict, log, answer); the model alone takes {engine_ms:.1f} ms "
            "in-process."
        )


# the worker sweep: per server, the loads measured at each worker count
SWEEP_LOADS = [("one", 8), ("batch", 4)]
SWEEP_TIE = 0.05  # scores closer than this are a tie, won by fewer processes


def _sweep_cell(runs: Runs, kind: str) -> str:
    throughput = med(runs, "rps") * (1000 if kind == "batch" else 1)
    return f"{throughput:.0f} / {med(runs, 'cpu_ms'):.2f}"


def sweep(figures: dict[tuple, Runs], counts: tuple[int, ...], seconds: int, rounds: int) -> dict[str, int]:
    """Print the sweep's figures; return each server's best worker count: the one with the highest
    geometric mean of its four throughputs, each taken relative to that server's best for it (the
    fewer workers on a tie)."""
    loads = [(m, kind, conns) for m in MODELS for kind, conns in SWEEP_LOADS]
    titles = [f"{m.removeprefix('bench-')} " + ("1 row c=8" if k == "one" else "batch c=4") for m, k, _ in loads]
    print()
    print(
        f"Worker sweep: medians of {rounds} runs of {seconds}s per load; each server's {len(counts)} worker counts "
        "run side by side, measured back to back in rotating order; OMP_NUM_THREADS=1."
    )
    print("Each cell: req/s (1 row) or rows/s (batches) / server CPU ms per request.")
    print(f"{'server':<9} {'workers':>7} " + " ".join(f"{t:>17}" for t in titles) + f" {'score':>6} {'non-2xx':>7}")
    best = {}
    for key in SERVERS:
        top = {load: max(med(figures[(key, n, *load)], "rps") for n in counts) for load in loads}
        scores = {}
        for n in counts:
            runs = [figures[(key, n, *load)] for load in loads]
            relative = [med(r, "rps") / top[load] for r, load in zip(runs, loads, strict=True)]
            scores[n] = math.prod(relative) ** (1 / len(loads))
            cells = " ".join(f"{_sweep_cell(r, load[1]):>17}" for r, load in zip(runs, loads, strict=True))
            errors = sum(run["errors"] for r in runs for run in r)
            print(f"{NAMES[key]:<9} {n:>7} {cells} {scores[n]:>6.2f} {errors:>7}")
        best[key] = min(n for n in counts if scores[n] >= (1 - SWEEP_TIE) * max(scores.values()))
    print("score: geometric mean of the four throughputs, each relative to that server's best for it.")
    print(
        f"Best (the fewest workers within {SWEEP_TIE:.0%} of the top score, this machine's noise): "
        + ", ".join(f"{NAMES[k]} {n}" for k, n in best.items())
        + "."
    )
    return best
