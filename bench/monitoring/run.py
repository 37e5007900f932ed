"""make bench-monitoring: drift monitoring of 1,000,000 logged rows x 16 features, ours against
Evidently and NannyML on the same data in the same run.

1. Data (bench/monitoring/datagen.py, fixed seeds): a reference (the model's evaluation data),
   the "current" rows (`score` shifted by 0.3 sigma, `channel`'s rarest category moved from 10%
   to 20% of the rows) and fresh rows of the reference's own distribution (the no-drift replay),
   written as .npz for the peers.
2. Ours, on PostgreSQL (a fresh database): a 16-feature logistic-regression pipeline registered,
   checked, approved and deployed through the project's services with the reference as its
   evaluation data; the current rows logged as 1,000-row records over one day (COPY, real leaf
   hashes and MACs), sealed. Then, in a fresh process, timed: folding the sealed records into the
   hourly counts (monitoring.services.accumulate_sealed) and computing and storing the day's
   window (drift of every feature and of the prediction, from the log to a stored
   MonitoringWindow). Then a 1-day window of a second version whose log holds a year.
3. The peers, each in its own virtualenv under bench/ (never project dependencies), as child
   processes that read the .npz files and time only the drift computation: Evidently's
   DataDriftPreset() and DataDriftPreset(method="psi"), and NannyML's univariate drift.
4. No-drift replay: the reference against 100 fresh windows of its own distribution.

BENCH_ROWS (default 1,000,000) sets the current rows, BENCH_REF_ROWS (default BENCH_ROWS) the
reference rows; BENCH_DATABASE_URL the database (dropped and created again); BENCH_PEERS=0 skips
the peers; BENCH_PROFILE=1 profiles our timed part (and marks its figures as profiled);
BENCH_EVIDENTLY_REPLAY=K runs Evidently's default preset on K replay windows too (one whole report
per window against the reference: slow, so not by default)."""

from __future__ import annotations

import gc
import json
import math
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

import datagen  # noqa: E402
import numpy as np  # noqa: E402

from bench.common import SMOKE, database_url, sized, summary  # noqa: E402

N = int(os.environ.get("BENCH_ROWS", str(sized(1_000_000, 5_000))))
N_REF = int(os.environ.get("BENCH_REF_ROWS", str(N)))
N_TRAIN = 20_000
RECORD_ROWS = 1000
REPLAY_WINDOWS, REPLAY_ROWS = sized(100, 5), 10_000
MODEL = "bench-monitoring"
DB_URL = os.environ.get("BENCH_DATABASE_URL", database_url("monitoring"))
OUT = ROOT / "bench" / "var" / ("monitoring-smoke" if SMOKE else "monitoring")
PROFILE = os.environ.get("BENCH_PROFILE") == "1"
EVIDENTLY_REPLAY = int(os.environ.get("BENCH_EVIDENTLY_REPLAY", "0"))  # windows; 0: not run (slow)
os.environ["DATABASE_URL"] = DB_URL
os.environ.pop("CELERY_BROKER_URL", None)  # checks run in-process
os.environ.setdefault("MEDIA_ROOT", str(OUT / "media"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("EMAIL_URL", "dummymail://")  # drift alerts e-mail people: not to the console here
os.environ.setdefault("LOG_MAC_KEY_FILE", str(OUT / "log-mac.key"))
os.environ.setdefault("AUDIT_MAC_KEY_FILE", str(OUT / "audit-mac.key"))
# The evaluation CSV of 1,000,000 rows is about 100 MB (the default upload limit is 200 MB).
os.environ.setdefault("MAX_DATASET_BYTES", str(1024**3))
PEER_ENV = {"DO_NOT_TRACK": "1", "ITERATIVE_DO_NOT_TRACK": "1", "NML_DISABLE_USAGE_LOGGING": "1"}
VENVS = {"evidently": ROOT / "bench" / ".evidently-venv", "nannyml": ROOT / "bench" / ".nannyml-venv"}


# --- data ----------------------------------------------------------------------------------
def prepare_data() -> None:
    """Draw the data, train the model, write what every phase and peer reads."""
    import pandas as pd
    import skops.io as sio
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    OUT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    train = pd.DataFrame(datagen.draw(N_TRAIN, seed=datagen.SEEDS["train"]))
    reference = datagen.draw(N_REF, seed=datagen.SEEDS["reference"])
    current = datagen.draw(N, seed=datagen.SEEDS["current"], shifted=True)
    fresh = datagen.draw(REPLAY_WINDOWS * REPLAY_ROWS, seed=datagen.SEEDS["fresh"])
    model = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        ("numeric", StandardScaler(), datagen.NUMERIC),
                        ("categorical", OneHotEncoder(handle_unknown="ignore"), datagen.CATEGORICAL),
                    ]
                ),
            ),
            ("classify", LogisticRegression(max_iter=1000)),
        ]
    )
    model.fit(train[datagen.FEATURES], train[datagen.LABEL])
    probabilities = model.predict_proba(pd.DataFrame({f: current[f] for f in datagen.FEATURES}))
    np.save(OUT / "current_proba.npy", probabilities)
    (OUT / "model.skops").write_bytes(sio.dumps(model))
    (OUT / "classes.json").write_text(json.dumps([int(c) for c in model.classes_]))
    train.to_csv(OUT / "train.csv", index=False)
    pd.DataFrame(reference).to_csv(OUT / "reference.csv", index=False)
    for name, columns in (("reference", reference), ("current", current), ("fresh", fresh)):
        datagen.save(OUT / f"{name}.npz", columns)
    datagen.write_layout(OUT / "layout.json")
    print(f"  data drawn, model trained, files written in {time.perf_counter() - started:.1f} s", flush=True)


