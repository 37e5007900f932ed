from __future__ import annotations

from django.urls import path

from lifecycle import views

app_name = "lifecycle"

urlpatterns = [
    path("models/", views.model_list, name="model-list"),
    path("models/new/", views.model_register, name="model-register"),
    path("models/<slug:name>/", views.model_detail, name="model-detail"),
    path("models/<slug:name>/versions/new/", views.version_create, name="version-create"),
    path("models/<slug:name>/versions/<int:version>/", views.version_detail, name="version-detail"),
    path("models/<slug:name>/versions/<int:version>/status.json", views.version_status, name="version-status"),
    path("models/<slug:name>/versions/<int:version>/edit/", views.version_edit, name="version-edit"),
    path("models/<slug:name>/versions/<int:version>/submit/", views.version_submit, name="version-submit"),
]
