from __future__ import annotations

from typing import Any

import pytest

from governance import workflow
from governance.models import Policy
from governance.policies import active_policy
from lifecycle.models import ModelVersion, Status


@pytest.fixture
def lenient_policy(db: None) -> Policy:
    """Thresholds every demo model meets, so a test can choose when a check fails."""
    policy = active_policy()
    Policy.objects.filter(pk=policy.pk).update(max_fairness_difference=1.0, min_fairness_ratio=0.0)
    policy.refresh_from_db()
    return policy


def submit(version: ModelVersion, actor: Any, capture: Any) -> ModelVersion:
    with capture(execute=True):
        workflow.submit_version(version.pk, actor=actor)
    version.refresh_from_db()
    return version


@pytest.fixture
def in_review(draft_version, data_scientist, django_capture_on_commit_callbacks, eager_tasks, lenient_policy):
    version = submit(draft_version, data_scientist, django_capture_on_commit_callbacks)
    assert version.status == Status.IN_REVIEW
    return version
