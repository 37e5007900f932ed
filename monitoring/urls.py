from django.urls import path

from monitoring import views

app_name = "monitoring"
urlpatterns = [
    path("<slug:name>/<int:version>/", views.version_monitoring, name="version"),
]
