"""The Celery app. Without CELERY_BROKER_URL, tasks run in-process (eager) so the
application works with no broker server; with it, they go to the real broker."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("modelgov")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
