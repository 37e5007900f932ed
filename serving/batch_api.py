"""The batch jobs API: accept a CSV (or a stored dataset) for scoring, follow the job, download
its result. Thin: parse, call serving.batch, render."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from serving import batch
from serving.api import error_response, serving_error
from serving.errors import ServingError
from serving.http import caller_of
from serving.models import BatchJob, BatchStatus

JobSerializer = inline_serializer(
    "BatchJob",
    {
        "id": serializers.UUIDField(),
        "model": serializers.CharField(),
        "version": serializers.IntegerField(),
        "status": serializers.CharField(),
        "reason": serializers.CharField(),
        "rows_total": serializers.IntegerField(),
        "rows_done": serializers.IntegerField(),
        "rows_failed": serializers.IntegerField(),
        "rows_answered": serializers.IntegerField(),
        "rows_not_answered": serializers.ListField(child=serializers.ListField(child=serializers.IntegerField())),
        "rows_per_second": serializers.FloatField(),
        "seconds_left": serializers.FloatField(allow_null=True),
        "input_sha256": serializers.CharField(),
        "result_sha256": serializers.CharField(),
        "result_url": serializers.CharField(allow_null=True),
    },
)


def job_data(job: BatchJob) -> dict[str, Any]:
    shown = batch.progress(job)
    return {
        "id": str(job.public_id),
        "model": job.model_name,
        "version": job.version.version,
        "status": job.status,
        "reason": job.reason,
        "rows_total": job.rows_total,
        "rows_done": shown["rows_done"],
        "rows_failed": shown["rows_failed"],
        "percent": shown["percent"],
        "rows_per_second": shown["rows_per_second"],
        "seconds_left": shown["seconds_left"],
        "chunks_total": job.chunks_total,
        "chunks_done": job.chunks_done,
        # What a stopped job answered, and the rows it did not (each also named in the result CSV)
        "rows_answered": shown["rows_done"] - shown["rows_failed"],
        "rows_not_answered": batch.unscored_rows(job) if job.status == BatchStatus.STOPPED else [],
        "input_name": job.input_name,
        "input_sha256": job.input_sha256,
        "input_kept": bool(job.input_file),
        "business_key_column": job.business_key_column,
        "id_columns": job.id_columns,
        "result_sha256": job.result_sha256,
        "result_url": f"/api/v1/batches/{job.public_id}/result.csv" if job.result_sha256 else None,
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


class BatchCreateApi(APIView):
    """Score a CSV (multipart "data") or a stored dataset ({"dataset": id}) as a batch job."""

    permission_classes = [permissions.IsAuthenticated]
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(
        request={
            "multipart/form-data": inline_serializer(
                "BatchUpload",
                {
                    "data": serializers.FileField(),
                    "version": serializers.IntegerField(required=False),
                    "business_key_column": serializers.CharField(required=False),
                    "id_columns": serializers.CharField(
                        required=False, help_text="Input columns copied into the result, comma-separated"
                    ),
                },
            ),
            "application/json": inline_serializer(
                "BatchDataset",
                {
                    "dataset": serializers.IntegerField(),
                    "version": serializers.IntegerField(required=False),
                    "id_columns": serializers.ListField(child=serializers.CharField(), required=False),
                },
            ),
        },
        responses={202: JobSerializer},
    )
    def post(self, request: Request, name: str) -> Response:
        caller = caller_of(request)
        if not batch.may_run_batch(request.user, caller.api_key):
            return error_response(
                "forbidden", "Batch jobs are for data scientists, risk officers and client API keys.", 403
            )
        data: Any = request.data if not isinstance(request.data, list) else {}
        version = data.get("version")
        if isinstance(version, str) and version.strip():
            version = int(version) if version.strip().isascii() and version.strip().isdigit() else "bad"
        if version == "" or version is None:
            version = None
        elif isinstance(version, bool) or not isinstance(version, int):
            return error_response("invalid_batch", '"version" must be a version number.', 400)
        dataset = data.get("dataset")
        if isinstance(dataset, str):
            dataset = int(dataset) if dataset.isascii() and dataset.isdigit() else dataset
        try:
            job = batch.accept_batch(
                model_name=name,
                version_number=version,
                submitter=batch.Submitter(caller=caller.name, user=request.user, api_key=caller.api_key),
                upload=request.FILES.get("data"),
                dataset_id=dataset,
                business_key_column=str(data.get("business_key_column") or ""),
                id_columns=_id_columns(data),
            )
        except ServingError as exc:
            return serving_error(exc)
        job.refresh_from_db()
        return Response(job_data(job), status=202, headers={"Location": f"/api/v1/batches/{job.public_id}"})


def _id_columns(data: Any) -> list[str] | str | None:
    """A JSON list, or a form's comma-separated text (or repeated fields)."""
    if hasattr(data, "getlist"):
        given = data.getlist("id_columns")
        return ",".join(str(g) for g in given) if given else None
    value = data.get("id_columns")
    return value if isinstance(value, (list, str)) else None


def _job(request: Request, job_id: str) -> BatchJob | Response:
    try:
        public_id = uuid.UUID(job_id)
    except ValueError:
        return error_response("not_found", "There is no such batch job.", 404)
    job = BatchJob.objects.select_related("version").filter(public_id=public_id).first()
    if job is None or not batch.may_read_batch(job, request.user, caller_of(request).api_key):
        return error_response("not_found", "There is no such batch job.", 404)
    return job


class BatchDetailApi(APIView):
    """A job's status and progress."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses={200: JobSerializer})
    def get(self, request: Request, job_id: str) -> Response:
        found = _job(request, job_id)
        return found if isinstance(found, Response) else Response(job_data(found))


class BatchResultApi(APIView):
    """The result CSV of a finished job (its SHA-256 in the X-Content-SHA256 header)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses={(200, "text/csv"): bytes})
    def get(self, request: Request, job_id: str) -> HttpResponse | FileResponse | Response:
        found = _job(request, job_id)
        if isinstance(found, Response):
            return found
        if not found.result_sha256:
            return error_response(
                "not_ready", f"The job is {found.status}: its result is written when every chunk is done.", 409
            )
        if not found.result_file:
            return error_response(
                "result_expired",
                "The result of this job was deleted when the personal-data retention ended (its SHA-256 is kept).",
                410,
            )
        response = FileResponse(
            default_storage.open(found.result_file, "rb"),
            content_type="text/csv",
            as_attachment=True,
            filename=f"{found.model_name}-batch-{found.public_id}.csv",
        )
        response["X-Content-SHA256"] = found.result_sha256
        return response
