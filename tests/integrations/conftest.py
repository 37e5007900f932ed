"""A real HTTP receiver on 127.0.0.1 (a thread with http.server) for the webhook tests, and the
governance fixtures that bring a version to review."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.governance.conftest import in_review, lenient_policy  # noqa: F401
from tests.serving.conftest import client_key, keyed, production  # noqa: F401


@dataclass
class Receiver:
    url: str
    status: int = 200
    requests: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def receiver(settings: Any) -> Iterator[Receiver]:
    settings.WEBHOOK_ALLOW_PRIVATE = True  # the receiver is on the loopback address
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            state.requests.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
            self.send_response(state.status)
            self.end_headers()
            self.wfile.write(b"ok" if state.status < 300 else b"receiver broken")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/modelgov"
    yield state
    server.shutdown()
    server.server_close()
