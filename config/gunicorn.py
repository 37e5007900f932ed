"""gunicorn settings used by `make serve` (behind nginx, config/nginx.conf.template).

With PROMETHEUS_MULTIPROC_DIR set, each worker writes its metrics to files there, and a worker
that exits is marked dead so its live gauges stop counting (prometheus-client's multiprocess
mode; integrations/metrics.py)."""

from __future__ import annotations

import os
from typing import Any

# A sync worker answers one request at a time; nginx hands it complete, buffered requests, so this
# bounds the application's own work, not a client's speed. Longer than REPORT_RENDER_TIMEOUT: a
# report rendered in the request ends with its own 503 message before gunicorn would kill the worker.
timeout = int(os.environ.get("WEB_TIMEOUT") or float(os.environ.get("REPORT_RENDER_TIMEOUT") or 120) + 30)
graceful_timeout = 30
# Recycle workers now and then (a slow leak in a native library stays bounded); the jitter keeps
# the workers from restarting together.
max_requests = int(os.environ.get("WEB_MAX_REQUESTS") or 2000)
max_requests_jitter = max(1, max_requests // 10)


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
