from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self) -> None:
        # The webhook outbox is woken when an audit event it maps commits; the MLflow lineage rows
        # are evidence (proven by the chain) and append-only for the runtime database role.
        from compliance import db_roles
        from compliance.evidence import register_evidence_table
        from core import audit
        from integrations import outbox, tasks  # noqa: F401  (tasks register their jobs)
        from integrations.models import MlflowImport

        audit.add_listener(outbox.wake_on_commit)
        register_evidence_table(MlflowImport)
        db_roles.PROTECTED.setdefault(MlflowImport._meta.db_table, ("SELECT", "INSERT"))
