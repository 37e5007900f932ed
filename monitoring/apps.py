from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        # The review page's Recertify button freezes this layer's evidence (governance.snapshots).
        from governance import snapshots
        from monitoring import selectors

        snapshots.register(selectors.recertification_snapshot)
