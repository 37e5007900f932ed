"""The demo's model risk management: a pre-approved fallback, an incident with its evidence
freeze, and a control map where most controls are proven; seed_demo then verify_audit still
exits 0."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.core.management import call_command
from django.utils import timezone

from compliance import controls, incidents
from compliance.models import Incident
from lifecycle.models import RegisteredModel


@pytest.mark.django_db(transaction=True)
def test_the_demo_has_a_fallback_an_incident_and_a_mostly_proven_control_map_and_verifies(eager_tasks, settings):
    settings.CHECKPOINT_SIGNING_KEY = hashlib.sha256(b"demo test key").hexdigest()
    settings.CHECKPOINT_WITNESS_KEY = hashlib.sha256(b"demo test witness").hexdigest()
    call_command("seed_demo", stdout=io.StringIO())
    model = RegisteredModel.objects.get(name="loan-prescreen")
    assert model.fallback_version is not None and model.fallback_version.status == "approved"
    incident = Incident.objects.get(registered_model=model)
    assert incidents.verify_freeze(incident).ok and len(incident.prediction_ids) == 2
    mapped = controls.control_map(model, timezone.now())
    counts = mapped["counts"]
    assert counts["proven"] > len(mapped["controls"]) / 2, counts
    assert counts["attested"] == 3
    statuses = {c["id"]: c["status"] for c in mapped["controls"]}
    assert statuses["EUAIA-73"] == statuses["EUAIA-14"] == statuses["EUAIA-12"] == statuses["EUAIA-10"] == "proven"
    out = io.StringIO()
    call_command("verify_audit", stdout=out)  # CommandError (exit 1) on anything broken
    assert "Verification PASSED" in out.getvalue(), out.getvalue()
