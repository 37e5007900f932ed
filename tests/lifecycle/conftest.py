"""Fixtures the MLflow import tests share with governance: a policy that lets the demo model pass."""

from tests.governance.conftest import lenient_policy  # noqa: F401
