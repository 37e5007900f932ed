from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from governance import api as governance_api
from lifecycle import api as lifecycle_api
from lifecycle import views as lifecycle_views
from serving import api as serving_api
from serving import v2

api_v1 = [
    path("models/", lifecycle_api.ModelListApi.as_view(), name="api-models"),
    path("models/<slug:name>/", lifecycle_api.ModelDetailApi.as_view(), name="api-model"),
    path("models/<slug:name>/versions/", lifecycle_api.VersionCreateApi.as_view(), name="api-versions"),
    path("models/<slug:name>/versions/<int:version>/", lifecycle_api.VersionDetailApi.as_view(), name="api-version"),
    path(
        "models/<slug:name>/versions/<int:version>/report.pdf",
        governance_api.VersionReportApi.as_view(),
        name="api-version-report",
    ),
    path("reports/period.pdf", governance_api.PeriodReportApi.as_view(), name="api-period-report"),
    path("models/<slug:name>/predict", serving_api.ModelPredictApi.as_view(), name="api-predict"),
    path("predictions/", serving_api.PredictionListApi.as_view(), name="api-predictions"),
    path("predictions/<str:prediction_id>/", serving_api.PredictionDetailApi.as_view(), name="api-prediction"),
    path("predictions/<str:prediction_id>/outcome", serving_api.PredictionOutcomeApi.as_view(), name="api-outcome"),
    path(
        "models/<slug:name>/versions/<int:version>/submit",
        lifecycle_api.VersionSubmitApi.as_view(),
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

urlpatterns = [
    path("", lifecycle_views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("registry/", include("lifecycle.urls")),
    path("audit/", include("governance.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("v2/", include(open_inference_v2)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]
