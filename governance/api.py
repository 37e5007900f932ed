"""The version API where governance comes in: a version's full record (checks, decisions)
and submitting a draft for review. Thin: parse, call one function, render."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance import workflow
from governance.records import version_data
from lifecycle import selectors
from lifecycle.api import CanReadRegistry, VersionOutputSerializer
from lifecycle.models import ModelVersion, RegisteredModel


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
