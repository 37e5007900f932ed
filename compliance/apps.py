from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance"
    verbose_name = "Compliance"

    def ready(self) -> None:
        # Registers the Celery task behind the report jobs (compliance.jobs sends them by name).
        from compliance import tasks  # noqa: F401
