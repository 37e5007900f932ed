from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

# The governance fixtures (a version in review, one served and sealed) are the auditors' material too.
from tests.governance.conftest import LONG_JUSTIFICATION, in_review, lenient_policy, served  # noqa: F401


@pytest.fixture
def verify_now(client: Client, django_capture_on_commit_callbacks: Any, eager_tasks: None) -> Callable[[], str]:
    """Verify now as the page does it: start the job (a worker runs it once the request
    commits, eagerly here) and open the job page it redirects to."""

    def run() -> str:
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post("/audit/jobs/", {"kind": "verify"})
        assert response.status_code == 302, response.status_code
        return client.get(response["Location"]).content.decode()

    return run
