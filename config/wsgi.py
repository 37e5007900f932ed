"""The WSGI application (gunicorn: `make serve`, the benchmarks).

Once the application and its URLconf are loaded, every object they made is moved out of the
garbage collector's generations (gc.freeze): a full collection would otherwise walk those
hundreds of thousands of long-lived objects again and again, and a large request (1,000 rows
logged) allocates enough to set one off every few requests: 8 to 12 ms a request on average,
measured in-process, against under 1 ms once frozen."""

from __future__ import annotations

import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()
get_resolver().url_patterns  # noqa: B018 (imports every view now, so their objects are frozen too)
gc.collect()
gc.freeze()
