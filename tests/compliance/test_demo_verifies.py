"""`make demo` verifies: seed_demo then verify_audit exits 0, and "Verify now" says
PASSED on its badge without showing where the server keeps its files."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from compliance.models import JobKind, ReportJob
from serving.models import LogSource, PredictionLog


@pytest.mark.django_db(transaction=True)
def test_seed_demo_then_verify_audit_passes(eager_tasks: None) -> None:
    """As `make demo` runs it (every transaction commits, checks in-process): the shadow replays,
    whose latency is written as the int 0 and read back as 0.0, match their MACs."""
    call_command("seed_demo", stdout=io.StringIO())
    assert PredictionLog.objects.filter(source=LogSource.SHADOW).exclude(mac="").exists()
    out = io.StringIO()
    call_command("verify_audit", stdout=out)  # CommandError (exit 1) on anything broken
    lines = out.getvalue().splitlines()
    assert "Suspended" not in out.getvalue() and lines[0].startswith("Audit trail OK"), lines
    assert any(line.startswith("Prediction log OK") for line in lines), lines
    assert any(line.startswith("Evidence OK") for line in lines), lines
    assert lines[-1].startswith("Verification PASSED"), lines  # the last line is the verdict
    # the shadow replays sealed now: their leaves recomputed from the rows give the sealed roots
    sealed = io.StringIO()
    call_command("seal_predictions", stdout=sealed)
    assert sealed.getvalue().startswith("Sealed "), sealed.getvalue()
    assert not PredictionLog.objects.filter(seal__isnull=True).exists()
    call_command("verify_audit", stdout=io.StringIO())


@pytest.mark.django_db(transaction=True)
def test_verify_now_on_the_demo_says_passed_and_shows_no_server_path(
    eager_tasks: None, client: Any, django_capture_on_commit_callbacks: Any, settings: Any, tmp_path: Path
) -> None:
    settings.CHECKPOINT_DIR = tmp_path / "var" / "checkpoints"  # none written yet: the message names it
    call_command("seed_demo", stdout=io.StringIO())
    client.force_login(get_user_model().objects.get(username="audrey"))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/audit/jobs/", {"kind": "verify"})
    page = client.get(response["Location"]).content.decode()
    job = ReportJob.objects.get(kind=JobKind.VERIFY)
    assert job.verdict == "PASSED", job.summary
    assert 'id="job-status" data-verdict="PASSED">Verification PASSED</span>' in page
    assert "Verified: the audit trail, the prediction seals and every evidence row are intact." in page
    assert "No checkpoint has been written to CHECKPOINT_DIR/checkpoints.log yet." in page
    download = client.get(f"/audit/jobs/{job.public_id}/result").content.decode()
    state = client.get(f"/audit/jobs/{job.public_id}/status.json").json()
    assert state["verdict"] == "PASSED" and state["status"] == "done"
    trail = client.get("/audit/trail/").content.decode()
    assert '<span class="badge job-passed">PASSED</span>' in trail
    for shown in (page, download, trail, str(job.summary)):
        for folder in (str(tmp_path), str(settings.BASE_DIR), str(settings.MEDIA_ROOT)):
            assert folder not in shown
