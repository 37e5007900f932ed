"""docs/grafana-dashboard.json: valid JSON, and every metric its queries name is one that
GET /metrics exports (a typo would leave a panel silently empty)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

from django.core.management import call_command
from prometheus_client.parser import text_string_to_metric_families

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
SUFFIXES = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_count", "_sum", "_created"]}


def exported_names(client: Any) -> set[str]:
    """Sample names of every family /metrics declares, with or without samples yet (a labelled
    counter nobody has incremented is declared by its HELP and TYPE lines only)."""
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer dashboard-scrape")
    assert response.status_code == 200
    names: set[str] = set()
    for family in text_string_to_metric_families(response.content.decode()):
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, [""])}
        names |= {sample.name for sample in family.samples}
    return names


def test_the_grafana_dashboard_queries_only_metrics_that_metrics_exports(client, settings, tmp_path, db):
    settings.METRICS_TOKEN = "dashboard-scrape"
    settings.CHECKPOINT_DIR = tmp_path / "checkpoints"  # the checkpoint age exists once one is written
    settings.CHECKPOINT_SIGNING_KEY = "11" * 32
    call_command("checkpoint", stdout=io.StringIO())
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    queried = {name for expr in exprs for name in re.findall(r"\bmodelgov_[a-z_]+", expr)}
    assert len(dashboard["panels"]) >= 7 and len(queried) >= 7
    missing = queried - exported_names(client)
    assert not missing, f"the dashboard queries metrics /metrics does not export: {sorted(missing)}"
