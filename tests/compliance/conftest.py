from __future__ import annotations

# The governance fixtures (a version in review, one served and sealed) are the auditors' material too.
from tests.governance.conftest import LONG_JUSTIFICATION, in_review, lenient_policy, served  # noqa: F401
