"""Auditor-facing writes: generating a report and verifying the trail each leave an audit event
(who, what, and for a report the SHA-256 of the exact bytes handed out)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction

from compliance import checkpoints, report_context, reports
from compliance.errors import ReportError
from core import audit
from core.actors import Actor
from lifecycle.models import ModelVersion


def generate_version_report(version_id: int, *, actor: Actor) -> reports.Report:
    """Render the compliance report of one version and record its SHA-256."""
    version = ModelVersion.objects.select_related(
        "registered_model", "training_dataset", "evaluation_dataset", "parent", "created_by", "submitted_by"
    ).get(pk=version_id)
    context, evidence = report_context.version_report(version, actor=actor)
    report = _render("compliance/reports/version.html", context, evidence, moment=context["as_of"])
    with transaction.atomic():
        audit.record(
            audit.REPORT_GENERATED,
            actor=actor,
            target=version,
            data={
                "kind": "version",
                "sha256": report.sha256,
                "evidence_sha256": report.evidence_sha256,
                "bytes": len(report.pdf),
                "verification_ok": context["verification"]["ok"],
            },
        )
    return report


def generate_period_report(*, since: datetime, until: datetime, actor: Actor) -> reports.Report:
    """Render the governance report of a period and record its SHA-256."""
    check_period(since=since, until=until)
    context, evidence = report_context.period_report(since=since, until=until, actor=actor)
    report = _render("compliance/reports/period.html", context, evidence, moment=context["as_of"])
    with transaction.atomic():
        audit.record(
            audit.REPORT_GENERATED,
            actor=actor,
            data={
                "kind": "period",
                "since": since.isoformat(),
                "until": until.isoformat(),
                "sha256": report.sha256,
                "evidence_sha256": report.evidence_sha256,
                "bytes": len(report.pdf),
            },
        )
    return report


def period_filename(*, since: datetime, until: datetime) -> str:
    """The period report's file name: the first and the last day it covers, as its title says
    (`until` is excluded, so a month ending at midnight on the 1st is named by the 30th or 31st)."""
    last_day = until - timedelta(microseconds=1)
    return f"governance-report-{since:%Y-%m-%d}-to-{last_day:%Y-%m-%d}.pdf"


def check_period(*, since: datetime, until: datetime) -> None:
    """The period a report may cover (checked again when a queued report job starts it)."""
    if until <= since:
        raise ReportError("The period must end after it starts.", field="until")
    if (until - since).days > settings.REPORT_MAX_PERIOD_DAYS:
        raise ReportError(f"A period report covers at most {settings.REPORT_MAX_PERIOD_DAYS} days.", field="until")


def _render(
    template: str, context: dict[str, Any], evidence: dict[str, Any], moment: datetime | None = None
) -> reports.Report:
    try:
        return reports.render_report(template, context, evidence=report_context.evidence_bytes(evidence), moment=moment)
    except reports.RenderError as exc:
        raise ReportError(f"The report could not be rendered: {exc}", status=503) from None


def verify_audit_trail(*, actor: Actor) -> dict[str, Any]:
    """Recompute the audit chain and every prediction seal now; the result is itself audited."""
    result = report_context.verification()
    # The newest signed checkpoint (outside the database), checked against the chain as it is now:
    # part of the verdict, so a truncated or rewritten chain makes "Verify now" fail.
    checkpoint = checkpoints.latest_checkpoint_status()
    result = {**result, "checkpoint": checkpoint, "ok": result["ok"] and checkpoint["ok"] is not False}
    result = without_server_paths(result)
    with transaction.atomic():
        event = audit.record(
            audit.AUDIT_VERIFIED,
            actor=actor,
            data={
                "ok": result["ok"],
                "chain": result["chain"]["message"],
                "seals": result["seals"]["message"],
                "evidence_rows": result["evidence"]["message"],
                "checkpoint": result["checkpoint"]["message"],
            },
        )
    return {**result, "event_seq": event.seq, "verified_at": event.created_at}


def without_server_paths(value: Any) -> Any:
    """A verification's messages as an auditor may read them (its page, its JSON, its audit event):
    the server's folders named by their settings, never spelled out."""
    if isinstance(value, dict):
        return {k: without_server_paths(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_server_paths(v) for v in value]
    if not isinstance(value, str):
        return value
    folders = {str(settings.CHECKPOINT_DIR): "CHECKPOINT_DIR", str(settings.MEDIA_ROOT): "MEDIA_ROOT"}
    folders[str(settings.BASE_DIR)] = "the application's folder"
    for folder, name in sorted(folders.items(), key=lambda item: -len(item[0])):
        if folder and folder != "/":
            value = value.replace(folder, name)
    return value


def record_export(*, actor: Actor, what: str, filters: dict[str, Any], fmt: str) -> None:
    """An export is recorded before its first byte is sent (its size is not known in advance)."""
    with transaction.atomic():
        audit.record(audit.EXPORT_DOWNLOADED, actor=actor, data={"what": what, "format": fmt, "filters": filters})
