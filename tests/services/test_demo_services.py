"""`make demo`'s data on PostgreSQL: seed_demo, then verify_audit, must pass."""

from __future__ import annotations

import io

from django.core.management import call_command

from lifecycle.models import ModelVersion, Status
from serving.models import LogSource, PredictionLog


def test_seed_demo_then_verify_audit_passes_on_postgresql(committed_db, eager_tasks):
    """The whole demo (checks in-process, so the shadow replays, batch job and seals are made),
    written and read back by PostgreSQL: every record, seal and evidence row verifies."""
    call_command("seed_demo", stdout=io.StringIO())
    # the shadow replays (latency 0 written as an int, read back as 0.0) are checked by their MACs
    assert PredictionLog.objects.filter(source=LogSource.SHADOW).exclude(mac="").exists()
    assert PredictionLog.objects.filter(source=LogSource.BATCH).exists()
    out = io.StringIO()
    call_command("verify_audit", stdout=out)  # raises CommandError (exit 1) on anything broken
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Audit trail OK") and "Suspended" not in out.getvalue(), lines
    assert any(line.startswith("Prediction log OK") for line in lines), lines
    assert any(line.startswith("Evidence OK") for line in lines) and lines[-1].startswith("Verification PASSED"), lines
    # the shadow replays sealed now: their leaves recomputed from the rows give the sealed roots
    sealed = io.StringIO()
    call_command("seal_predictions", stdout=sealed)
    assert sealed.getvalue().startswith("Sealed "), sealed.getvalue()
    assert not PredictionLog.objects.filter(seal__isnull=True).exists()
    call_command("verify_audit", stdout=io.StringIO())


def test_seed_demo_with_the_real_worker_then_verify_audit_passes(committed_db, celery_worker_process):
    """As after `make serve`: the checks go to the worker; once it is done, everything verifies."""
    from tests.services.conftest import wait_for

    call_command("seed_demo", stdout=io.StringIO())
    wait_for(
        lambda: not ModelVersion.objects.filter(status=Status.CHECKING).exists(),
        message="the worker to finish the demo's checks",
    )
    out = io.StringIO()
    call_command("verify_audit", stdout=out)
    assert out.getvalue().splitlines()[-1].startswith("Verification PASSED"), out.getvalue()
