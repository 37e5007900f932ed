"""manage.py seed_demo, in the top layer so that it calls every app's demo directly. Loads a
realistic demo: one user per role, the German credit data, real scikit-learn models saved with
skops and registered through the same services the forms use."""

from __future__ import annotations

import contextlib
from typing import Any

import skops.io as sio
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from compliance import checkpoints, demo_mrm
from compliance.demo_decisions import seed_demo_decision
from compliance.demo_killswitch import seed_demo_risk_management
from compliance.demo_oversight import seed_demo_oversight
from core.checkpoints import CheckpointError
from core.role_changes import grant_role
from core.roles import AUDITORS, CASE_OFFICERS, DATA_SCIENTISTS, RISK_OFFICERS, VALIDATORS
from governance import bindings, workflow
from governance import services as governance_services
from integrations.demo import seed_webhook_demo
from lifecycle import demo_data, services
from lifecycle.mlflow_demo import seed_mlflow_demo
from lifecycle.models import ModelVersion, RegisteredModel, RiskTier, Status
from monitoring.demo import seed_demo_monitoring, seed_demo_shadow
from serving import batch
from serving.errors import ServingError
from serving.predict import Caller, PredictionRequest, predict
from serving.seals import seal_predictions

PASSWORD = "demo-password-2026"
USERS = [
    ("dana", "Dana", "Scientist", [DATA_SCIENTISTS]),
    ("sam", "Sam", "Modeller", [DATA_SCIENTISTS]),
    ("rita", "Rita", "Risk", [RISK_OFFICERS]),
    ("omar", "Omar", "Oversight", [RISK_OFFICERS]),
    ("audrey", "Audrey", "Auditor", [AUDITORS]),
    ("valerie", "Valerie", "Validator", [VALIDATORS]),
    ("cora", "Cora", "Caseworker", [CASE_OFFICERS]),
]

CARD = {
    "model_details": "Credit risk scorer for consumer loans. Built by the retail credit analytics team. "
    "scikit-learn pipeline: standardised numeric features and one-hot encoded categories.",
    "intended_use": "Support for loan officers pre-screening consumer loan applications. A human makes "
    "every final decision.",
    "out_of_scope_uses": "Automated rejection without human review; employment or insurance decisions; "
    "applicants outside the population of the training data.",
    "factors": "Sex and age group (under 25, 25 and over) are evaluated as sensitive attributes.",
    "metrics": "Accuracy, balanced accuracy, ROC AUC and F1 on a held-out set of 300 applicants; "
    "demographic parity and equalized odds across sex and age group.",
    "ethical_considerations": "Historic lending data can encode discrimination; sex must never be used "
    "to justify a decision to an applicant.",
    "caveats_and_recommendations": "Small dataset (1,000 applicants, 1970s Germany): recalibrate on "
    "local data before any real use.",
}


def _by_job(evaluation: Any, model: Any) -> Any:
    """A held-out sample stratified by job: in each job group large enough to measure (1, 2, 3)
    the same count of each (actual, predicted) pair, so the model treats them alike; and the 9
    applicants of group 0 (unskilled, non-resident), too few to measure: the demo's fairness is
    inconclusive for that group alone, until a risk officer waives it."""
    import pandas as pd

    predicted = model.predict(evaluation[demo_data.NUMERIC + demo_data.CATEGORICAL])
    frame = evaluation.assign(_predicted=predicted)
    cells = {(0, 0): 4, (0, 1): 8, (1, 1): 23}  # (actual, predicted): rows per job group
    parts = [frame[frame["job"] == 0]]
    for job in (1, 2, 3):
        for (actual, guess), n in cells.items():
            parts.append(
                frame[(frame["job"] == job) & (frame[demo_data.LABEL] == actual) & (frame["_predicted"] == guess)].head(
                    n
                )
            )
    return pd.concat(parts).drop(columns="_predicted").reset_index(drop=True)


def _upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data)


