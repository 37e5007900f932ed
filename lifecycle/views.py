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
from lifecycle import selectors, services, staging, submission
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


# Each staged upload field, and the registry choice that replaces it.
_REGISTRY_CHOICE = {"artifact": "", "training_data": "training_dataset", "evaluation_data": "evaluation_dataset"}


def _with_staged(request: HttpRequest) -> Any:
    """The post's files, plus the files kept from its last try (lifecycle.staging) for every
    field where no new file was chosen nor a registry dataset picked."""
    files = request.FILES.copy()
    for field in staging.FIELDS:
        token = request.POST.get(f"staged_{field}", "")
        choice = _REGISTRY_CHOICE[field]
        if not token:
            continue
        if field in files or (choice and request.POST.get(choice)):
            staging.discard(request.session, token)  # replaced
            continue
        upload = staging.load(request.session, token)
        if upload is not None:
            files[field] = upload
    return files


def _stage_good_files(request: HttpRequest, form: Any, files: Any) -> None:
    """After a refusal: keep the files that were not themselves the problem."""
    staging.sweep()
    for field in staging.FIELDS:
        if field in files and field not in form.errors:
            staging.stage(request.session, field, files[field])
        elif field in form.errors and field in staging.kept(request.session):
            staging.discard(request.session, staging.kept(request.session)[field].token)


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
    files = _with_staged(request) if request.method == "POST" else None
    if request.method != "POST":
        staging.discard_all(request.session)  # a fresh form starts with nothing kept
    form = VersionForm(request.POST or None, files)
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
            staging.discard_all(request.session)
            messages.success(request, f"Saved {version} as a draft. Check it, then submit it for review.")
            return redirect(version.get_absolute_url())
    elif request.method == "POST":
        status = 400
    if request.method == "POST" and files is not None:
        _stage_good_files(request, form, files)
    columns = {str(d.pk): d.column_names for d in Dataset.objects.all()}
    context = {
        "form": form,
        "model": model,
        "dataset_columns": columns,
        "has_datasets": form.fields["training_dataset"].queryset.exists(),  # type: ignore[attr-defined]
        "card_fields": [form[name] for name in CARD_FIELDS],
        "kept": staging.kept(request.session),
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
