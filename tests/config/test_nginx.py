"""make serve's nginx configuration (scripts/nginx_conf.py): it passes `nginx -t`, and in front of
the running application it refuses anonymous and key-less uploads before reading their bodies,
and its access log keeps no query string (docs/operations-limits.md)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts import nginx_conf
from serving.services import create_api_key

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
needs_nginx = pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed: run `make nginx`")
GIB = 1024**3


class NoRedirect(urllib.request.HTTPRedirectHandler):
    last = 0

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201
        NoRedirect.last = code
        return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _write(prefix: Path, *, listen: int, upstream: str) -> Path:
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    text = nginx_conf.render(
        listen=f"127.0.0.1:{listen}",
        upstream=upstream,
        prefix=prefix,
        conn_per_ip=64,
        access_log=str(prefix / "access.log"),
    )
    conf.write_text(text)
    return conf


@pytest.fixture
def prefix() -> Iterator[Path]:
    # Outside pytest's private temporary folder: as root, nginx's workers run as nobody.
    folder = Path(tempfile.mkdtemp(prefix="nginx-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_the_upload_routes_check_the_caller_and_limit_connections_and_rate(prefix):
    text = _write(prefix, listen=_free_port(), upstream="127.0.0.1:9").read_text()
    for route in ("batches|batches/", "versions/(import-mlflow)?"):
        block = text[text.index(route) :].split("}\n        location", 1)[0]
        assert "auth_request /_upload_auth;" in block and "if ($anonymous_upload)" in block
        assert "limit_conn uploadperip 4;" in block and "limit_req zone=uploads" in block
    assert "access_log " + str(prefix / "access.log") + " noquery;" in text
    assert "$request " not in text.split("log_format noquery", 1)[1].split(";", 1)[0]


@needs_nginx
def test_the_rendered_configuration_passes_nginx_t(prefix):
    conf = _write(prefix, listen=_free_port(), upstream="127.0.0.1:9")
    checked = subprocess.run(
        [NGINX, "-t", "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr


def _status_for_declared_length(port: int, path: str, length: int, headers: str = "", timeout: float = 2) -> int | None:
    """Send only the headers of a POST declaring `length` bytes: the status nginx answers at once,
    or None when it waits for the body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n{headers}"
            f"Content-Length: {length}\r\n\r\n".encode()
        )
        try:
            head = sock.recv(200).decode(errors="replace")
        except TimeoutError:
            return None
    return int(head.split()[1]) if head.startswith("HTTP/") else None


@needs_nginx
@pytest.mark.django_db(transaction=True)
def test_anonymous_and_bad_key_uploads_are_refused_before_their_body_is_read(prefix, live_server):
    port = _free_port()
    upstream = live_server.url.removeprefix("http://")
    conf = _write(prefix, listen=port, upstream=upstream)
    process = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, (prefix / "error.log").read_text()
                time.sleep(0.1)
        key = create_api_key(actor=None, name="nginx-test")[1]
        batch = "/api/v1/models/credit-risk/batches"
        assert _status_for_declared_length(port, batch, GIB) == 401  # no key, no session
        wrong_key = _status_for_declared_length(port, batch, GIB, "Authorization: Bearer mg_wrong\r\n")
        assert wrong_key == 401, (prefix / "error.log").read_text()
        versions = "/api/v1/models/m/versions/"
        assert _status_for_declared_length(port, versions, GIB // 8, "Cookie: sessionid=x\r\n") == 401
        assert _status_for_declared_length(port, batch, GIB, f"Authorization: Bearer {key}\r\n") is None  # waits
        # a burst of uploads from one address: beyond the burst, 429 at once (GETs are not counted)
        burst = [
            _status_for_declared_length(port, batch, 100, f"Authorization: Bearer {key}\r\n", timeout=0.3)
            for _ in range(12)
        ]
        assert 429 in burst and set(burst) <= {None, 429}, burst
        # the pages' forms (GET) are the application's to answer: a redirect to the login
        with contextlib.suppress(urllib.error.HTTPError):
            opener = urllib.request.build_opener(NoRedirect)
            page = opener.open(f"http://127.0.0.1:{port}/batches/", timeout=5)
            raise AssertionError(f"/batches/ answered {page.status} to an anonymous GET")
        assert NoRedirect.last == 302
        body_dir = prefix / "client_body"
        assert not body_dir.exists() or not any(body_dir.rglob("*"))
        lookup = f"http://127.0.0.1:{port}/api/v1/predictions/?business_key=SUBJECT-4711"
        with contextlib.suppress(urllib.error.HTTPError):  # (401: no credentials; the log line is what counts)
            urllib.request.urlopen(lookup, timeout=5)  # noqa: S310 (local test server)
        process.terminate()
        process.wait(10)
        logged = (prefix / "access.log").read_text()
        assert "/api/v1/predictions/ " in logged and "SUBJECT-4711" not in logged
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
