from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        # Registers the Celery task behind each job the workflow asks for (core.jobs).
        from governance import tasks  # noqa: F401
