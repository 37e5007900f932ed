"""Every table is in exactly one ledger class (core.ledger), declared once."""

from __future__ import annotations

from django.apps import apps
from django.core import checks
from django.db import models

from core import ledger


def test_every_installed_model_has_a_ledger_class() -> None:
    tables = [m for m in apps.get_models() if m._meta.managed and not m._meta.proxy]
    missing = [m._meta.label_lower for m in tables if ledger.entry_for(m) is None]
    assert missing == [], f"models without a ledger class: {missing}"
    assert ledger.unclassified() == []


def test_operational_tables_say_why_they_need_no_proof() -> None:
    for entry in ledger.entries():
        if entry.table_class is ledger.TableClass.OPERATIONAL:
            assert len(entry.reason.split()) >= 3, entry.label


def test_a_model_without_a_class_fails_the_system_check() -> None:
    class Throwaway(models.Model):
        class Meta:
            app_label = "core"

        def __str__(self) -> str:
            return "throwaway"

    try:
        assert "core.throwaway" in ledger.unclassified()
        errors = [e for e in ledger.check_every_table_classed() if e.id == "core.E001"]
        assert [e.msg for e in errors] == ["core.throwaway has no ledger class"]
        assert any(e.id == "core.E001" for e in checks.run_checks(tags=[checks.Tags.models]))
    finally:
        apps.all_models["core"].pop("throwaway")
        apps.clear_cache()
    assert ledger.unclassified() == []


def test_the_governed_and_evidence_tables_of_the_design_are_proven() -> None:
    proven = {e.label for e in ledger.proven_entries()}
    for label in (
        "lifecycle.registeredmodel",
        "lifecycle.modelversion",
        "lifecycle.modelcard",
        "lifecycle.dataset",
        "governance.policy",
        "governance.decision",
        "governance.deployment",
        "governance.checkrun",
        "governance.shadowcomparison",
        "serving.apikey",
        "serving.legalhold",
        "serving.batchjob",
        "serving.decisionreview",
        "serving.predictionoutcome",
        "integrations.webhookendpoint",
    ):
        assert label in proven, label
