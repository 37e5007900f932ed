from django.urls import path

from serving import views

urlpatterns = [
    path("", views.batch_list, name="batches"),
    path("<uuid:job_id>/", views.batch_detail, name="batch"),
]
