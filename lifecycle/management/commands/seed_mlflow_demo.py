"""manage.py seed_mlflow_demo --user USERNAME: the demo's MLflow import, a draft of
`credit-mlflow` created by the data scientist USERNAME (called by seed_demo)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import DomainError
from lifecycle.mlflow_demo import seed_mlflow_demo


class Command(BaseCommand):
    help = "Import the MLflow model shipped in lifecycle/demo_mlflow as a draft (the demo's import)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="the data scientist who becomes the version's creator")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = get_user_model().objects.filter(username=options["user"]).first()
        if actor is None:
            raise CommandError(f"No user named {options['user']!r}.")
        try:
            self.stdout.write(seed_mlflow_demo(actor=actor))
        except DomainError as exc:
            raise CommandError(exc.message)
