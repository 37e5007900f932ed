"""Pages for data scientists (and read access for the other roles). Thin: parse, call one
service, render; domain errors go back beside their field."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from core.errors import DomainError
from core.roles import DATA_SCIENTISTS, has_role, roles_of
from lifecycle import selectors, services, submission
from lifecycle.errors import SubmissionInvalid
from lifecycle.forms import EditDraftForm, RegisterModelForm, VersionForm
from lifecycle.models import CARD_FIELDS, Dataset, ModelVersion, RegisteredModel


def _require_role(request: HttpRequest) -> None:
    if not roles_of(request.user):
        raise PermissionDenied("Your account has no role in this application.")


def _apply_errors(form: Any, exc: DomainError) -> None:
    errors = exc.errors if isinstance(exc, SubmissionInvalid) else {exc.field or "__all__": [exc.message]}
    for field, msgs in errors.items():
        for msg in msgs:
            form.add_error(field if field in form.fields else None, msg)


@login_required
def model_list(request: HttpRequest) -> HttpResponse:
    _require_role(request)
    return render(request, "lifecycle/model_list.html", {"models": selectors.visible_models()})


@login_required
def model_register(request: HttpRequest) -> HttpResponse:
    if not has_role(request.user, DATA_SCIENTISTS):
        raise PermissionDenied("Only data scientists register models.")
    form = RegisterModelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            model = services.register_model(actor=request.user, **form.cleaned_data)
        except DomainError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(request, f"Registered {model.name}. Now add its first version.")
            return redirect("lifecycle:version-create", name=model.name)
    return render(request, "lifecycle/model_form.html", {"form": form})


@login_required
def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    _require_role(request)
    model = get_object_or_404(RegisteredModel, name=name)
    versions = selectors.visible_versions(request.user, model)
    return render(request, "lifecycle/model_detail.html", {"model": model, "versions": versions})


@login_required
def version_create(request: HttpRequest, name: str) -> HttpResponse:
    if not has_role(request.user, DATA_SCIENTISTS):
        raise PermissionDenied("Only data scientists add versions.")
    model = get_object_or_404(RegisteredModel, name=name)
    form = VersionForm(request.POST or None, request.FILES or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            version = services.create_version(
                actor=request.user,
                model_name=model.name,
                artifact=d.get("artifact"),
                training=submission.DatasetChoice(
                    upload=d.get("training_data"),
                    dataset_id=d["training_dataset"].pk if d.get("training_dataset") else None,
                ),
                evaluation=submission.DatasetChoice(
                    upload=d.get("evaluation_data"),
                    dataset_id=d["evaluation_dataset"].pk if d.get("evaluation_dataset") else None,
                ),
                label_column=d.get("label_column", ""),
                sensitive_features=form.sensitive_list(),
                personal_features=form.personal_list(),
                subject_field=d.get("subject_field", ""),
                parent_version=d.get("parent_version"),
                code_repository=d.get("code_repository", ""),
                code_commit=d.get("code_commit", ""),
                card={f: d.get(f, "") for f in CARD_FIELDS},
                favourable_class=d.get("favourable_class") or None,
                reason_texts=submission.parse_reason_lines(d.get("reason_texts", "")),
            )
        except DomainError as exc:
            _apply_errors(form, exc)
            status = exc.status
        else:
            messages.success(request, f"Saved {version} as a draft. Check it, then submit it for review.")
            return redirect(version.get_absolute_url())
    elif request.method == "POST":
        status = 400
    columns = {str(d.pk): d.column_names for d in Dataset.objects.all()}
    context = {
        "form": form,
        "model": model,
        "dataset_columns": columns,
        "has_datasets": form.fields["training_dataset"].queryset.exists(),  # type: ignore[attr-defined]
        "card_fields": [form[name] for name in CARD_FIELDS],
    }
    return render(request, "lifecycle/version_form.html", context, status=status)


def visible_version(request: HttpRequest, name: str, number: int) -> ModelVersion:
    _require_role(request)
    model = get_object_or_404(RegisteredModel, name=name)
    return get_object_or_404(selectors.visible_versions(request.user, model), version=number)


@login_required
def version_edit(request: HttpRequest, name: str, version: int) -> HttpResponse:
    v = visible_version(request, name, version)
    if not has_role(request.user, DATA_SCIENTISTS):
        raise PermissionDenied("Only data scientists edit drafts.")
    initial = {
        **v.card.as_dict(),
        "sensitive_features": ", ".join(v.sensitive_features),
        "code_repository": v.code_repository,
        "code_commit": v.code_commit,
    }
    form = EditDraftForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            services.update_draft(
                v.pk,
                actor=request.user,
                card={f: d.get(f, "") for f in CARD_FIELDS},
                sensitive_features=form.sensitive_list(),
                code_repository=d.get("code_repository", ""),
                code_commit=d.get("code_commit", ""),
            )
        except DomainError as exc:
            _apply_errors(form, exc)
            status = exc.status
        else:
            messages.success(request, f"Saved changes to {v}.")
            return redirect(v.get_absolute_url())
    return render(request, "lifecycle/version_edit.html", {"form": form, "v": v}, status=status)
