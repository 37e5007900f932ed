"""Forms for data scientists. They only parse; lifecycle.services validates and saves."""

from __future__ import annotations

from typing import Any

from django import forms

from lifecycle.models import CARD_SECTIONS, Dataset, RiskTier
from lifecycle.selectors import readable_datasets
from lifecycle.submission import REQUIRED_CARD_FIELDS


class RegisterModelForm(forms.Form):
    name = forms.CharField(max_length=64, help_text="Lowercase letters, digits and hyphens; used in API URLs.")
    title = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    risk_tier = forms.ChoiceField(choices=RiskTier.choices, initial=RiskTier.MEDIUM)


class SensitiveFeaturesMixin(forms.Form):
    """The sensitive features a submission names: the version form's checkboxes and text box, the
    draft form's and the MLflow import's text box."""

    def sensitive_list(self) -> list[str]:
        """Checkboxes and the text box share the name; each value may hold a comma list."""
        values = self.data.getlist("sensitive_features") if hasattr(self.data, "getlist") else []
        picked = [s.strip() for raw in values for s in raw.split(",") if s.strip()]
        return list(dict.fromkeys(picked))


class CardFieldsMixin(SensitiveFeaturesMixin):
    def add_card_fields(self) -> None:
        for name, title, help_text in CARD_SECTIONS:
            self.fields[name] = forms.CharField(
                label=title, help_text=help_text, required=False, widget=forms.Textarea(attrs={"rows": 3})
            )


class DatasetSelect(forms.ModelChoiceField):
    def label_from_instance(self, obj: Dataset) -> str:
        return f"{obj.name} v{obj.version} ({obj.row_count} rows, {obj.sha256[:12]}…)"


class VersionForm(CardFieldsMixin):
    artifact = forms.FileField(help_text='A skops file: skops.io.dump(model, "model.skops").', required=False)
    training_data = forms.FileField(required=False, help_text="A CSV file with a header row.")
    training_dataset = DatasetSelect(queryset=readable_datasets(), required=False, empty_label="— choose a dataset —")
    evaluation_data = forms.FileField(required=False, help_text="A CSV file with a header row.")
    evaluation_dataset = DatasetSelect(queryset=readable_datasets(), required=False, empty_label="— choose a dataset —")
    label_column = forms.CharField(max_length=200, required=False)
    sensitive_features = forms.CharField(
        required=False,
        help_text="Columns of the evaluation data to check for fairness, comma separated "
        "(pick them from the list once the evaluation file is chosen).",
    )
    parent_version = forms.IntegerField(required=False, min_value=1)
    personal_features = forms.CharField(
        required=False,
        help_text="Input columns holding personal data, comma separated: stored encrypted per data subject in the "
        'prediction log. Empty: the sensitive features that are inputs; "none" for none.',
    )
    subject_field = forms.CharField(
        required=False,
        max_length=200,
        help_text='The input column that names the data subject (e.g. applicant_id), or "business_key".',
    )
    code_repository = forms.CharField(max_length=500, required=False)
    code_commit = forms.CharField(max_length=64, required=False)
    favourable_class = forms.CharField(
        required=False,
        max_length=200,
        help_text="The class that is good news for the person decided on (e.g. 1 = credit granted); "
        "default: the last of the model's classes.",
    )
    reason_texts = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='Reason texts for adverse-action notices, one per line: "feature: text" '
        "(e.g. duration: Loan duration too long). Features without one get a generated text.",
    )

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.add_card_fields()
        mark_required(self, ["artifact", "label_column", *REQUIRED_CARD_FIELDS])

    def personal_list(self) -> Any:
        text = (self.data.get("personal_features") or "").strip()
        if not text:
            from lifecycle.submission import SENSITIVE_INPUTS

            return SENSITIVE_INPUTS
        if text.lower() == "none":
            return []
        return list(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))


def mark_required(form: forms.Form, names: list[str]) -> None:
    """Mark what lifecycle.services requires (it checks; the form only shows it): an asterisk
    beside the label (templates/lifecycle/_field.html) and aria-required for screen readers."""
    for name in names:
        field = form.fields[name]
        field.widget.attrs["aria-required"] = "true"
        field.marked_required = True  # type: ignore[attr-defined]


class EditDraftForm(CardFieldsMixin):
    sensitive_features = forms.CharField(required=False, help_text="Comma separated column names.")
    code_repository = forms.CharField(max_length=500, required=False)
    code_commit = forms.CharField(max_length=64, required=False)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.add_card_fields()
        mark_required(self, list(REQUIRED_CARD_FIELDS))
