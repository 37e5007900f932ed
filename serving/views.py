"""The batch jobs pages: data scientists and risk officers upload a CSV and follow its progress;
auditors see every job and its result. Thin: the rules are serving.batch's."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from core.roles import RISK_OFFICERS, has_role
from lifecycle.models import SERVABLE_STATUSES, ModelVersion, RegisteredModel
from serving import batch, erasure
from serving.errors import ServingError
from serving.models import BatchJob, LegalHold


def _servable_choices() -> list[tuple[str, int, str]]:
    versions = ModelVersion.objects.filter(status__in=SERVABLE_STATUSES).select_related("registered_model")
    return sorted(
        (v.registered_model.name, v.version, v.status) for v in versions.order_by("registered_model__name", "version")
    )


@login_required
def batch_list(request: HttpRequest) -> HttpResponse:
    may_run = batch.may_run_batch(request.user, None)
    if request.method == "POST":
        if not may_run:
            raise Http404
        choice = request.POST.get("target", "")
        name, _, number = choice.partition(":")
        try:
            job = batch.accept_batch(
                model_name=name,
                version_number=int(number) if number.isascii() and number.isdigit() else None,
                submitter=batch.Submitter(caller=request.user.get_username(), user=request.user, api_key=None),
                upload=request.FILES.get("data"),
            )
        except ServingError as exc:
            messages.error(request, exc.message)
            return redirect("batches")
        return redirect("batch", job_id=job.public_id)
    jobs = list(batch.visible_jobs(request.user)[:100])
    return render(
        request,
        "serving/batches.html",
        {"jobs": [(j, batch.progress(j)) for j in jobs], "may_run": may_run, "targets": _servable_choices()},
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
    """Risk officers erase a data subject's personal data from one model's log."""
    if not has_role(request.user, RISK_OFFICERS):
        raise Http404
    if request.method == "POST":
        model_name = request.POST.get("model", "")
        subject = request.POST.get("subject", "").strip()
        if not subject or not RegisteredModel.objects.filter(name=model_name).exists():
            messages.error(request, "Choose a model and give the subject's value.")
            return redirect("subject-erasure")
        try:
            erased = erasure.erase_subject(model_name=model_name, subject=subject, actor=request.user)
        except ServingError as exc:
            messages.error(request, exc.message)
            return redirect("subject-erasure")
        # the value itself is never echoed back (it is personal)
        messages.success(request, f"Erased: {erased} data key(s) of that subject in {model_name} were destroyed.")
        return redirect(f"{reverse('subject-erasure')}?{urlencode({'model': model_name})}")  # the same model again
    models_ = list(RegisteredModel.objects.order_by("name").values_list("name", flat=True))
    holds = {h.model_name: h for h in LegalHold.objects.filter(released_at__isnull=True)}
    selected = request.GET.get("model", "")
    return render(request, "serving/erasure.html", {"models": models_, "holds": holds, "selected": selected})