# --- the database ------------------------------------------------------------------------
def recreate_database() -> None:
    import psycopg

    name = DB_URL.rsplit("/", 1)[1]
    admin = DB_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def day_start() -> datetime:
    """The monitored day: midnight UTC two days ago (a whole day, in the past)."""
    from django.utils import timezone

    return (timezone.now() - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)


def release_version(*, scientist: Any, officer: Any, parent: Any = None) -> Any:
    """Register (or add) a version through the services, run its checks, approve and deploy it."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from governance import workflow
    from governance.models import CheckRun
    from lifecycle import services
    from lifecycle.models import CARD_FIELDS

    if parent is None:
        services.register_model(actor=scientist, name=MODEL, title="Monitoring benchmark", risk_tier="low")
        training = services.DatasetChoice(upload=SimpleUploadedFile("train.csv", (OUT / "train.csv").read_bytes()))
        evaluation = services.DatasetChoice(
            upload=SimpleUploadedFile("reference.csv", (OUT / "reference.csv").read_bytes())
        )
    else:
        training = services.DatasetChoice(dataset_id=parent.training_dataset_id)
        evaluation = services.DatasetChoice(dataset_id=parent.evaluation_dataset_id)
    version = services.create_version(
        actor=scientist,
        model_name=MODEL,
        artifact=SimpleUploadedFile("model.skops", (OUT / "model.skops").read_bytes()),
        training=training,
        evaluation=evaluation,
        label_column=datagen.LABEL,
        sensitive_features=["region"],
        parent_version=parent.version if parent is not None else None,
        card={field: f"Benchmark model: {field.replace('_', ' ')}." for field in CARD_FIELDS},
    )
    workflow.submit_version(version.pk, actor=scientist)
    version.refresh_from_db()
    checks = list(CheckRun.objects.filter(version=version, round=version.review_round))
    failing = [f"{c.kind}: {c.status}" for c in checks if c.gating and c.status != "passed"]
    workflow.approve_version(version.pk, actor=officer, justification="benchmark", override=bool(failing))
    workflow.deploy_version(version.pk, actor=officer, justification="benchmark")
    version.refresh_from_db()
    kinds = ", ".join(f"{c.kind} {c.status}" for c in checks)
    print(f"  {MODEL} v{version.version}: checks {kinds}; approved and deployed", flush=True)
    return version


class Log:
    """Writes logged records of the current rows with COPY, as serving.log would store them:
    canonical JSON inputs (a list of row dicts) and outputs, the real Merkle leaf and MAC."""

    def __init__(self) -> None:
        current = datagen.load(OUT / "current.npz")
        self.columns = {name: current[name].tolist() for name in datagen.FEATURES}
        proba = np.load(OUT / "current_proba.npy")
        self.classes = json.loads((OUT / "classes.json").read_text())
        self.labels = [self.classes[i] for i in proba.argmax(axis=1)]
        self.proba = proba.tolist()
        self.n = len(self.labels)

    def texts(self, first: int) -> tuple[int, str, str]:
        from serving.log import dump_json

        a = first % self.n
        b = min(self.n, a + RECORD_ROWS)
        names = datagen.FEATURES
        values = zip(*(self.columns[f][a:b] for f in names), strict=True)
        rows = [dict(zip(names, row, strict=True)) for row in values]
        outputs = {"predictions": self.labels[a:b], "probabilities": self.proba[a:b], "classes": self.classes}
        return b - a, dump_json(rows), dump_json(outputs)

    def write(self, version: Any, times: list[datetime], first_row: int = 0) -> tuple[int, float]:
        """One record of up to 1,000 rows per time; returns (rows, seconds)."""
        from django.db import connection

        from serving.log import mac_of, record_leaf
        from serving.models import PredictionLog

        started = time.perf_counter()
        fields = [f for f in PredictionLog._meta.concrete_fields if not f.primary_key]
        quote = connection.ops.quote_name
        sql = f"COPY {quote(PredictionLog._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) FROM STDIN"
        rng = np.random.default_rng(7)
        rows = 0
        with connection.cursor() as cursor:
            for offset in range(0, len(times), 100):
                with cursor.cursor.copy(sql) as copy:
                    for k in range(offset, min(len(times), offset + 100)):
                        n_rows, inputs_json, outputs_json = self.texts(first_row + k * RECORD_ROWS)
                        record = PredictionLog(
                            public_id=uuid.uuid4(),
                            created_at=times[k],
                            model_name=MODEL,
                            version=version,
                            version_number=version.version,
                            caller="api-key:bench",
                            request_id=f"bench-{version.version}-{k}",
                            protocol="v1",
                            outcome="ok",
                            reason="",
                            n_rows=n_rows,
                            inputs_json=inputs_json,
                            outputs_json=outputs_json,
                            engine="onnx",
                            latency_ms=round(float(rng.lognormal(3.0, 0.3)), 3),
                        )
                        leaf = record_leaf(record)
                        record.leaf_hash = leaf.hex()
                        record.mac = mac_of(leaf)
                        copy.write_row([f.get_db_prep_save(getattr(record, f.attname), connection) for f in fields])
                        rows += n_rows
        return rows, time.perf_counter() - started


def seal_all() -> float:
    from serving.seals import seal_predictions

    started = time.perf_counter()
    while seal_predictions() is not None:
        pass
    return time.perf_counter() - started


def spread(start: datetime, length: timedelta, count: int) -> list[datetime]:
    return [start + (k + 0.5) * length / count for k in range(count)]


def setup_database() -> None:
    recreate_database()
    import django

    django.setup()
    import logging

    logging.getLogger("celery").setLevel(logging.WARNING)  # the checks run eagerly: no line per task
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from core.role_changes import grant_role
    from governance.policies import active_policy, update_policy

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    scientist, _ = User.objects.get_or_create(username="bench-ds")
    officer, _ = User.objects.get_or_create(username="bench-ro")
    grant_role(scientist, "data-scientists", actor=None, justification="benchmark user")
    grant_role(officer, "risk-officers", actor=None, justification="benchmark user")
    # The fairness check is not what is measured here: its thresholds are opened as in
    # bench/serving/prepare.py. The monitoring thresholds (psi_warn, psi_alert) keep their defaults.
    update_policy(
        active_policy().pk,
        actor=None,
        justification="Set for the benchmark.",
        changes={"max_fairness_difference": 1.0, "min_fairness_ratio": 0.0},
    )
    first = release_version(scientist=scientist, officer=officer)
    second = release_version(scientist=scientist, officer=officer, parent=first)
    print(f"  database, model and two versions ready in {time.perf_counter() - started:.1f} s", flush=True)
    day = day_start()
    log = Log()
    rows, seconds = log.write(first, spread(day, timedelta(days=1), math.ceil(N / RECORD_ROWS)))
    sealed = seal_all()
    print(
        f"  v{first.version}: {rows:,} rows logged over {day:%Y-%m-%d} in {math.ceil(N / RECORD_ROWS):,} records "
        f"(COPY {seconds:.1f} s), sealed in {sealed:.1f} s",
        flush=True,
    )
    (OUT / "setup.json").write_text(
        json.dumps({"day": day.isoformat(), "first": first.pk, "second": second.pk, "rows": rows})
    )


# --- ours: timed in fresh processes --------------------------------------------------------
def window_function() -> tuple[str, Any]:
    """monitoring.services.compute_window (the interface the issue names) or store_window."""
    from monitoring import services

    for name in ("compute_window", "store_window"):
        if hasattr(services, name):
            return name, getattr(services, name)
    raise SystemExit("monitoring.services has neither compute_window nor store_window")


def summarise(window: Any) -> dict[str, Any]:
    drift = {
        name: {k: item.get(k) for k in ("psi", "ks_statistic", "ks_pvalue", "level")}
        for name, item in (window.drift or {}).items()
    }
    prediction = {k: (window.prediction_drift or {}).get(k) for k in ("psi", "ks_statistic", "ks_pvalue", "level")}
    return {
        "rows": window.rows,
        "ks_rows": (window.performance or {}).get("ks_rows"),
        "drift": drift,
        "prediction": prediction,
        "flagged": [name for name, item in drift.items() if item["level"] not in ("ok", None)],
        "alerts": len(window.alerts or []),
        "level": window.level,
    }


def timed(fn: Any, profile_to: Path | None) -> tuple[Any, float]:
    if profile_to is None:
        started = time.perf_counter()
        result = fn()
        return result, time.perf_counter() - started
    import cProfile

    profiler = cProfile.Profile()
    started = time.perf_counter()
    result = profiler.runcall(fn)
    seconds = time.perf_counter() - started
    profiler.dump_stats(str(profile_to))
    return result, seconds


def print_profile(path: Path, title: str) -> None:
    import pstats

    print(f"\nProfile of {title} (cumulative, top 30):")
    pstats.Stats(str(path)).sort_stats("cumulative").print_stats(30)


def measure_ours() -> None:
    import django

    django.setup()
    from datetime import datetime as dt

    from lifecycle.models import ModelVersion
    from monitoring import services

    setup = json.loads((OUT / "setup.json").read_text())
    day = dt.fromisoformat(setup["day"])
    version = ModelVersion.objects.get(pk=setup["first"])
    name, window_of = window_function()
    gc.collect()
    folded, t_fold = timed(services.accumulate_sealed, OUT / "fold.prof" if PROFILE else None)
    window, t_window = timed(
        lambda: window_of(version.pk, start=day, end=day + timedelta(days=1)), OUT / "window.prof" if PROFILE else None
    )
    result = {
        "function": name,
        "folded": folded,
        "accumulate_seconds": t_fold,
        "window_seconds": t_window,
        "window": summarise(window),
        "replay": replay_ours(version),
    }
    (OUT / "ours.json").write_text(json.dumps(result))


def replay_ours(version: Any) -> dict[str, Any]:
    """The reference profile the approval bound against 100 fresh windows of the reference's own
    distribution, judged as a window is (monitoring.drift.level_of: PSI, and KS or the category
    shift with their significance and effect floors) at the policy's default thresholds."""
    from governance import profile
    from monitoring import drift
    from monitoring import reference as references

    reference = references.reference_of(version)
    thresholds = drift.Thresholds()
    fresh = datagen.load(OUT / "fresh.npz")
    flagged: list[str] = []
    largest = 0.0
    started = time.perf_counter()
    for w in range(REPLAY_WINDOWS):
        part = slice(w * REPLAY_ROWS, (w + 1) * REPLAY_ROWS)
        for name in datagen.FEATURES:
            entry = reference.profile["features"][name]
            tested = shift = None
            if entry["kind"] == "numeric":
                current = fresh[name][part].astype(float)
                counts = profile.count_numeric(current, entry["edges"])
                tested = drift.ks(np.asarray(entry.get("values", []), dtype=float), current)
            else:
                counts = profile.count_categorical(fresh[name][part].tolist(), entry["categories"])
                shift = drift.category_shift(entry["counts"], counts)
            value = drift.psi(entry["counts"], counts)
            largest = max(largest, value or 0.0)
            if drift.level_of(value, REPLAY_ROWS, thresholds, ks=tested, category=shift) != "ok":
                flagged.append(f"{w}:{name}")
    return {
        "column_windows": REPLAY_WINDOWS * len(datagen.FEATURES),
        "flagged": len(flagged),
        "largest_psi": largest,
        "seconds": time.perf_counter() - started,
    }


