"""The auditors' workspace (also open to risk officers): read-only pages over models, versions,
lineage, the prediction log and the audit trail; reports and exports. The only POST starts a job
("verify now", a period or version report: compliance.jobs), which appends its row and audit
events and changes nothing else; the job page polls until a worker has done it."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST

from compliance import exports, inventory, jobs, services
from compliance.errors import ReportError
from compliance.lineage import build_lineage, lineage_svg
from compliance.models import JobKind, ReportJob
from core.actors import Actor
from core.errors import DomainError
from core.models import AuditEvent
from core.periods import parse_moment
from core.roles import AUDITORS, RISK_OFFICERS, VALIDATORS, reads_full_audit_trail, roles_of
from governance import review, selectors
from governance.models import Deployment
from governance.selectors import engine_for
from lifecycle.models import ModelVersion, RegisteredModel, Status
from serving import personal
from serving import seals as seal_service
from serving import selectors as serving_selectors
from serving.errors import ServingError
from serving.models import BatchJob, Disposition, PredictionLog

PAGE = 50


def can_audit(user: Actor) -> bool:
    return reads_full_audit_trail(user)


def audit_url(v: ModelVersion) -> str:
    return reverse("audit:version", args=[v.registered_model.name, v.version])


def _require_auditor(request: HttpRequest) -> None:
    if not can_audit(request.user):
        raise PermissionDenied("Only auditors and risk officers use the audit workspace.")


def _keyset_page(request: HttpRequest, rows: QuerySet[Any], key: str) -> tuple[list[Any], int | None]:
    """Newest first, PAGE at a time, continuing below `?before=<key>` (no OFFSET scans)."""
    before = request.GET.get("before", "")
    if before.isascii() and before.isdigit() and len(before) < 19:
        rows = rows.filter(**{f"{key}__lt": int(before)})
    page = list(rows.order_by(f"-{key}")[: PAGE + 1])
    more = len(page) > PAGE
    page = page[:PAGE]
    return page, (getattr(page[-1], key) if more else None)


def _filters(request: HttpRequest, names: tuple[str, ...]) -> dict[str, str]:
    values = {n: request.GET.get(n, "").strip() for n in names}
    for name, value in values.items():
        if "\x00" in value:  # PostgreSQL cannot compare text with NUL: a named 400, not a 500
            raise ReportError(f"{name}: the NUL character is not allowed in a filter.", field=name)
    return values


@login_required
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    _require_auditor(request)
    models = RegisteredModel.objects.select_related("owner").prefetch_related("versions").order_by("name")
    rows: list[dict[str, Any]] = []
    for m in models:
        versions = list(m.versions.all())
        rows.append(
            {
                "model": m,
                "production": next((v for v in versions if v.status == Status.PRODUCTION), None),
                "versions": len(versions),
                "in_review": sum(v.status in ("checking", "in_review") for v in versions),
            }
        )
    q = request.GET.get("q", "").strip().lower()
    if q:
        rows = [r for r in rows if q in r["model"].name or q in r["model"].title.lower()]
    recent = AuditEvent.objects.order_by("-seq")[:10]
    return render(request, "compliance/index.html", {"rows": rows, "q": q, "recent": recent})


@login_required
@require_GET
def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    _require_auditor(request)
    model = get_object_or_404(RegisteredModel, name=name)
    versions = list(
        model.versions.select_related("training_dataset", "evaluation_dataset", "parent", "created_by").order_by(
            "-version"
        )
    )
    deployments = Deployment.objects.filter(registered_model=model).select_related("version", "deployed_by", "ended_by")
    graph = build_lineage(versions, href=audit_url)
    context = {
        "model": model,
        "versions": versions,
        "deployments": deployments,
        "graph": mark_safe(lineage_svg(graph)),  # noqa: S308 (every label escaped inside)
        "nodes": graph.nodes.values(),
    }
    return render(request, "compliance/model.html", context)


def _version(request: HttpRequest, name: str, number: int) -> ModelVersion:
    _require_auditor(request)
    return get_object_or_404(
        ModelVersion.objects.select_related(
            "registered_model", "training_dataset", "evaluation_dataset", "parent", "created_by", "submitted_by"
        ),
        registered_model__name=name,
        version=number,
    )


@login_required
@require_GET
def version_detail(request: HttpRequest, name: str, version: int) -> HttpResponse:
    v = _version(request, name, version)
    graph = build_lineage([v], href=audit_url)
    context = {
        "v": v,
        "card": v.card,
        "parents": v.lineage(),
        "checks": review.checks_for_display(v),
        "decisions": review.decisions_for_display(v),
        "deployments": Deployment.objects.filter(version=v).select_related("deployed_by", "ended_by"),
        "graph": mark_safe(lineage_svg(graph, focus=f"version:{v.pk}")),  # noqa: S308
        "serving": serving_selectors.serving_summary(version_id=v.pk),
        "batch_jobs": BatchJob.objects.filter(version=v).order_by("-created_at")[:50],
        "engine": engine_for(v),
        "events": AuditEvent.objects.filter(target_type="lifecycle.modelversion", target_id=str(v.pk)).order_by("seq"),
    }
    return render(request, "compliance/version.html", context)


def pdf_response(report: Any, filename: str) -> HttpResponse:
    """The report as a download, with the SHA-256 the audit trail recorded for it."""
    response = HttpResponse(report.pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Report-SHA256"] = report.sha256
    return response


@login_required
@require_GET
def version_report(request: HttpRequest, name: str, version: int) -> HttpResponse:
    """The report is a job now (rendering may outlast the request): its button is on the version page."""
    v = _version(request, name, version)
    return redirect(audit_url(v) + "#report")


@login_required
@require_GET
def period_report(request: HttpRequest) -> HttpResponse:
    _require_auditor(request)
    today = timezone.now().date()
    context = {
        "since": request.GET.get("since") or today - timedelta(days=30),
        "until": request.GET.get("until") or today,
        "jobs": jobs.recent_jobs(kind=JobKind.PERIOD_REPORT),
    }
    return render(request, "compliance/reports.html", context)


@login_required
@require_POST
def start_job(request: HttpRequest) -> HttpResponse:
    """Queue a verification or a report and show its job page; a refused request is answered
    here (bad period, unknown version), never left to fail in a worker."""
    _require_auditor(request)
    kind = request.POST.get("kind", JobKind.VERIFY)
    if kind == JobKind.VERIFY:
        job = jobs.start_verification(actor=request.user)
    elif kind == JobKind.VERSION_REPORT:
        number = request.POST.get("version", "")
        if not (number.isascii() and number.isdigit() and len(number) < 10):
            raise Http404("No such version.")
        v = _version(request, request.POST.get("model", ""), int(number))
        job = jobs.start_version_report(v.pk, actor=request.user)
    elif kind == JobKind.PERIOD_REPORT:
        try:
            since = parse_moment(request.POST.get("since", ""), field="since")
            until = parse_moment(request.POST.get("until", ""), field="until", end=True)
            if since is None or until is None:
                raise ReportError("Give both since and until.", field="since" if since is None else "until")
            job = jobs.start_period_report(since=since, until=until, actor=request.user)
        except DomainError as exc:
            context = {"error": exc.message, "since": request.POST.get("since"), "until": request.POST.get("until")}
            return render(request, "compliance/reports.html", context, status=exc.status)
    else:
        return render(request, "compliance/error.html", {"message": "Unknown kind of job."}, status=400)
    return redirect("audit:job", job.public_id)


def _job(request: HttpRequest, public_id: UUID) -> ReportJob:
    _require_auditor(request)
    try:
        return jobs.get_job(public_id)
    except ReportJob.DoesNotExist:
        raise Http404("No such job.") from None


@login_required
@require_GET
def job_detail(request: HttpRequest, public_id: UUID) -> HttpResponse:
    job = _job(request, public_id)
    context = {
        "job": job,
        "verification": jobs.verification_for_display(job.summary) if job.kind == JobKind.VERIFY else None,
    }
    return render(request, "compliance/job.html", context)


@login_required
@require_GET
def job_status(request: HttpRequest, public_id: UUID) -> JsonResponse:
    job = _job(request, public_id)
    state = jobs.job_state(job)
    state["result_url"] = reverse("audit:job-result", args=[job.public_id]) if job.result_sha256 else None
    return JsonResponse(state)


@login_required
@require_GET
def job_result(request: HttpRequest, public_id: UUID) -> HttpResponse:
    """The stored result, with the SHA-256 its finished audit event recorded."""
    job = _job(request, public_id)
    try:
        content = jobs.read_result(job)
    except DomainError as exc:
        return render(request, "compliance/error.html", {"message": exc.message}, status=exc.status)
    response = HttpResponse(content, content_type=job.result_content_type)
    response["Content-Disposition"] = f'attachment; filename="{job.result_name}"'
    response["X-Report-SHA256"] = job.result_sha256
    return response


def _prediction_filters(request: HttpRequest) -> tuple[dict[str, str], QuerySet[PredictionLog]]:
    f = _filters(request, ("model", "version", "since", "until", "outcome", "request_id"))
    # (ASCII digits only: "²".isdigit() is true, and int("²") raises)
    if f["version"] and not (f["version"].isascii() and f["version"].isdigit() and len(f["version"]) < 10):
        raise ReportError(f"version: {f['version']!r} is not a version number.", field="version")
    if f["outcome"] and f["outcome"] not in Disposition.values:
        raise ReportError(f"outcome: {f['outcome']!r} is not one of {', '.join(Disposition.values)}.", field="outcome")
    records = serving_selectors.logged_predictions(
        model=f["model"],
        version=int(f["version"]) if f["version"] else None,
        since=parse_moment(f["since"], field="since"),
        until=parse_moment(f["until"], field="until", end=True),
        outcome=f["outcome"],
        request_id=f["request_id"],
    )
    return f, records


@login_required
@require_GET
def predictions(request: HttpRequest) -> HttpResponse:
    _require_auditor(request)
    try:
        f, records = _prediction_filters(request)
    except DomainError as exc:
        failed = {"error": exc.message, "f": request.GET, "outcomes": Disposition.choices, "records": []}
        return render(request, "compliance/predictions.html", failed, status=400)
    page, next_before = _keyset_page(request, records, "pk")
    context: dict[str, Any] = {
        "f": f,
        "records": page,
        "next_before": next_before,
        "query": urlencode({k: v for k, v in f.items() if v}),
        "outcomes": Disposition.choices,
        "models": RegisteredModel.objects.values_list("name", flat=True),
    }
    return render(request, "compliance/predictions.html", context)


@login_required
@require_GET
def prediction_detail(request: HttpRequest, public_id: UUID) -> HttpResponse:
    _require_auditor(request)
    record = get_object_or_404(PredictionLog.objects.select_related("version", "seal"), public_id=public_id)
    try:  # personal values decrypted, or "[erased]" (serving.personal)
        inputs, business_keys = personal.reveal_record(record)
        outputs = personal.reveal_outputs(record.public_id, record.outputs)
    except ServingError as exc:
        return render(request, "compliance/error.html", {"message": exc.message}, status=exc.status)
    context = {
        "r": record,
        "inputs_text": json.dumps(inputs, ensure_ascii=False, sort_keys=True, separators=(",", ":")),
        "outputs_text": json.dumps(outputs, ensure_ascii=False, sort_keys=True, separators=(",", ":")),
        "business_keys": business_keys,
        "proof": seal_service.inclusion_proof(record),
        "decisions": review.decisions_for_display(record.version) if record.version else [],
    }
    return render(request, "compliance/prediction.html", context)


def _trail_filters(request: HttpRequest) -> tuple[dict[str, str], QuerySet[AuditEvent]]:
    f = _filters(request, ("action", "actor", "target", "since", "until"))
    events = selectors.audit_events(
        action=f["action"],
        actor=f["actor"],
        target=f["target"],
        since=parse_moment(f["since"], field="since"),
        until=parse_moment(f["until"], field="until", end=True),
    )
    return f, events


@login_required
@require_GET
def trail(request: HttpRequest) -> HttpResponse:
    _require_auditor(request)
    try:
        f, events = _trail_filters(request)
    except DomainError as exc:
        return render(
            request, "compliance/trail.html", {"error": exc.message, "f": request.GET, "events": []}, status=400
        )
    page, next_before = _keyset_page(request, events, "seq")
    context: dict[str, Any] = {
        "f": f,
        "events": page,
        "next_before": next_before,
        "query": urlencode({k: v for k, v in f.items() if v}),
        "verifications": jobs.recent_jobs(kind=JobKind.VERIFY, limit=5),
        "actions": AuditEvent.objects.order_by().values_list("action", flat=True).distinct(),
    }
    return render(request, "compliance/trail.html", context)


EXPORTS = {"audit": "audit trail", "predictions": "prediction log"}


@login_required
@require_GET
def export(request: HttpRequest, what: str, fmt: str) -> HttpResponseBase:
    _require_auditor(request)
    if what not in EXPORTS or fmt not in ("csv", "jsonl"):
        raise Http404("No such export.")
    try:
        if what == "audit":
            f, events = _trail_filters(request)
            rows = exports.audit_rows(events)
            body = exports.as_csv(rows, exports.AUDIT_COLUMNS) if fmt == "csv" else exports.as_jsonl(rows)
        else:
            f, records = _prediction_filters(request)
            body = exports.predictions_csv(records) if fmt == "csv" else exports.predictions_jsonl(records)
    except DomainError as exc:
        return render(request, "compliance/error.html", {"message": exc.message}, status=400)
    services.record_export(actor=request.user, what=what, filters={k: v for k, v in f.items() if v}, fmt=fmt)
    content_type = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"
    response = StreamingHttpResponse(body, content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="{what}-{stamp}.{fmt}"'
    return response


def _require_inventory_reader(request: HttpRequest) -> None:
    if not roles_of(request.user) & {AUDITORS, RISK_OFFICERS, VALIDATORS}:
        raise PermissionDenied("Only auditors, risk officers and validators read the model inventory.")


@login_required
@require_GET
def model_inventory(request: HttpRequest) -> HttpResponse:
    _require_inventory_reader(request)
    return render(request, "compliance/inventory.html", {"rows": inventory.inventory_rows()})


@login_required
@require_GET
def model_inventory_csv(request: HttpRequest) -> HttpResponse:
    _require_inventory_reader(request)
    response = HttpResponse(inventory.inventory_csv(inventory.inventory_rows()), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="model-inventory.csv"'
    return response
