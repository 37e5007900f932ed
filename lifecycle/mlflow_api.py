"""POST /api/v1/models/{name}/versions/import-mlflow: the MLflow import for pipelines (multipart:
`mlflow_model`, a zip of the MLflow model directory, plus the submission's datasets and fields)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lifecycle import records
from lifecycle.api import CanReadRegistry, VersionOutputSerializer
from lifecycle.errors import MlflowImportRefused
from lifecycle.mlflow_import import Source, import_mlflow_model
from lifecycle.models import CARD_FIELDS, MlflowImport, RiskTier
from lifecycle.submission import DatasetChoice


def lineage(row: MlflowImport) -> dict[str, object]:
    return {
        "run_id": row.run_id,
        "model_uuid": row.model_uuid,
        "mlflow_version": row.mlflow_version,
        "signature": row.signature,
        "pip_requirements": row.pip_requirements,
        "mlmodel_sha256": row.mlmodel_sha256,
    }


class MlflowImportApi(APIView):
    permission_classes = [permissions.IsAuthenticated, CanReadRegistry]
    parser_classes = [MultiPartParser, FormParser]

    class InputSerializer(serializers.Serializer):
        mlflow_model = serializers.FileField(help_text="A zip of the MLflow model directory (with MLmodel).")
        training_data = serializers.FileField(required=False)
        evaluation_data = serializers.FileField(required=False)
        training_dataset = serializers.IntegerField(required=False)
        evaluation_dataset = serializers.IntegerField(required=False)
        label_column = serializers.CharField()
        sensitive_features = serializers.ListField(child=serializers.CharField(), required=False, default=list)
        title = serializers.CharField(required=False, allow_blank=True, default="")
        risk_tier = serializers.ChoiceField(choices=RiskTier.choices, required=False, default=RiskTier.MEDIUM)
        locals().update({f: serializers.CharField(required=False, allow_blank=True, default="") for f in CARD_FIELDS})

    @extend_schema(request={"multipart/form-data": InputSerializer}, responses={201: VersionOutputSerializer})
    def post(self, request: Request, name: str) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        archive = d["mlflow_model"]
        if archive.size > settings.MAX_ARTIFACT_BYTES:
            raise MlflowImportRefused("The zip is larger than MAX_ARTIFACT_BYTES.", field="mlflow_model", status=413)
        version = import_mlflow_model(
            actor=request.user,
            source=Source(archive=archive.read()),
            model_name=name,
            training=DatasetChoice(upload=d.get("training_data"), dataset_id=d.get("training_dataset")),
            evaluation=DatasetChoice(upload=d.get("evaluation_data"), dataset_id=d.get("evaluation_dataset")),
            label_column=d["label_column"],
            sensitive_features=d["sensitive_features"],
            title=d["title"],
            risk_tier=d["risk_tier"],
            card={f: d[f] for f in CARD_FIELDS},
            source_path=getattr(archive, "name", ""),
        )
        body = {**records.version_record(version), "checks": [], "decisions": []}
        body["mlflow"] = lineage(version.mlflow_import)
        return Response(body, status=status.HTTP_201_CREATED)
