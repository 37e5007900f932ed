from __future__ import annotations

from django.urls import path

from lifecycle import views

urlpatterns = [
    path("models/", views.model_list, name="model-list"),
    path("models/new/", views.model_register, name="model-register"),
    path("models/<slug:name>/", views.model_detail, name="model-detail"),
    path("models/<slug:name>/versions/new/", views.version_create, name="version-create"),
    path("models/<slug:name>/versions/<int:version>/edit/", views.version_edit, name="version-edit"),
]
