"""Set up the benchmark models through the real workflow (run by bench/serving/run.py with
DATABASE_URL pointing at a fresh PostgreSQL database)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

import skops.io as sio  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402

from core.role_changes import grant_role  # noqa: E402
from governance import workflow  # noqa: E402
from governance.models import CheckRun  # noqa: E402
from governance.policies import active_policy, update_policy  # noqa: E402
from lifecycle import demo_data, services  # noqa: E402
from lifecycle.models import CARD_FIELDS  # noqa: E402
from serving.services import create_api_key  # noqa: E402


def user(name: str, role: str) -> User:
    u, _ = User.objects.get_or_create(username=name)
    grant_role(u, role, actor=None, justification="benchmark user")
    return u


def main(out: Path) -> None:
    scientist, officer = user("bench-ds", "data-scientists"), user("bench-ro", "risk-officers")
    policy = active_policy()
    update_policy(
        policy.pk,
        actor=None,
        justification="Set for the benchmark.",
        changes={"max_fairness_difference": 1.0, "min_fairness_ratio": 0.0},
    )
    train, evaluation = demo_data.split(demo_data.load_german_credit())
    train_csv, eval_csv = demo_data.to_csv_bytes(train), demo_data.to_csv_bytes(evaluation)
    models = {
        "bench-rf": demo_data.train_random_forest(train, n_estimators=100),
        "bench-logreg": demo_data.train_logistic_regression(train),
    }
    engines = {}
    for name, model in models.items():
        services.register_model(actor=scientist, name=name, title=name, risk_tier="low")
        version = services.create_version(
            actor=scientist,
            model_name=name,
            artifact=SimpleUploadedFile("m.skops", sio.dumps(model)),
            training=services.DatasetChoice(upload=SimpleUploadedFile("bench-train.csv", train_csv)),
            evaluation=services.DatasetChoice(upload=SimpleUploadedFile("bench-eval.csv", eval_csv)),
            label_column=demo_data.LABEL,
            sensitive_features=["sex"],
            card={field: f"Benchmark model: {field.replace('_', ' ')}." for field in CARD_FIELDS},
        )
        workflow.submit_version(version.pk, actor=scientist)
        version.refresh_from_db()
        engines[name] = {c.kind: c.status for c in CheckRun.objects.filter(version=version)}
        override = any(c.gating and c.status != "passed" for c in CheckRun.objects.filter(version=version))
        workflow.approve_version(version.pk, actor=officer, justification="benchmark", override=override)
        workflow.deploy_version(version.pk, actor=officer, justification="benchmark")
    _, key = create_api_key(actor=None, name="bench")
    features = demo_data.NUMERIC + demo_data.CATEGORICAL
    rows = evaluation[features].to_dict(orient="records")
    batch = [rows[i % len(rows)] for i in range(1000)]
    engine_ms = {name: _engine_ms(name, batch) for name in models}
    train.to_csv(out / "train.csv", index=False)
    (out / "setup.json").write_text(
        json.dumps(
            {
                "key": key,
                "features": features,
                "one": rows[:1],
                "batch": batch,
                "checks": engines,
                "engine_ms_per_batch": engine_ms,
            }
        )
    )


def _engine_ms(name: str, batch: list[dict]) -> float:
    """The model alone on one 1,000-row batch (median of 30, after loading): a floor that no
    server around it can go below."""
    import statistics
    import time

    from serving import engine
    from serving.selectors import get_servable_version

    version = get_servable_version(name)
    engine.predict(version, batch)
    times = []
    for _ in range(30):
        started = time.perf_counter()
        engine.predict(version, batch)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
