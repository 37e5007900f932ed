"""core.layers: LAYERS is the import-linter contract's order, and a lookup by name into a higher
layer fails `manage.py check` (core.E002), so the layers hold where imports cannot see."""

from __future__ import annotations

import io
import tomllib
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from core import layers

ROOT = Path(__file__).resolve().parents[2]


def test_layers_are_the_import_linter_contract_bottom_to_top():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contract = next(c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers")
    assert tuple(reversed(contract["layers"])) == layers.LAYERS


def test_the_repository_has_no_upward_lookup():
    assert layers.upward_lookups() == []
    call_command("check", stdout=io.StringIO())


@pytest.mark.parametrize(
    "call",
    ['apps.get_model("integrations", "WebhookEndpoint")', 'apps.get_model("compliance.Incident")'],
)
def test_a_lookup_of_a_higher_layer_fails_the_system_check(tmp_path, settings, call):
    for package in layers.LAYERS:
        (tmp_path / package).mkdir()
    (tmp_path / "governance" / "sneaky.py").write_text(
        f"from django.apps import apps\n\n\ndef provenance():\n    return {call}\n"
    )
    (tmp_path / "compliance" / "fine.py").write_text(
        'from django.apps import apps\nX = apps.get_model("lifecycle", "Dataset")\n'
    )
    found = layers.upward_lookups(tmp_path)
    assert [(str(f.path), f.line, f.source) for f in found] == [("governance/sneaky.py", 5, "governance")]

    settings.BASE_DIR = tmp_path
    with pytest.raises(SystemCheckError, match=r"core\.E002.*governance/sneaky\.py:5 looks up a model of"):
        call_command("check", stdout=io.StringIO(), stderr=io.StringIO())
