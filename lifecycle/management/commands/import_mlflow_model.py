"""manage.py import_mlflow_model PATH --name NAME --user USERNAME --training-data F
--evaluation-data F --label-column L [--sensitive-feature S ...]: a draft version, created by
USERNAME, from an MLflow model directory saved with skops (the model is registered if new)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import DomainError
from lifecycle.errors import SubmissionInvalid
from lifecycle.mlflow_import import Source, import_mlflow_model
from lifecycle.submission import DatasetChoice


def _csv(path: str) -> DatasetChoice:
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"No such file: {path}")
    return DatasetChoice(upload=SimpleUploadedFile(file.name, file.read_bytes(), content_type="text/csv"))


class Command(BaseCommand):
    help = "Import an MLflow model directory (sklearn flavor saved with skops) as a draft version."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="the MLflow model directory (holding MLmodel)")
        parser.add_argument("--name", required=True, help="the registered model (registered if new)")
        parser.add_argument("--user", required=True, help="the data scientist who becomes the version's creator")
        parser.add_argument("--training-data", required=True)
        parser.add_argument("--evaluation-data", required=True)
        parser.add_argument("--label-column", required=True)
        parser.add_argument("--sensitive-feature", action="append", default=[])
        parser.add_argument("--title", default="", help="title of a newly registered model")
        parser.add_argument("--risk-tier", default="medium", help="proposed tier of a newly registered model")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"No user named {options['user']!r}.")
        directory = Path(options["path"])
        if not directory.is_dir():
            raise CommandError(f"{directory} is not a directory (an MLflow model directory holds an MLmodel file).")
        try:
            version = import_mlflow_model(
                actor=user,
                source=Source(directory=directory),
                model_name=options["name"],
                training=_csv(options["training_data"]),
                evaluation=_csv(options["evaluation_data"]),
                label_column=options["label_column"],
                sensitive_features=options["sensitive_feature"],
                title=options["title"],
                risk_tier=options["risk_tier"],
                source_path=str(directory.resolve()),
            )
        except SubmissionInvalid as exc:
            lines = [f"{field}: {msg}" for field, msgs in exc.errors.items() for msg in msgs]
            raise CommandError("The import was refused:\n" + "\n".join(lines))
        except DomainError as exc:
            raise CommandError(exc.message)
        self.stdout.write(f"Imported {version} as a draft (artifact SHA-256 {version.artifact_sha256}).")
