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
        _class_third_party_tables()

        from core import layers, registry  # noqa: F401  (register their system checks)


def _class_third_party_tables() -> None:
    """The ledger class of each table that Django and its add-ons define (core.ledger)."""
    from django.apps import apps

    from core.ledger import TableClass, classify

    reasons = {
        "auth.user": "a person's login record (password hash, last login); their roles are proven as "
        "memberships (core.role_changes) and every grant is an audit event",
        "auth.group": "the role names, created by migrations; membership is proven (core.role_changes)",
        "auth.permission": "Django's permission catalogue, created by migrations",
        "contenttypes.contenttype": "Django's model catalogue, created by migrations",
        "sessions.session": "login sessions, expiring on their own",
        "admin.logentry": "the admin's own history; the audit trail is the record",
        "axes.accessattempt": "login attempts (rate limiting)",
        "axes.accessfailurelog": "failed logins (rate limiting)",
        "axes.accesslog": "logins (rate limiting)",
        "axes.accessattemptexpiration": "when a login attempt stops counting (rate limiting)",
    }
    for label, reason in reasons.items():
        app_label, model_name = label.split(".")
        try:
            model = apps.get_model(app_label, model_name)
        except LookupError:  # an add-on that is not installed
            continue
        classify(model, TableClass.OPERATIONAL, reason)
