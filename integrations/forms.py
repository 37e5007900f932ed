"""The MLflow import page's form: it only parses; integrations.mlflow_import validates and saves."""

from __future__ import annotations

from django import forms

from lifecycle.forms import DatasetSelect
from lifecycle.models import RiskTier
from lifecycle.selectors import readable_datasets


class MlflowImportForm(forms.Form):
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

    def sensitive_list(self) -> list[str]:
        return [s.strip() for s in self.cleaned_data.get("sensitive_features", "").split(",") if s.strip()]
