"""gunicorn settings used by `make serve`: with PROMETHEUS_MULTIPROC_DIR set, each worker writes
its metrics to files there, and a worker that exits is marked dead so its live gauges stop
counting (prometheus-client's multiprocess mode; integrations/metrics.py)."""

from __future__ import annotations

import os
from typing import Any


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
