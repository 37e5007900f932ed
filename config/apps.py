from django.apps import AppConfig


class ConfigConfig(AppConfig):
    """The top layer as an app, so that its commands (seed_demo, which calls every app's demo) load."""

    name = "config"
    verbose_name = "Configuration"
