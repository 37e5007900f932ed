from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self) -> None:
        # The webhook outbox is woken when an audit event it maps commits.
        from core import audit
        from integrations import outbox, tasks  # noqa: F401  (tasks register their jobs)

        audit.add_listener(outbox.wake_on_commit)
