from django.apps import AppConfig


class ServingConfig(AppConfig):
    name = "serving"
    verbose_name = "Serving"

    def ready(self) -> None:
        # registers the batch jobs' tasks with core.jobs (as governance.tasks does its own)
        from serving import tasks  # noqa: F401