def measure_year() -> None:
    """A second version whose log holds the current rows spread over the 365 days before the
    monitored day, folded as they would have been over the year; then the day's records arrive
    (at the year's rate), are sealed, and the day's window is timed: fold + window."""
    import django

    django.setup()
    from datetime import datetime as dt

    from lifecycle.models import ModelVersion
    from monitoring import services
    from monitoring.models import HourlyCounts

    setup = json.loads((OUT / "setup.json").read_text())
    day = dt.fromisoformat(setup["day"])
    version = ModelVersion.objects.get(pk=setup["second"])
    log = Log()
    records = math.ceil(N / RECORD_ROWS)
    year_rows, t_copy = log.write(version, spread(day - timedelta(days=365), timedelta(days=365), records))
    t_seal = seal_all()
    started = time.perf_counter()
    services.accumulate_sealed()
    t_backlog = time.perf_counter() - started
    per_day = max(1, math.ceil(records / 365))
    day_rows, _ = log.write(version, spread(day, timedelta(days=1), per_day), first_row=records * RECORD_ROWS)
    seal_all()
    name, window_of = window_function()
    gc.collect()
    folded, t_fold = timed(services.accumulate_sealed, None)
    window, t_window = timed(lambda: window_of(version.pk, start=day, end=day + timedelta(days=1)), None)
    result = {
        "year_rows": year_rows,
        "year_copy_seconds": t_copy,
        "year_seal_seconds": t_seal,
        "year_fold_seconds": t_backlog,
        "hours": HourlyCounts.objects.filter(version=version).count(),
        "day_rows": day_rows,
        "folded": folded,
        "accumulate_seconds": t_fold,
        "window_seconds": t_window,
        "window": summarise(window),
    }
    (OUT / "year.json").write_text(json.dumps(result))


