"""The model inventory: one row per registered model, with its kind, owner, purpose,
materiality and the tier it proposes, the tiers in force, dependencies, the production version,
the latest validation conclusion and the open findings. The page and the CSV export read the
same rows."""

from __future__ import annotations

import csv
import io
from typing import Any

from governance.models import Finding, ValidationReport
from lifecycle.models import RegisteredModel, Status
from lifecycle.records import inventory_record

COLUMNS = (
    "name",
    "title",
    "kind",
    "owner",
    "purpose",
    "exposure",
    "decisions_per_year",
    "affected_people",
    "materiality_tier",
    "proposed_tier",
    "effective_tier",
    "depends_on",
    "used_by",
    "production_version",
    "latest_validation",
    "open_findings",
)


def inventory_rows() -> list[dict[str, Any]]:
    rows = []
    for m in RegisteredModel.objects.select_related("owner").prefetch_related("versions").order_by("name"):
        entry = inventory_record(m)
        production = next((v.version for v in m.versions.all() if v.status == Status.PRODUCTION), None)
        latest = ValidationReport.objects.filter(version__registered_model=m).order_by("-created_at", "-pk").first()
        rows.append(
            {
                "name": m.name,
                "title": m.title,
                "kind": m.kind,
                "owner": m.owner.username,
                "purpose": m.purpose,
                "exposure": m.exposure,
                "decisions_per_year": m.decisions_per_year,
                "affected_people": m.affected_people,
                "materiality_tier": entry["materiality"]["proposed_tier"] or "",
                "proposed_tier": m.risk_tier,
                "effective_tier": m.effective_tier,
                "depends_on": " ".join(entry["depends_on"]),
                "used_by": " ".join(entry["used_by"]),
                "production_version": production,
                "latest_validation": (
                    f"v{latest.version.version}: {latest.conclusion} ({latest.validator_username})" if latest else ""
                ),
                "open_findings": Finding.objects.filter(version__registered_model=m, closed_at__isnull=True).count(),
            }
        )
    return rows


def inventory_csv(rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        # (a cell a spreadsheet would run as a formula is quoted as text)
        writer.writerow({k: _safe(row[k]) for k in COLUMNS})
    return out.getvalue().encode()


def _safe(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value
