"""Registry API for data scientists' pipelines: thin classes that parse, call one service
function and render."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lifecycle import records, selectors, services
from lifecycle.models import CARD_FIELDS, ModelKind, RiskTier
from lifecycle.submission import SENSITIVE_INPUTS, DatasetChoice, parse_reason_lines


class CanReadRegistry(permissions.BasePermission):
    message = "Your account has no role that may read the registry."

    def has_permission(self, request: Request, view: Any) -> bool:
        return selectors.can_read_registry(request.user)


class ModelOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    risk_tier = serializers.ChoiceField(choices=RiskTier.choices)
    owner = serializers.CharField()
    production_version = serializers.IntegerField(allow_null=True)
    approved_versions = serializers.ListField(child=serializers.IntegerField())
    input_schema = serializers.ListField(child=serializers.DictField(), allow_null=True)
    versions = serializers.ListField(child=serializers.DictField())


class ModelListApi(APIView):
    permission_classes = [permissions.IsAuthenticated, CanReadRegistry]

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=64)
        title = serializers.CharField(max_length=200)
        description = serializers.CharField(required=False, allow_blank=True, default="")
        risk_tier = serializers.ChoiceField(choices=RiskTier.choices, required=False, help_text="the proposed tier")
        kind = serializers.ChoiceField(choices=ModelKind.choices, required=False, default=ModelKind.IN_HOUSE)
        purpose = serializers.CharField(required=False, allow_blank=True, default="")
        exposure = serializers.IntegerField(required=False, min_value=0, help_text="EUR at stake per year")
        decisions_per_year = serializers.IntegerField(required=False, min_value=0)
        affected_people = serializers.IntegerField(required=False, min_value=0)
        depends_on = serializers.ListField(child=serializers.CharField(max_length=64), required=False, max_length=100)

    @extend_schema(responses=ModelOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        models = selectors.visible_models()
        return Response([records.model_record(m, list(selectors.visible_versions(request.user, m))) for m in models])

    @extend_schema(request=InputSerializer, responses={201: ModelOutputSerializer})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        model = services.register_model(actor=request.user, **data.validated_data)
        return Response(records.model_record(model, []), status=status.HTTP_201_CREATED)


class ModelDetailApi(APIView):
    permission_classes = [permissions.IsAuthenticated, CanReadRegistry]

    @extend_schema(responses=ModelOutputSerializer)
    def get(self, request: Request, name: str) -> Response:
        model = get_object_or_404(selectors.visible_models(), name=name)
        return Response(records.model_record(model, list(selectors.visible_versions(request.user, model))))


class VersionOutputSerializer(serializers.Serializer):
    model = serializers.CharField()
    version = serializers.IntegerField()
    status = serializers.CharField()
    task = serializers.CharField()
    artifact = serializers.DictField()
    params = serializers.DictField()
    classes = serializers.ListField()
    input_schema = serializers.ListField(child=serializers.DictField())
    label_column = serializers.CharField()
    sensitive_features = serializers.ListField(child=serializers.CharField())
    model_card = serializers.DictField(child=serializers.CharField(allow_blank=True))
    model_card_sha256 = serializers.CharField()
    lineage = serializers.DictField()
    checks = serializers.ListField(child=serializers.DictField())
    decisions = serializers.ListField(child=serializers.DictField())
    created_by = serializers.CharField()
    created_at = serializers.DateTimeField()
    submitted_by = serializers.CharField(allow_null=True)
    submitted_at = serializers.DateTimeField(allow_null=True)


class VersionCreateApi(APIView):
    permission_classes = [permissions.IsAuthenticated, CanReadRegistry]
    parser_classes = [MultiPartParser, FormParser]

    class InputSerializer(serializers.Serializer):
        artifact = serializers.FileField(required=False, help_text="A skops file (skops.io.dump).")
        training_data = serializers.FileField(required=False, help_text="CSV with header.")
        evaluation_data = serializers.FileField(required=False, help_text="CSV with header.")
        training_dataset = serializers.IntegerField(required=False, help_text="Id of an existing dataset.")
        evaluation_dataset = serializers.IntegerField(required=False, help_text="Id of an existing dataset.")
        label_column = serializers.CharField(required=False, allow_blank=True, default="")
        sensitive_features = serializers.ListField(child=serializers.CharField(), required=False, default=list)
        personal_features = serializers.ListField(
            child=serializers.CharField(),
            required=False,
            help_text="Input fields holding personal data (stored encrypted per data subject in the log); "
            "default: the sensitive features that are inputs. Send an empty value for none.",
        )
        subject_field = serializers.CharField(
            required=False,
            allow_blank=True,
            default="",
            help_text='The input naming the data subject, or "business_key" (the key sent with each row).',
        )
        parent_version = serializers.IntegerField(required=False, allow_null=True, min_value=1)
        code_repository = serializers.CharField(required=False, allow_blank=True, default="")
        code_commit = serializers.CharField(required=False, allow_blank=True, default="")
        dataset_source = serializers.CharField(required=False, allow_blank=True, default="")
        favourable_class = serializers.CharField(
            required=False, allow_blank=True, default="", help_text="Default: the last of the model's classes."
        )
        reason_texts = serializers.CharField(
            required=False, allow_blank=True, default="", help_text='One "feature: reason text" per line.'
        )
        locals().update({f: serializers.CharField(required=False, allow_blank=True, default="") for f in CARD_FIELDS})

    @extend_schema(request={"multipart/form-data": InputSerializer}, responses={201: VersionOutputSerializer})
    def post(self, request: Request, name: str) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        version = services.create_version(
            actor=request.user,
            model_name=name,
            artifact=d.get("artifact"),
            training=DatasetChoice(upload=d.get("training_data"), dataset_id=d.get("training_dataset")),
            evaluation=DatasetChoice(upload=d.get("evaluation_data"), dataset_id=d.get("evaluation_dataset")),
            label_column=d["label_column"],
            sensitive_features=d["sensitive_features"],
            personal_features=[p for p in d["personal_features"] if p]
            if "personal_features" in d
            else SENSITIVE_INPUTS,
            subject_field=d["subject_field"],
            parent_version=d.get("parent_version"),
            code_repository=d["code_repository"],
            code_commit=d["code_commit"],
            card={f: d[f] for f in CARD_FIELDS},
            dataset_source=d["dataset_source"],
            favourable_class=d["favourable_class"] or None,
            reason_texts=parse_reason_lines(d["reason_texts"]),
        )
        # A new draft has no checks and no decisions yet: the same shape as the full record.
        return Response(
            {**records.version_record(version), "checks": [], "decisions": []}, status=status.HTTP_201_CREATED
        )
