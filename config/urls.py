from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from compliance import api as compliance_api
from compliance import control_api, incident_api, oversight_views
from config.api_docs import DocsReader
from governance import api as governance_api
from governance import finding_views, history_api, killswitch_api
from governance import urls as governance_urls
from governance import views as governance_views
from integrations import views as integrations_views
from lifecycle import api as lifecycle_api
from lifecycle import mlflow_api as lifecycle_mlflow_api
from lifecycle import mlflow_views as lifecycle_mlflow_views
from lifecycle import urls as lifecycle_urls
from monitoring import api as monitoring_api
from serving import api as serving_api
from serving import batch_api, contest_api, decision_api, oversight_api, subject_api, v2
from serving import views as serving_views

api_v1 = [
    path("auth/check", serving_api.AuthCheckApi.as_view(), name="api-auth-check"),
    path("models/", lifecycle_api.ModelListApi.as_view(), name="api-models"),
    path("models/<slug:name>/", lifecycle_api.ModelDetailApi.as_view(), name="api-model"),
    path("models/<slug:name>/tier", governance_api.ModelTierApi.as_view(), name="api-model-tier"),
    path(
        "models/<slug:name>/fairness-requirements",
        governance_api.ModelFairnessRequirementsApi.as_view(),
        name="api-model-fairness-requirements",
    ),
    path("models/<slug:name>/versions/", lifecycle_api.VersionCreateApi.as_view(), name="api-versions"),
    path(
        "models/<slug:name>/versions/import-mlflow",
        lifecycle_mlflow_api.MlflowImportApi.as_view(),
        name="api-version-import-mlflow",
    ),
    path("models/<slug:name>/versions/<int:version>/", governance_api.VersionDetailApi.as_view(), name="api-version"),
    path(
        "models/<slug:name>/versions/<int:version>/report.pdf",
        compliance_api.VersionReportApi.as_view(),
        name="api-version-report",
    ),
    path(
        "models/<slug:name>/versions/<int:version>/technical-documentation.pdf",
        compliance_api.TechnicalDocumentationApi.as_view(),
        name="api-version-technical-documentation",
    ),
    path(
        "models/<slug:name>/versions/<int:version>/monitoring",
        monitoring_api.VersionMonitoringApi.as_view(),
        name="api-version-monitoring",
    ),
    path(
        "models/<slug:name>/performance",
        monitoring_api.ExternalPerformanceApi.as_view(),
        name="api-external-performance",
    ),
    path("models/<slug:name>/history", history_api.ModelHistoryApi.as_view(), name="api-model-history"),
    path("models/<slug:name>/fallback", killswitch_api.ModelFallbackApi.as_view(), name="api-model-fallback"),
    path("models/<slug:name>/stop", killswitch_api.ModelStopApi.as_view(), name="api-model-stop"),
    path("models/<slug:name>/resume", killswitch_api.ModelResumeApi.as_view(), name="api-model-resume"),
    path("models/<slug:name>/controls", control_api.ModelControlsApi.as_view(), name="api-model-controls"),
    path("models/<slug:name>/controls.pdf", control_api.ModelControlsPdfApi.as_view(), name="api-model-controls-pdf"),
    path(
        "models/<slug:name>/controls/<str:control_id>/attest",
        control_api.ControlAttestApi.as_view(),
        name="api-control-attest",
    ),
    path("incidents", incident_api.IncidentListApi.as_view(), name="api-incidents"),
    path("incidents/<str:incident_id>", incident_api.IncidentDetailApi.as_view(), name="api-incident"),
    path(
        "incidents/<str:incident_id>/report.pdf", incident_api.IncidentReportApi.as_view(), name="api-incident-report"
    ),
    path("outcomes", monitoring_api.OutcomeBulkApi.as_view(), name="api-outcomes"),
    path("reports/period.pdf", compliance_api.PeriodReportApi.as_view(), name="api-period-report"),
    path("models/<slug:name>/predict", serving_api.ModelPredictApi.as_view(), name="api-predict"),
    path("models/<slug:name>/kpis", monitoring_api.ModelKpisApi.as_view(), name="api-model-kpis"),
    path("findings/<int:finding_id>/retraining", governance_api.FindingRetrainingApi.as_view(), name="api-retraining"),
    path(
        "models/<slug:name>/versions/<int:version>/retraining",
        governance_api.VersionRetrainingApi.as_view(),
        name="api-version-retraining",
    ),
    path("models/<slug:name>/overlays", governance_api.ModelOverlaysApi.as_view(), name="api-model-overlays"),
    path("models/<slug:name>/decisions", serving_api.ExternalDecisionsApi.as_view(), name="api-external-decisions"),
    path("models/<slug:name>/batches", batch_api.BatchCreateApi.as_view(), name="api-batches"),
    path("models/<slug:name>/oversight", oversight_api.ModelOversightApi.as_view(), name="api-model-oversight"),
    path("batches/<str:job_id>", batch_api.BatchDetailApi.as_view(), name="api-batch"),
    path("batches/<str:job_id>/result.csv", batch_api.BatchResultApi.as_view(), name="api-batch-result"),
    path("subjects/erasure", subject_api.SubjectErasureApi.as_view(), name="api-subject-erasure"),
    path("predictions/", serving_api.PredictionListApi.as_view(), name="api-predictions"),
    path("predictions/search", serving_api.PredictionSearchApi.as_view(), name="api-predictions-search"),
    path("predictions/<str:prediction_id>/", serving_api.PredictionDetailApi.as_view(), name="api-prediction"),
    path("predictions/<str:prediction_id>/outcome", serving_api.PredictionOutcomeApi.as_view(), name="api-outcome"),
    path(
        "predictions/<str:prediction_id>/explanation",
        decision_api.PredictionExplanationApi.as_view(),
        name="api-explanation",
    ),
    path("predictions/<str:prediction_id>/review", decision_api.PredictionReviewApi.as_view(), name="api-review"),
    path("predictions/<str:prediction_id>/contest", contest_api.PredictionContestApi.as_view(), name="api-contest"),
    path(
        "predictions/<str:prediction_id>/receipt.pdf", compliance_api.DecisionReceiptApi.as_view(), name="api-receipt"
    ),
    path(
        "models/<slug:name>/versions/<int:version>/validation",
        governance_api.VersionValidationApi.as_view(),
        name="api-version-validation",
    ),
    path(
        "models/<slug:name>/versions/<int:version>/validation/benchmark",
        governance_api.VersionBenchmarkApi.as_view(),
        name="api-version-benchmark",
    ),
    path(
        "models/<slug:name>/versions/<int:version>/submit",
        governance_api.VersionSubmitApi.as_view(),
        name="api-version-submit",
    ),
]

