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

from governance import review, workflow
from lifecycle import selectors, services
from lifecycle.models import CARD_FIELDS, Dataset, ModelVersion, RegisteredModel, RiskTier


class CanReadRegistry(permissions.BasePermission):
    message = "Your account has no role that may read the registry."

    def has_permission(self, request: Request, view: Any) -> bool:
        return selectors.can_read_registry(request.user)


def _dataset(d: Dataset) -> dict[str, Any]:
    return {
        "id": d.pk,
        "name": d.name,
        "version": d.version,
        "sha256": d.sha256,
        "rows": d.row_count,
        "columns": d.columns,
        "source": d.source,
    }


def version_data(v: ModelVersion) -> dict[str, Any]:
    """The full public record of a version."""
    return {
        "model": v.registered_model.name,
        "version": v.version,
        "status": v.status,
        "task": v.task,
        "artifact": {
            "sha256": v.artifact_sha256,
            "size": v.artifact_size,
            "estimator_class": v.estimator_class,
            "sklearn_version": v.sklearn_version,
            "types": v.artifact_types,
        },
        "params": v.params,
        "classes": v.classes,
        "input_schema": v.input_schema,
        "label_column": v.label_column,
        "sensitive_features": v.sensitive_features,
        "model_card": v.card.as_dict(),
        "model_card_sha256": v.card.content_hash(),
        "lineage": {
            "training_dataset": _dataset(v.training_dataset),
            "evaluation_dataset": _dataset(v.evaluation_dataset),
            "parents": [{"version": p.version, "artifact_sha256": p.artifact_sha256} for p in v.lineage()],
            "code_repository": v.code_repository,
            "code_commit": v.code_commit,
        },
        "review_round": v.review_round,
        "checks": [
            {
                "kind": c.kind,
                "round": c.round,
                "status": c.status,
                "gating": c.gating,
                "metrics": c.metrics,
                "policy": c.policy,
                "warning": c.warning,
                "error": c.error,
                "started_at": c.started_at,
                "finished_at": c.finished_at,
                "duration_ms": c.duration_ms,
            }
            for c in v.checks.filter(round=v.review_round).order_by("kind")
        ],
        "decisions": [
            {
                "kind": row["decision"].kind,
                "round": row["decision"].round,
                "by": row["decision"].actor_username,
                "at": row["decision"].created_at,
                "justification": row["decision"].justification,
                "override": row["decision"].override,
                "void": row["void"],
                "artifact_sha256": row["decision"].artifact_sha256,
                "card_sha256": row["decision"].card_sha256,
                "checks_sha256": row["decision"].checks_sha256,
            }
            for row in review.decisions_for_display(v)
        ],
        "created_by": v.created_by.username,
        "created_at": v.created_at,
        "submitted_by": v.submitted_by.username if v.submitted_by else None,
        "submitted_at": v.submitted_at,
    }


def model_data(m: RegisteredModel, versions: list[ModelVersion]) -> dict[str, Any]:
    production = selectors.production_version(m)
    return {
        "name": m.name,
        "title": m.title,
        "description": m.description,
        "risk_tier": m.risk_tier,
        "owner": m.owner.username,
        "production_version": production.version if production else None,
        "approved_versions": [v.version for v in selectors.approved_versions(m)],
        "input_schema": production.input_schema if production else None,
        "versions": [{"version": v.version, "status": v.status, "created_at": v.created_at} for v in versions],
    }


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
        risk_tier = serializers.ChoiceField(choices=RiskTier.choices)

    @extend_schema(responses=ModelOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        models = selectors.visible_models()
        return Response([model_data(m, list(selectors.visible_versions(request.user, m))) for m in models])

    @extend_schema(request=InputSerializer, responses={201: ModelOutputSerializer})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        model = services.register_model(actor=request.user, **data.validated_data)
        return Response(model_data(model, []), status=status.HTTP_201_CREATED)


class ModelDetailApi(APIView):
    permission_classes = [permissions.IsAuthenticated, CanReadRegistry]

    @extend_schema(responses=ModelOutputSerializer)
    def get(self, request: Request, name: str) -> Response:
        model = get_object_or_404(selectors.visible_models(), name=name)
        return Response(model_data(model, list(selectors.visible_versions(request.user, model))))


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
        parent_version = serializers.IntegerField(required=False, allow_null=True, min_value=1)
        code_repository = serializers.CharField(required=False, allow_blank=True, default="")
        code_commit = serializers.CharField(required=False, allow_blank=True, default="")
        dataset_source = serializers.CharField(required=False, allow_blank=True, default="")
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
            training=services.DatasetChoice(upload=d.get("training_data"), dataset_id=d.get("training_dataset")),
            evaluation=services.DatasetChoice(upload=d.get("evaluation_data"), dataset_id=d.get("evaluation_dataset")),
            label_column=d["label_column"],
            sensitive_features=d["sensitive_features"],
            parent_version=d.get("parent_version"),
            code_repository=d["code_repository"],
            code_commit=d["code_commit"],
            card={f: d[f] for f in CARD_FIELDS},
            dataset_source=d["dataset_source"],
        )
        return Response(version_data(version), status=status.HTTP_201_CREATED)


def _get_version(request: Request, name: str, number: int) -> ModelVersion:
    model = get_object_or_404(RegisteredModel, name=name)
    return get_object_or_404(selectors.visible_versions(request.user, model), version=number)


class VersionDetailApi(APIView):
    permission_classes = [permissions.IsAuthenticated, CanReadRegistry]

    @extend_schema(responses=VersionOutputSerializer)
    def get(self, request: Request, name: str, version: int) -> Response:
        return Response(version_data(_get_version(request, name, version)))


class VersionSubmitApi(APIView):
    permission_classes = [permissions.IsAuthenticated, CanReadRegistry]

    @extend_schema(request=None, responses=VersionOutputSerializer)
    def post(self, request: Request, name: str, version: int) -> Response:
        target = _get_version(request, name, version)
        submitted = workflow.submit_version(target.pk, actor=request.user)
        return Response(version_data(submitted))
