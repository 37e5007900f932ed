"""Registry pages served by governance; config/urls.py mounts them in the registry's
`lifecycle` URL namespace beside lifecycle's own pages, so every page keeps one address."""

from __future__ import annotations

from django.urls import path

from governance import views

urlpatterns = [
    path("models/<slug:name>/versions/<int:version>/", views.version_detail, name="version-detail"),
    path("models/<slug:name>/versions/<int:version>/status.json", views.version_status, name="version-status"),
    path("models/<slug:name>/versions/<int:version>/submit/", views.version_submit, name="version-submit"),
    path("models/<slug:name>/versions/<int:version>/validation/", views.version_validation, name="version-validation"),
]