class Command(BaseCommand):
    help = "Load the demo: users for each role, the German credit datasets and two models."

    def handle(self, *args: Any, **options: Any) -> None:
        users = self._users()
        if RegisteredModel.objects.filter(name="credit-risk").exists():
            self.stdout.write("Demo models already loaded.")
            return
        train, evaluation = demo_data.split(demo_data.load_german_credit())
        train_csv, eval_csv = demo_data.to_csv_bytes(train), demo_data.to_csv_bytes(evaluation)
        dana, sam = users["dana"], users["sam"]

        demo_mrm.register_vendor(dana)  # A vendor model in the inventory
        credit = services.register_model(
            actor=dana,
            name="credit-risk",
            title="Consumer credit risk",
            description="Probability that a consumer loan applicant is a good credit risk.",
            risk_tier="medium",
            purpose="Score consumer loan applications for the loan officers' pre-screening.",
            exposure=25_000_000,
            decisions_per_year=40_000,
            affected_people=35_000,
            depends_on=["bureau-score"],
        )
        governance_services.set_risk_tier(
            credit.pk,
            actor=users["rita"],
            tier=RiskTier.HIGH,
            justification="Scores people for credit: high risk under the bank's model-risk policy (two approvals).",
        )
        v1 = services.create_version(
            actor=dana,
            model_name="credit-risk",
            artifact=_upload("credit-logreg.skops", sio.dumps(demo_data.train_logistic_regression(train))),
            training=services.DatasetChoice(upload=_upload("german-credit-train.csv", train_csv)),
            evaluation=services.DatasetChoice(upload=_upload("german-credit-eval.csv", eval_csv)),
            label_column=demo_data.LABEL,
            sensitive_features=demo_data.SENSITIVE,
            code_repository="https://git.example.org/retail-credit/credit-risk",
            code_commit="4e1d2a7",
            card=CARD,
            dataset_source=demo_data.SOURCE,
        )
        workflow.submit_version(v1.pk, actor=dana)
        demo_mrm.seed_validation(ModelVersion.objects.get(pk=v1.pk), users["valerie"])
        v2 = services.create_version(
            actor=dana,
            model_name="credit-risk",
            artifact=_upload("credit-forest.skops", sio.dumps(demo_data.train_random_forest(train))),
            training=services.DatasetChoice(dataset_id=v1.training_dataset_id),
            evaluation=services.DatasetChoice(dataset_id=v1.evaluation_dataset_id),
            label_column=demo_data.LABEL,
            sensitive_features=demo_data.SENSITIVE,
            parent_version=v1.version,
            code_repository="https://git.example.org/retail-credit/credit-risk",
            code_commit="9b03f5c",
            card={**CARD, "model_details": "Random forest (100 trees, depth 8) on the same features."},
        )
        services.register_model(
            actor=sam,
            name="loan-prescreen",
            title="Loan pre-screening (low risk)",
            description="Flags applications for a fast-track review queue.",
            risk_tier="low",
        )
        prescreen = services.create_version(
            actor=sam,
            model_name="loan-prescreen",
            artifact=_upload("prescreen.skops", sio.dumps(demo_data.train_random_forest(train, n_estimators=30))),
            training=services.DatasetChoice(dataset_id=v1.training_dataset_id),
            evaluation=services.DatasetChoice(dataset_id=v1.evaluation_dataset_id),
            label_column=demo_data.LABEL,
            sensitive_features=["sex"],
            # Age and sex are kept encrypted per applicant (the business key) in the log
            personal_features=["age", "sex"],
            subject_field="business_key",
            card={**CARD, "intended_use": "Routing applications to the fast-track queue only."},
        )
        workflow.submit_version(prescreen.pk, actor=sam)
        traffic_since = timezone.now()
        # An overlay in force (on every receipt of its decisions) and a KPI
        demo_mrm.seed_overlay_and_kpi(RegisteredModel.objects.get(name="loan-prescreen"), users["rita"], "sam")
        self._approve_and_deploy(prescreen.pk, users)
        # A challenger in shadow on the traffic above, and a batch job over a stored dataset.
        challenger = services.create_version(
            actor=sam,
            model_name="loan-prescreen",
            artifact=_upload("prescreen-logreg.skops", sio.dumps(demo_data.train_logistic_regression(train))),
            training=services.DatasetChoice(dataset_id=v1.training_dataset_id),
            evaluation=services.DatasetChoice(dataset_id=v1.evaluation_dataset_id),
            label_column=demo_data.LABEL,
            sensitive_features=["sex"],
            parent_version=prescreen.version,
            card={**CARD, "intended_use": "Routing applications to the fast-track queue only (challenger)."},
        )
        workflow.submit_version(challenger.pk, actor=sam)
        challenger.refresh_from_db()
        if ModelVersion.objects.get(pk=prescreen.pk).status == Status.PRODUCTION:
            seed_demo_shadow(challenger, officer=users["omar"], since=traffic_since)
            batch.accept_batch(
                model_name="loan-prescreen",
                version_number=None,
                submitter=batch.Submitter(caller="dana", user=dana, api_key=None),
                dataset_id=v1.evaluation_dataset_id,
            )
        # Model risk management: a pre-approved fallback, an incident (art. 73) and the control map.
        fallback = services.create_version(
            actor=sam,
            model_name="loan-prescreen",
            artifact=_upload("prescreen-small.skops", sio.dumps(demo_data.train_random_forest(train, n_estimators=10))),
            training=services.DatasetChoice(dataset_id=v1.training_dataset_id),
            evaluation=services.DatasetChoice(dataset_id=v1.evaluation_dataset_id),
            label_column=demo_data.LABEL,
            sensitive_features=["sex"],
            parent_version=prescreen.version,
            card={**CARD, "intended_use": "Fallback for fast-track routing while the main model is stopped."},
        )
        workflow.submit_version(fallback.pk, actor=sam)
        seed_demo_risk_management(fallback.pk, officer=users["rita"], second_officer=users["omar"])
        # Monitoring: a healthy model in production whose approval a risk officer can recertify.
        services.register_model(
            actor=sam,
            name="collections-priority",
            title="Collections priority (low risk)",
            description="Orders overdue accounts for the collections team's first call.",
            risk_tier="low",
        )
        collections_model = demo_data.train_logistic_regression(train)
        collections = services.create_version(
            actor=sam,
            model_name="collections-priority",
            artifact=_upload("collections.skops", sio.dumps(collections_model)),
            training=services.DatasetChoice(dataset_id=v1.training_dataset_id),
            evaluation=services.DatasetChoice(
                upload=_upload("collections-eval.csv", demo_data.to_csv_bytes(_by_job(evaluation, collections_model)))
            ),
            label_column=demo_data.LABEL,
            sensitive_features=["job"],
            card={**CARD, "intended_use": "Ordering the collections team's first calls only."},
        )
        workflow.submit_version(collections.pk, actor=sam)
        self._waive_small_group(collections.pk, users)
        self._approve_and_deploy(collections.pk, users, traffic=False)
        demo_mrm.seed_vendor_traffic(users["rita"])  # the vendor's decisions and outcomes, from a client key
        self.stdout.write(seed_webhook_demo(actor=users["rita"]))
        self.stdout.write(seed_mlflow_demo(actor=users["dana"]))  # a draft imported from MLflow
        # A signed, witnessed checkpoint of what was loaded: `verify_audit --checkpoints` holds the
        # demo to it (beat writes the next ones; without beat they are stale after two intervals).
        try:
            written = checkpoints.write_checkpoint()
            self.stdout.write(f"Checkpoint of audit-chain #{written.checkpoint.seq} written to {written.path}.")
        except CheckpointError as exc:
            self.stderr.write(f"No checkpoint written: {exc.message}")
        self.stdout.write(
            f"Loaded the demo: credit-risk v{v1.version} (submitted for review) and v{v2.version} (draft); "
            "loan-prescreen v1 (approved with an override and in production when the checks ran in-process)."
        )

    def _waive_small_group(self, version_id: int, users: dict[str, Any]) -> None:
        """Fairness on real evidence: job group 0 (unskilled, non-resident) has 9 applicants in the
        evaluation data, too few to measure, so the check is inconclusive naming it. A risk officer
        waives it with a justification; the version goes back and its next round records the waiver."""
        version = ModelVersion.objects.get(pk=version_id)
        if version.status != Status.IN_REVIEW:  # (a real broker: the checks are still queued)
            return
        governance_services.set_fairness_requirements(
            version.registered_model_id,
            actor=users["omar"],
            features=["job"],
            waivers={
                "job": {
                    "0": "Nine unskilled non-resident applicants are too few to measure; the collections team "
                    "reviews their calls by hand each month instead."
                }
            },
            justification="Job must be measured for collections calls; its group 0 is waived as too small.",
        )
        workflow.request_changes(
            version.pk,
            actor=users["rita"],
            justification="Fairness inconclusive on job group 0: resubmit with the waiver.",
        )
        workflow.submit_version(version.pk, actor=users["sam"])

    def _approve_and_deploy(self, version_id: int, users: dict[str, Any], *, traffic: bool = True) -> None:
        """With tasks in-process the checks have finished by now; with a real broker they are
        still queued, and the version waits in the review queue instead."""
        version = ModelVersion.objects.get(pk=version_id)
        if version.status != Status.IN_REVIEW:
            return
        workflow.approve_version(
            version.pk,
            actor=users["rita"],
            justification="Low-risk routing model only; the fairness gap on sex is accepted for a 3-month pilot "
            "with monthly monitoring.",
            override=bool(bindings.failing_checks(version)),
        )
        workflow.deploy_version(
            version.pk, actor=users["rita"], justification="Pilot start approved by the credit committee."
        )
        if traffic:
            self._demo_traffic(version, users)

    def _demo_traffic(self, version: ModelVersion, users: dict[str, Any]) -> None:
        """A few logged predictions (and one refused request) through the real serving path,
        then sealed, so the prediction log and the reports have something to show."""

        evaluation = demo_data.split(demo_data.load_german_credit())[1]
        features = [c["name"] for c in version.input_schema]
        rows = evaluation[features].head(40).to_dict(orient="records")
        caller = Caller(user=users["rita"], api_key=None)
        name = version.registered_model.name
        for i in range(0, len(rows), 4):
            predict(PredictionRequest(caller, name, "v1", request_id=f"demo-{i}", instances=rows[i : i + 4]))
        with contextlib.suppress(ServingError):  # refused and logged, as intended
            predict(PredictionRequest(caller, name, "v1", request_id="demo-bad", instances=[{"age": "old"}]))
        seed_demo_decision(version, reviewer=users["rita"])  # Application 2026-118
        seed_demo_oversight(version, officer=users["rita"])  # a queued decision and a contested one for cora
        seal_predictions()
        seed_demo_monitoring(version, user=users["rita"])  # a drift alert and open findings

    @transaction.atomic
    def _users(self) -> dict[str, Any]:
        User = get_user_model()
        users: dict[str, Any] = {}
        for username, first, last, roles in USERS:
            user, created = User.objects.get_or_create(
                username=username,
                defaults={
                    "first_name": first,
                    "last_name": last,
                    "email": f"{username}@demo.local",
                    # risk officers work in the Django admin, which needs staff status
                    "is_staff": RISK_OFFICERS in roles,
                },
            )
            if created:
                user.set_password(PASSWORD)
                user.save()
            for role in roles:
                grant_role(user, role, actor=None, justification="demo user created by seed_demo")
            users[username] = user
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@demo.local", PASSWORD)
        return users