def phase(name: str) -> dict[str, Any]:
    subprocess.run([sys.executable, __file__], env={**os.environ, "BENCH_PHASE": name}, check=True)
    return json.loads((OUT / f"{name}.json").read_text())


# --- the peers -----------------------------------------------------------------------------
def peer(tool: str, *args: str) -> dict[str, Any]:
    python = VENVS[tool] / "bin" / "python"
    if not python.exists():
        return {"error": f"{VENVS[tool].relative_to(ROOT)} is missing (make bench-monitoring creates it)"}
    script = HERE / f"peer_{tool}.py"
    done = subprocess.run(
        [str(python), str(script), str(OUT), *args],
        env={**os.environ, **PEER_ENV},
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {done.returncode}: " + " / ".join(tail)}
    return json.loads(lines[-1])


# --- the table -----------------------------------------------------------------------------
def caught(flagged: list[str]) -> tuple[int, int]:
    shifted = {datagen.SHIFTED_NUMERIC, datagen.SHIFTED_CATEGORICAL}
    return len(shifted & set(flagged)), len(set(flagged) - shifted)


def expected_psi() -> tuple[float, float]:
    """PSI of the two shifts over the reference's bins, from the distributions themselves: a normal
    column shifted by SHIFT_SIGMA over its deciles, and the channel shares before and after."""
    from scipy import stats

    from monitoring import drift

    edges = stats.norm.ppf(np.arange(1, 10) / 10)
    shifted = np.diff(np.concatenate([[0.0], stats.norm.cdf(edges - datagen.SHIFT_SIGMA), [1.0]]))
    numeric = drift.psi(np.full(10, 0.1), shifted) or 0.0
    before = datagen.CATEGORIES[datagen.SHIFTED_CATEGORICAL][1]
    categorical = drift.psi(before, datagen.channel_shares(datagen.CATEGORY_SHIFT)) or 0.0
    return numeric, categorical


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(ours: dict[str, Any], year: dict[str, Any], peers: dict[str, dict[str, Any]]) -> None:
    window = ours["window"]
    total = ours["accumulate_seconds"] + ours["window_seconds"]
    profiled = " (profiled: cProfile slows it)" if PROFILE else ""
    stable = len(datagen.FEATURES) - 2
    print()
    print(
        f"Monitoring benchmark: {window['rows']:,} logged rows x {len(datagen.FEATURES)} features "
        f"({len(datagen.NUMERIC)} numeric, {len(datagen.CATEGORICAL)} categorical) against a {N_REF:,}-row "
        f"reference; {os.cpu_count()} cores"
    )
    print(
        f"Shifted: {datagen.SHIFTED_NUMERIC} (normal) by {datagen.SHIFT_SIGMA} sigma; {datagen.SHIFTED_CATEGORICAL} "
        f"'partner' from 10% to {10 + 100 * datagen.CATEGORY_SHIFT:.0f}% of rows. Peers time their drift computation "
        f"only (data already in memory; no file reading, no imports)."
    )
    print()
    print("| tool | seconds | columns flagged | shifted columns caught | stable columns flagged |")
    print("|---|---|---|---|---|")
    hit, false = caught(window["flagged"])
    flagged = ", ".join(window["flagged"]) or "none"
    print(
        f"| ours: fold sealed log + {ours['function']} (PostgreSQL log -> stored window){profiled} | {total:.2f} | "
        f"{flagged} | {hit} of 2 | {false} of {stable} |"
    )
    print(f"| - of which accumulate_sealed ({ours['folded']:,} rows folded) | {ours['accumulate_seconds']:.2f} | | | |")
    print(
        f"| - of which the window (PSI from hourly counts; KS on {window['ks_rows']:,} sampled rows) | "
        f"{ours['window_seconds']:.2f} | | | |"
    )
    labels = {
        "evidently-default": "Evidently DataDriftPreset()",
        "evidently-psi": 'Evidently DataDriftPreset(method="psi")',
        "nannyml": "NannyML univariate drift (defaults; current = one chunk)",
    }
    for key, label in labels.items():
        result = peers.get(key)
        if result is None:
            print(f"| {label} | not run (BENCH_PEERS=0) | | | |")
            continue
        if "error" in result:
            print(f"| {label} | failed: {result['error']} | | | |")
            continue
        hit, false = caught(result["flagged"])
        version = result.get("version", "")
        print(
            f"| {label} {version} | {result['seconds']:.2f} | {', '.join(result['flagged']) or 'none'} | "
            f"{hit} of 2 | {false} of {stable} |"
        )
    print()
    for name in (datagen.SHIFTED_NUMERIC, datagen.SHIFTED_CATEGORICAL):
        item = window["drift"].get(name, {})
        ks = f", KS {item['ks_statistic']:.4f} (p = {item['ks_pvalue']:.3g})" if item.get("ks_statistic") else ""
        print(f"Ours on {name}: PSI {item.get('psi', float('nan')):.4f}{ks}, level {item.get('level')}")
    numeric, categorical = expected_psi()
    print(
        f"Expected PSI of these two shifts (from the distributions, not the samples): {datagen.SHIFTED_NUMERIC} "
        f"{numeric:.4f}, {datagen.SHIFTED_CATEGORICAL} {categorical:.4f}; the default warn threshold is 0.10"
    )
    stable_psi = max((v["psi"] or 0.0) for k, v in window["drift"].items() if k not in datagen.SHIFTED)
    prediction = window["prediction"]
    print(
        f"Ours: largest PSI of a stable column {stable_psi:.4f}; __prediction__ PSI {prediction.get('psi') or 0:.4f} "
        f"({prediction.get('level')}); {window['alerts']} alert(s), window level {window['level']}"
    )
    for key in ("evidently-default", "evidently-psi", "nannyml"):
        result = peers.get(key) or {}
        if "scores" in result:
            shown = ", ".join(
                f"{name} {result['scores'][name]:.4f} ({result['methods'][name]})" for name in datagen.SHIFTED
            )
            extra = f"; {result['note']}" if result.get("note") else ""
            print(f"{labels[key]}: {shown}{extra}")
    year_total = year["accumulate_seconds"] + year["window_seconds"]
    print()
    print(
        f"1-day window on a 1-year log: {year_total:.2f} s (fold the day's {year['folded']:,} new rows "
        f"{year['accumulate_seconds']:.2f} s + window {year['window_seconds']:.2f} s); the version's log holds "
        f"{year['year_rows']:,} rows over the 365 days before it, already folded into {year['hours']:,} hourly "
        f"counts (that fold took {year['year_fold_seconds']:.1f} s once, as seals arrived)"
    )
    replay = ours["replay"]
    rate = replay["flagged"] / replay["column_windows"]
    print(
        f"No-drift replay ({REPLAY_WINDOWS} windows x {REPLAY_ROWS:,} rows of the reference's own distribution, "
        "the default policy: PSI 0.10/0.25, KS or category shift at p < 0.001 with effect >= 0.05): "
        f"ours flagged {replay['flagged']} of {replay['column_windows']} "
        f"column-windows = {rate:.2%} (largest PSI {replay['largest_psi']:.4f})"
    )
    replays = (
        ("nannyml-replay", "NannyML (defaults, fitted and scored in chunks of 10,000)"),
        ("evidently-replay", f"Evidently DataDriftPreset() ({EVIDENTLY_REPLAY} windows, one report each)"),
    )
    for key, label in replays:
        result = peers.get(key)
        if result is None:
            if key == "evidently-replay":
                print(
                    f"  {label}: not run (each window is a whole report against the {N_REF:,}-row reference, about "
                    "22 s each for 1,000,000 rows here; BENCH_EVIDENTLY_REPLAY=100 runs them)"
                )
            continue
        if "error" in result:
            print(f"  {label}: failed: {result['error']}")
            continue
        peer_rate = result["flagged_count"] / result["column_windows"]
        print(
            f"  {label}: flagged {result['flagged_count']} of {result['column_windows']} column-windows "
            f"= {peer_rate:.2%} ({result['seconds']:.1f} s)"
        )
    print()
    print("Targets" + (" (SMOKE: figures mean nothing)" if SMOKE else "") + ":")
    print(f"  window over {window['rows']:,} rows <= 5 s end to end: {total:.2f} s  {verdict(total <= 5)}")
    evidently = peers.get("evidently-default") or {}
    peer_text = f"Evidently {evidently['seconds']:.1f} s" if "seconds" in evidently else ""
    nanny = peers.get("nannyml") or {}
    peer_text += (", " if peer_text else "") + (f"NannyML {nanny['seconds']:.1f} s" if "seconds" in nanny else "")
    summary("monitoring", f"drift window over {window['rows']:,} logged rows, end to end", f"{total:.2f} s",
            "≤ 5 s", peer_text, total <= 5)  # fmt: skip
    if "seconds" in evidently:
        ratio = evidently["seconds"] / total
        print(f"  >= 10x faster than Evidently's default preset: {ratio:.1f}x  {verdict(ratio >= 10)}")
        summary("monitoring", "ours / Evidently's default preset", f"{ratio:.1f}x faster", "≥ 10x",
                f"Evidently {evidently['seconds']:.1f} s", ratio >= 10)  # fmt: skip
    else:
        print("  >= 10x faster than Evidently's default preset: not measured")
    hit, false = caught(window["flagged"])
    print(f"  both shifted columns flagged: {hit} of 2  {verdict(hit == 2)}")
    print(f"  no stable column flagged: {false} of {stable}  {verdict(false == 0)}")
    print(f"  no-drift false-alert rate <= 1%: {rate:.2%}  {verdict(rate <= 0.01)}")
    summary("monitoring", "shifted columns flagged / stable columns flagged", f"{hit} of 2 / {false} of {stable}",
            "2 / 0", "", hit == 2 and false == 0)  # fmt: skip
    summary("monitoring", "no-drift false-alert rate", f"{rate:.2%}", "≤ 1%", "", rate <= 0.01)


def main() -> None:
    if os.environ.get("BENCH_PHASE") == "ours":
        measure_ours()
        return
    if os.environ.get("BENCH_PHASE") == "year":
        measure_year()
        return
    affinity = len(os.sched_getaffinity(0))
    cores = f"{os.cpu_count()} cores ({affinity} usable)"
    print(f"Monitoring benchmark: {N:,} current rows, {N_REF:,} reference rows; {cores}")
    prepare_data()
    setup_database()
    print("Timing ours (a fresh process)...", flush=True)
    ours = phase("ours")
    if PROFILE:
        print_profile(OUT / "fold.prof", "accumulate_sealed")
        print_profile(OUT / "window.prof", ours["function"])
    print("Timing a 1-day window on a 1-year log (a fresh process; fills the year first)...", flush=True)
    year = phase("year")
    peers: dict[str, dict[str, Any]] = {}
    if os.environ.get("BENCH_PEERS", "0" if SMOKE else "1") != "0":
        for key, tool, args in (
            ("evidently-default", "evidently", ("default",)),
            ("evidently-psi", "evidently", ("psi",)),
            ("nannyml", "nannyml", ("main",)),
            ("nannyml-replay", "nannyml", ("replay",)),
            *([("evidently-replay", "evidently", ("replay", str(EVIDENTLY_REPLAY)))] if EVIDENTLY_REPLAY else []),
        ):
            print(f"Running {key}...", flush=True)
            peers[key] = peer(tool, *args)
    (OUT / "results.json").write_text(json.dumps({"ours": ours, "year": year, "peers": peers}, indent=1))
    report(ours, year, peers)


if __name__ == "__main__":
    main()
