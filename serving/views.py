"""The batch jobs pages: data scientists and risk officers upload a CSV and follow its progress;
auditors see every job and its result. Thin: the rules are serving.batch's."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from core.roles import RISK_OFFICERS, has_role
from lifecycle.models import SERVABLE_STATUSES, ModelVersion, RegisteredModel
from serving import batch, erasure, erasure_preview
from serving.errors import ServingError
from serving.models import BatchJob, LegalHold


def _servable_choices() -> list[tuple[str, str]]:
    """(value, label) of each servable version, by model name and version number."""
    versions = ModelVersion.objects.filter(status__in=SERVABLE_STATUSES).select_related("registered_model")
    found = sorted((v.registered_model.name, v.version, v.status) for v in versions)
    return [(f"{name}:{number}", f"{name} v{number} ({status})") for name, number, status in found]


@login_required
def batch_list(request: HttpRequest) -> HttpResponse:
    may_run = batch.may_run_batch(request.user, None)
    form = {"chosen": "", "id_columns": ""}
    if request.method == "POST":
        if not may_run:
            raise Http404
        choice = request.POST.get("target", "")
        form = {"chosen": choice, "id_columns": request.POST.get("id_columns", "")[:1000]}
        name, _, number = choice.partition(":")
        try:
            if not name:  # never a default: a wrong version would score every row unnoticed
                raise ServingError("Choose the model version to score with.", status=400, code="invalid_batch")
            job = batch.accept_batch(
                model_name=name,
                version_number=int(number) if number.isascii() and number.isdigit() else None,
                submitter=batch.Submitter(caller=request.user.get_username(), user=request.user, api_key=None),
                upload=request.FILES.get("data"),
                id_columns=form["id_columns"],
            )
        except ServingError as exc:
            messages.error(request, exc.message)  # the page again, with the choices kept
        else:
            return redirect("batch", job_id=job.public_id)
    jobs = list(batch.visible_jobs(request.user)[:100])
    return render(
        request,
        "serving/batches.html",
        {
            "jobs": [(j, batch.progress(j)) for j in jobs],
            "may_run": may_run,
            "targets": _servable_choices(),
            **form,
        },
        status=400 if request.method == "POST" else 200,
    )


@login_required
def batch_detail(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    job = BatchJob.objects.select_related("version__registered_model").filter(public_id=job_id).first()
    if job is None or not batch.may_read_batch(job, request.user, None):
        raise Http404
    chunks = list(job.chunks.filter(scored=False).values_list("index", "reason")[:20])
    return render(request, "serving/batch.html", {"job": job, "shown": batch.progress(job), "refused": chunks})


@login_required
def erase_subject(request: HttpRequest) -> HttpResponse:
    """Risk officers erase a data subject's personal data from one model's log, deliberately:
    find (what would be destroyed, named), then confirm with a reason or ticket."""
    if not has_role(request.user, RISK_OFFICERS):
        raise Http404
    models_ = list(RegisteredModel.objects.order_by("name").values_list("name", flat=True))
    holds = {h.model_name: h for h in LegalHold.objects.filter(released_at__isnull=True)}
    context: dict[str, Any] = {"models": models_, "holds": holds, "selected": request.GET.get("model", "")}
    if request.method == "POST":
        model_name = request.POST.get("model", "")
        subject = request.POST.get("subject", "").strip()
        context["selected"] = model_name
        if not subject or model_name not in models_:
            messages.error(request, "Choose a model and give the subject's value.")
            return redirect("subject-erasure")
        found = erasure_preview.preview_erasure(model_name=model_name, subject=subject)
        if found.nothing_found:
            # neutral, not a success: nothing was there, nothing was destroyed (the value is never echoed)
            context["nothing"] = model_name
            return render(request, "serving/erasure.html", context)
        reason = request.POST.get("reason", "").strip()
        if request.POST.get("step") != "erase" or not reason:
            if request.POST.get("step") == "erase":
                context["reason_missing"] = True
            return render(request, "serving/erasure_confirm.html", {**context, "found": found, "subject": subject})
        try:
            erased = erasure.erase_subject(model_name=model_name, subject=subject, actor=request.user, reason=reason)
        except ServingError as exc:
            messages.error(request, exc.message)
            return redirect("subject-erasure")
        # the value itself is never echoed back (it is personal)
        messages.success(request, f"Erased: {erased} data key(s) of that subject in {model_name} were destroyed.")
        return redirect(f"{reverse('subject-erasure')}?{urlencode({'model': model_name})}")  # the same model again
    return render(request, "serving/erasure.html", context)
