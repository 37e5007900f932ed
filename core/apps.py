from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        # django-axes announces a lockout only through its signal: the one receiver, so that every
        # lockout is in the audit trail (core.logins.record_lockout).
        from axes.signals import user_locked_out

        from core.logins import on_user_locked_out

        user_locked_out.connect(on_user_locked_out, dispatch_uid="core.logins.on_user_locked_out")