open_inference_v2 = [
    path("health/live", v2.HealthLiveApi.as_view(), name="v2-live"),
    path("health/ready", v2.HealthReadyApi.as_view(), name="v2-ready"),
    path("models/<slug:name>", v2.ModelMetadataApi.as_view(), name="v2-model"),
    path("models/<slug:name>/ready", v2.ModelReadyApi.as_view(), name="v2-model-ready"),
    path("models/<slug:name>/infer", v2.ModelInferApi.as_view(), name="v2-infer"),
    path("models/<slug:name>/versions/<int:version>", v2.ModelMetadataApi.as_view(), name="v2-version"),
    path("models/<slug:name>/versions/<int:version>/ready", v2.ModelReadyApi.as_view(), name="v2-version-ready"),
    path("models/<slug:name>/versions/<int:version>/infer", v2.ModelInferApi.as_view(), name="v2-version-infer"),
]


class DemoAwareLoginView(auth_views.LoginView):
    """The login page; under `make demo` (DEMO_LOGINS) it lists every demo login and its role."""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        if settings.DEMO_LOGINS:
            from config.management.commands.seed_demo import PASSWORD, USERS

            named = {u: [r.removesuffix("s").replace("-", " ") for r in roles] for u, _, _, roles in USERS}
            logins = [(u, " and ".join(roles)) for u, roles in named.items()]
            context["demo_logins"] = [*logins, ("admin", "superuser (Django admin)")]
            context["demo_password"] = PASSWORD
        return context


urlpatterns = [
    path("", governance_views.home, name="home"),
    path("login/", DemoAwareLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # One namespace for the registry pages, whichever layer serves them.
    path("registry/", include((lifecycle_urls.urlpatterns + governance_urls.urlpatterns, "lifecycle"))),
    path("audit/", include("compliance.urls")),
    path("monitoring/", include("monitoring.urls")),
    path("batches/", include("serving.urls")),
    path("subjects/erasure/", serving_views.erase_subject, name="subject-erasure"),
    path("oversight/", oversight_views.oversight_queue, name="oversight-queue"),
    path("findings/<int:finding_id>/", finding_views.finding_page, name="finding"),
    path("admin/", admin.site.urls),
    path("registry/import-mlflow/", lifecycle_mlflow_views.mlflow_import, name="mlflow-import"),
    path("metrics", integrations_views.metrics_view, name="metrics"),
    path("api/v1/", include(api_v1)),
    path("v2/", include(open_inference_v2)),
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[DocsReader]), name="schema"),
    # The split view serves Swagger UI's start-up script as a file (?script=): nothing inline (CSP).
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="schema", permission_classes=[DocsReader]),
        name="api-docs",
    ),
]

# A database outage is a 503 (config/unavailable.py); any other uncaught error stays a 500.
handler500 = "config.unavailable.server_error"
