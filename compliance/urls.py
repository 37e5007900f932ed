from __future__ import annotations

from django.urls import path

from compliance import control_views, decision_views, incident_views, oversight_views, views

app_name = "audit"

urlpatterns = [
    path("", views.index, name="index"),
    path("inventory/", views.model_inventory, name="inventory"),
    path("inventory.csv", views.model_inventory_csv, name="inventory-csv"),
    path("models/<slug:name>/", views.model_detail, name="model"),
    path("models/<slug:name>/controls/", control_views.model_controls, name="controls"),
    path("models/<slug:name>/versions/<int:version>/", views.version_detail, name="version"),
    path("models/<slug:name>/versions/<int:version>/report.pdf", views.version_report, name="version-report"),
    path("reports/", views.period_report, name="reports"),
    path("predictions/", views.predictions, name="predictions"),
    path("predictions/<uuid:public_id>/", views.prediction_detail, name="prediction"),
    path("decisions/", decision_views.find_decision, name="decisions"),
    path("decisions/<str:prediction_id>/", decision_views.decision_detail, name="decision"),
    path("decisions/<str:prediction_id>/review", oversight_views.review_from_page, name="decision-review"),
    path(
        "decisions/<str:prediction_id>/contestations/<int:case_id>/answer",
        oversight_views.answer_from_page,
        name="contest-answer",
    ),
    path("decisions/<str:prediction_id>/receipt.pdf", decision_views.decision_receipt, name="decision-receipt"),
    path("incidents/", incident_views.incident_register, name="incidents"),
    path("incidents/<str:public_id>/", incident_views.incident_detail, name="incident"),
    path("trail/", views.trail, name="trail"),
    path("jobs/", views.start_job, name="start-job"),
    path("jobs/<uuid:public_id>/", views.job_detail, name="job"),
    path("jobs/<uuid:public_id>/status.json", views.job_status, name="job-status"),
    path("jobs/<uuid:public_id>/result", views.job_result, name="job-result"),
    path("exports/<slug:what>.<slug:fmt>", views.export, name="export"),
]
