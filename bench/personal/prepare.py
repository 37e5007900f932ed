"""Two deployed versions of the same model, one declaring two personal fields (age, sex; the
subject is the business key), and the keys the benchmark uses (run by bench/personal/run.py with
DATABASE_URL set). Prints one JSON line."""

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
from governance import bindings, workflow  # noqa: E402
from governance.policies import active_policy, update_policy  # noqa: E402
from lifecycle import demo_data, services  # noqa: E402
from lifecycle.models import CARD_FIELDS, ModelVersion  # noqa: E402
from serving.services import create_api_key  # noqa: E402


def user(name: str, role: str) -> User:
    u, _ = User.objects.get_or_create(username=name)
    grant_role(u, role, actor=None, justification="benchmark user")
    return u


scientist, officer = user("bench-ds", "data-scientists"), user("bench-ro", "risk-officers")
update_policy(
    active_policy().pk,
    actor=None,
    justification="Set for the benchmark.",
    changes={"max_fairness_difference": 1.0, "min_fairness_ratio": 0.0},
)
train, evaluation = demo_data.split(demo_data.load_german_credit())
model = sio.dumps(demo_data.train_logistic_regression(train))
for name, personal in (("bench-plain", []), ("bench-personal", ["age", "sex"])):
    services.register_model(actor=scientist, name=name, title=name, risk_tier="low")
    version = services.create_version(
        actor=scientist,
        model_name=name,
        artifact=SimpleUploadedFile("m.skops", model),
        training=services.DatasetChoice(upload=SimpleUploadedFile("t.csv", demo_data.to_csv_bytes(train))),
        evaluation=services.DatasetChoice(upload=SimpleUploadedFile("e.csv", demo_data.to_csv_bytes(evaluation))),
        label_column=demo_data.LABEL,
        sensitive_features=["sex"],
        personal_features=personal,
        subject_field="business_key" if personal else "",
        card={field: f"Benchmark model: {field}." for field in CARD_FIELDS},
    )
    workflow.submit_version(version.pk, actor=scientist)
    version = ModelVersion.objects.get(pk=version.pk)
    workflow.approve_version(
        version.pk, actor=officer, justification="benchmark", override=bool(bindings.failing_checks(version))
    )
    workflow.deploy_version(version.pk, actor=officer, justification="benchmark")
_, client = create_api_key(actor=None, name="bench")
_, officer_key = create_api_key(actor=None, name="bench-officer", username="bench-ro")
features = demo_data.NUMERIC + demo_data.CATEGORICAL
rows = evaluation[features].to_dict(orient="records")
print(json.dumps({"key": client, "officer_key": officer_key, "rows": rows}))
