"""The import-linter contract `interfaces_on_top` (scripts/interface_contract.py): a domain module
that reaches an interface module, even through another module, breaks it; interfaces may import
each other and every domain module. `make lint` runs it over the real graph."""

from __future__ import annotations

import tomllib
from pathlib import Path

import grimp

from scripts.interface_contract import InterfacesOnTopContract, is_interface

ROOT = Path(__file__).resolve().parents[2]


def _contract() -> InterfacesOnTopContract:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    options = next(c for c in config["contracts"] if c["type"] == "interfaces_on_top")
    options = {k: v for k, v in options.items() if k not in ("name", "type")}
    return InterfacesOnTopContract(name="interfaces", session_options={}, contract_options=options)


def _graph(*imports: tuple[str, str]) -> grimp.ImportGraph:
    graph = grimp.ImportGraph()
    for importer, imported in imports:
        graph.add_import(importer=importer, imported=imported)
    return graph


def test_the_interfaces_are_recognised_by_name():
    contract = _contract()
    containers, patterns = list(contract.containers), list(contract.interfaces)
    for name in (
        "lifecycle.views",
        "compliance.decision_views",
        "lifecycle.mlflow_api",
        "serving.v2",
        "governance.admin",
        "config.urls",
        "config.management.commands.seed_demo",
    ):
        assert is_interface(name, containers, patterns), name
    for name in ("lifecycle.services", "serving.log", "governance.rules", "compliance.reports", "config.settings"):
        assert not is_interface(name, containers, patterns), name


def test_a_domain_module_reaching_an_interface_breaks_the_contract():
    graph = _graph(
        ("lifecycle.selectors", "lifecycle.records"),
        ("lifecycle.records", "lifecycle.views"),  # indirect: selectors -> records -> views
        ("lifecycle.views", "lifecycle.selectors"),
    )
    check = _contract().check(graph, verbose=False)
    assert not check.kept
    assert ["lifecycle.selectors", "lifecycle.records", "lifecycle.views"] in check.metadata["chains"]


def test_interfaces_may_import_interfaces_and_domain_modules():
    graph = _graph(
        ("lifecycle.mlflow_api", "lifecycle.api"),
        ("lifecycle.api", "lifecycle.services"),
        ("config.urls", "lifecycle.views"),
    )
    assert _contract().check(graph, verbose=False).kept
