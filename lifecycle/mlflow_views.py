"""The MLflow import page for data scientists: the form only parses, lifecycle.mlflow_import
validates and saves. Thin: parse, call one function, render."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from core.errors import DomainError
from core.roles import DATA_SCIENTISTS, has_role
from lifecycle.errors import SubmissionInvalid
from lifecycle.forms import DatasetSelect, SensitiveFeaturesMixin
from lifecycle.mlflow_import import Source, import_mlflow_model
from lifecycle.models import RiskTier
from lifecycle.selectors import readable_datasets
from lifecycle.submission import DatasetChoice


class MlflowImportForm(SensitiveFeaturesMixin):
    mlflow_model = forms.FileField(
        label="MLflow model (zip)",
        help_text="A zip of the model directory saved with "
        'mlflow.sklearn.save_model(..., serialization_format="skops").',
    )
    name = forms.SlugField(max_length=64, help_text="The registered model; registered now if it does not exist.")
    title = forms.CharField(max_length=200, required=False, help_text="Title of a newly registered model.")
    risk_tier = forms.ChoiceField(choices=RiskTier.choices, initial=RiskTier.MEDIUM, help_text="Proposed tier if new.")
    training_data = forms.FileField(required=False, help_text="A CSV file with a header row.")
    training_dataset = DatasetSelect(queryset=readable_datasets(), required=False, empty_label="— upload a file —")
    evaluation_data = forms.FileField(required=False, help_text="A CSV file with a header row.")
    evaluation_dataset = DatasetSelect(queryset=readable_datasets(), required=False, empty_label="— upload a file —")
    label_column = forms.CharField(max_length=200)
    sensitive_features = forms.CharField(required=False, help_text="Comma separated column names.")


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
    return render(request, "lifecycle/mlflow_import.html", {"form": form})
