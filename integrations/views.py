"""The MLflow import page for data scientists, and /metrics. Thin: parse, call one function, render."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from core.errors import DomainError
from core.roles import DATA_SCIENTISTS, has_role
from integrations import metrics
from integrations.forms import MlflowImportForm
from integrations.mlflow_import import Source, import_mlflow_model
from lifecycle.errors import SubmissionInvalid
from lifecycle.submission import DatasetChoice


@login_required
def mlflow_import(request: HttpRequest) -> HttpResponse:
    if not has_role(request.user, DATA_SCIENTISTS):
        raise PermissionDenied("Only data scientists import models.")
    form = MlflowImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            version = import_mlflow_model(
                actor=request.user,
                source=Source(archive=d["mlflow_model"].read()),
                model_name=d["name"],
                training=DatasetChoice(
                    upload=d.get("training_data"), dataset_id=getattr(d.get("training_dataset"), "pk", None)
                ),
                evaluation=DatasetChoice(
                    upload=d.get("evaluation_data"), dataset_id=getattr(d.get("evaluation_dataset"), "pk", None)
                ),
                label_column=d["label_column"],
                sensitive_features=form.sensitive_list(),
                title=d["title"],
                risk_tier=d["risk_tier"],
                source_path=d["mlflow_model"].name,
            )
        except DomainError as exc:
            errors = exc.errors if isinstance(exc, SubmissionInvalid) else {exc.field or "__all__": [exc.message]}
            for field, msgs in errors.items():
                for msg in msgs:
                    form.add_error(field if field in form.fields else None, msg)
        else:
            messages.success(
                request, f"Imported {version} from MLflow as a draft: complete its model card, then submit."
            )
            return redirect(version.get_absolute_url())
    return render(request, "integrations/mlflow_import.html", {"form": form})


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    return metrics.metrics_view(request)
