from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from lifecycle import api as lifecycle_api
from lifecycle import views as lifecycle_views

api_v1 = [
    path("models/", lifecycle_api.ModelListApi.as_view(), name="api-models"),
    path("models/<slug:name>/", lifecycle_api.ModelDetailApi.as_view(), name="api-model"),
    path("models/<slug:name>/versions/", lifecycle_api.VersionCreateApi.as_view(), name="api-versions"),
    path("models/<slug:name>/versions/<int:version>/", lifecycle_api.VersionDetailApi.as_view(), name="api-version"),
    path(
        "models/<slug:name>/versions/<int:version>/submit",
        lifecycle_api.VersionSubmitApi.as_view(),
        name="api-version-submit",
    ),
]

urlpatterns = [
    path("", lifecycle_views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("registry/", include("lifecycle.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]
