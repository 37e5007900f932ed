"""The Celery app. Without CELERY_BROKER_URL, tasks run in-process (eager) so the
application works with no broker server; with it, they go to the real broker."""

from __future__ import annotations

import gc
import os
from typing import Any

from celery import Celery
from celery.signals import worker_process_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("modelgov")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect  # a prefork pool's child, once it has started
@worker_ready.connect  # the worker itself (a solo pool runs the tasks in it)
def freeze_loaded_objects(**_: Any) -> None:
    """Move what the loaded application made out of the garbage collector's generations, as
    config/wsgi.py does: a batch chunk allocates enough to set off full collections, and each one
    would walk every long-lived object again."""
    gc.collect()
    gc.freeze()
