"""Reliability: each test is a real fault on the real services.

A Redis of the test's own (never the shared one) stopped during a submission and started again;
a Celery worker SIGKILLed in the middle of a check; PostgreSQL refusing connections (a proxy port
the test closes) while predictions arrive; two slow anonymous clients against `make serve`'s nginx
configuration; a version report over 1,000,000 logged records through `make serve`'s gunicorn.
The figures are printed (`pytest -s` shows them) and the invariants asserted."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection

from core.actors import Actor
from core.models import AuditChainHead
from governance.models import CheckRun
from lifecycle import demo_data
from lifecycle.models import ModelVersion, Status
from serving.models import PredictionLog
from serving.services import create_api_key
from tests.conftest import make_version
from tests.factories import RegisteredModelFactory
from tests.services.conftest import ROOT, log_keys_env, runtime_database_url, wait_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _database_url(port: int | None = None) -> str:
    """The components under test (workers, gunicorn, a web request's process) connect as the runtime role."""
    return runtime_database_url(port)


def _env(shared_media: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": _database_url(),
        "MEDIA_ROOT": str(shared_media),
        **log_keys_env(),
        "OMP_NUM_THREADS": "1",
        **extra,
    }


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # its own session: the process and its children
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class OwnRedis:
    """A redis-server on a free port, started and killed by the test (the shared one is untouched)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + ["--daemonize", "no"],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        wait_for(lambda: _pings(client), timeout=20, message="our redis-server to start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()


def _pings(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    yield server
    if server.process and server.process.poll() is None:
        server.kill()


def _start_worker(log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A `celery worker` (prefork, one child) in its own session, so that it can be killed whole."""
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=prefork", "--concurrency=1"]
        + ["--loglevel=INFO", "--without-gossip", "--without-mingle", "-n", f"reliability-{log.stem}@%h"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while "ready." not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            pytest.fail(f"The Celery worker did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return process


def _in_django(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh Django process with `env` (its own Celery broker)."""
    result = subprocess.run(
        [sys.executable, "-c", "import django\ndjango.setup()\n" + code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def _submit(version: ModelVersion, actor: Actor, env: dict[str, str]) -> tuple[str, float, str]:
    """submit_version as the web request calls it, in a process whose broker is `env`'s: the
    version's status and how long the call took."""
    result = _in_django(
        "import time\n"
        "from django.contrib.auth import get_user_model\n"
        "from governance import workflow\n"
        f"user = get_user_model().objects.get(pk={actor.pk})\n"
        "started = time.monotonic()\n"
        f"status = workflow.submit_version({version.pk}, actor=user).status\n"
        "print(status, time.monotonic() - started)\n",
        env,
    )
    status, seconds = result.stdout.strip().splitlines()[-1].split()
    return status, float(seconds), result.stderr


def _new_version(actor: Actor, name: str, skops_bytes: bytes, train_csv: bytes, eval_csv: bytes) -> ModelVersion:
    model: Any = RegisteredModelFactory(name=name, owner=actor)
    return make_version(actor, model, skops_bytes, train_csv, eval_csv)


def test_a_submission_during_a_redis_outage_is_answered_and_checked_once_redis_is_back(
    committed_db, own_redis, shared_media, tmp_path, data_scientist, skops_bytes, train_csv, eval_csv
):
    env = _env(shared_media, CELERY_BROKER_URL=own_redis.url)
    worker = _start_worker(tmp_path / "worker.log", env)
    try:
        version = _new_version(data_scientist, "outage-model", skops_bytes, train_csv, eval_csv)
        own_redis.kill()
        status, seconds, stderr = _submit(version, data_scientist, env)
        assert status == Status.CHECKING  # the client's normal answer, no error
        assert "the broker is unavailable" in stderr
        version.refresh_from_db()
        assert version.status == Status.CHECKING
        assert set(version.checks.values_list("status", flat=True)) == {"queued"}

        own_redis.start()  # empty: what was sent before the outage is gone too
        back = time.monotonic()
        # The sweep beat runs every CHECK_SWEEP_SECONDS, here once and without the usual wait.
        sweep = _in_django(
            "from governance.tasks import resend_stranded_checks_task\nprint(len(resend_stranded_checks_task()))",
            {**env, "CHECK_RESEND_AFTER_SECONDS": "0"},
        )
        assert sweep.stdout.strip().splitlines()[-1] == "5"
        wait_for(
            lambda: ModelVersion.objects.get(pk=version.pk).status == Status.IN_REVIEW,
            timeout=120,
            message="the checks to run once Redis is back",
        )
        reviewed = time.monotonic() - back
    finally:
        _stop(worker)
    assert not version.checks.filter(status__in=["queued", "running"]).exists()
    print(
        f"\n[redis outage] submit answered in {seconds:.2f} s with status {status}; "
        f"in_review {reviewed:.1f} s after Redis restarted and the sweep re-sent 5 checks"
    )


def _blocked_backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
            [connection.settings_dict["NAME"]],
        )
        return int(cursor.fetchone()[0])


def test_a_check_whose_worker_is_sigkilled_finishes_within_the_visibility_timeout(
    committed_db, own_redis, shared_media, tmp_path, data_scientist, skops_bytes, train_csv, eval_csv
):
    """The kill lands mid-check for sure: the test holds the audit chain's head row, so the worker
    claims a check (running, committed), computes it, and waits to record its verdict."""
    import psycopg

    visibility = 12
    env = _env(
        shared_media,
        CELERY_BROKER_URL=own_redis.url,
        CELERY_VISIBILITY_TIMEOUT=str(visibility),
        CELERY_TASK_SOFT_TIME_LIMIT="8",
        CELERY_TASK_TIME_LIMIT="10",
    )
    first = _start_worker(tmp_path / "first.log", env)
    version = _new_version(data_scientist, "killed-worker-model", skops_bytes, train_csv, eval_csv)
    db = django_settings.DATABASES["default"]
    holder = psycopg.connect(
        host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], dbname=connection.settings_dict["NAME"]
    )
    try:
        assert _submit(version, data_scientist, env)[0] == Status.CHECKING
        table = AuditChainHead._meta.db_table
        holder.execute(f"SELECT 1 FROM {table} WHERE id = 1 FOR UPDATE")  # noqa: S608 (a model's table)
        wait_for(
            lambda: CheckRun.objects.filter(version=version, status="running").exists() and _blocked_backends(),
            timeout=60,
            message="a check to wait for the audit chain",
        )
        os.killpg(first.pid, signal.SIGKILL)  # the worker and its pool child, mid-check
        killed = time.monotonic()
        first.wait()
    finally:
        holder.rollback()  # the dead worker's transaction is rolled back when it gets the lock
        holder.close()
        _stop(first)
    stranded = CheckRun.objects.get(version=version, status="running")
    second = _start_worker(tmp_path / "second.log", env)
    try:
        wait_for(
            lambda: CheckRun.objects.get(pk=stranded.pk).is_finished,
            timeout=visibility + 60,
            message="the killed worker's check to be delivered again and finish",
        )
        recovered = time.monotonic() - killed
        wait_for(lambda: ModelVersion.objects.get(pk=version.pk).status == Status.IN_REVIEW, timeout=60)
    finally:
        _stop(second)
    stranded.refresh_from_db()
    assert stranded.attempts == 2  # claimed by the killed worker, then by the second one
    assert recovered < visibility + 60
    print(
        f"\n[killed worker] the {stranded.kind} check (killed while running) finished "
        f"{recovered:.1f} s after the SIGKILL (visibility_timeout {visibility} s), status {stranded.status}"
    )


class TcpProxy:
    """127.0.0.1:<port> forwarded to PostgreSQL; close() refuses new connections and cuts the open ones."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = _free_port()
        self.lock = threading.Lock()
        self.sockets: set[socket.socket] = set()
        self.listener: socket.socket | None = None

    def open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        assert self.listener is not None
        # shutdown() first: a plain close() would leave the socket listening while the accepting
        # thread is still blocked in accept() on it.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()  # new connections: refused
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets.update((client, server))
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(a, selectors.EVENT_READ, b)
            sel.register(b, selectors.EVENT_READ, a)
            try:
                while True:
                    for key, _ in sel.select(timeout=1):
                        data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                        if not data:
                            raise OSError("closed")
                        key.data.sendall(data)
            except (OSError, ValueError):
                pass
        with self.lock:
            for sock in (a, b):
                self.sockets.discard(sock)
                sock.close()


def _start_gunicorn(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """gunicorn with config/gunicorn.py and two sync workers, as `make serve` runs it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--config", "python:config.gunicorn"]
        + ["--bind", f"127.0.0.1:{port}", "--workers", "2", "--worker-class", "sync"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _wait_live(f"http://127.0.0.1:{port}", process, log)
    return process


def _start_nginx(prefix: Path, listen: int, upstream: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`make serve`'s nginx configuration (scripts/nginx_conf.py), with its own prefix."""
    subprocess.run(
        [sys.executable, "scripts/nginx_conf.py", "--listen", f"127.0.0.1:{listen}"]
        + ["--upstream", f"127.0.0.1:{upstream}", "--prefix", str(prefix), "--access-log", str(prefix / "access.log")],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        pytest.fail("nginx is not installed: run `make nginx` (Debian's package).")
    process = subprocess.Popen(
        [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")]
        + ["-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=(prefix / "stderr.log").open("w"),
        start_new_session=True,
    )
    _wait_live(f"http://127.0.0.1:{listen}", process, prefix / "error.log")
    return process


def _wait_live(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{base}/v2/health/live", timeout=5)  # noqa: S310 (local test server)
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                _stop(process)
                pytest.fail(f"{base} did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)


@dataclass
class Front:
    proxy: TcpProxy
    gunicorn: str  # gunicorn's own address
    nginx: str  # nginx in front of it


@pytest.fixture(scope="module")
def front(django_db_setup: None, django_db_blocker: Any, shared_media: Path) -> Iterator[Front]:
    """One stack for the module (gunicorn takes a while to start): gunicorn (two sync workers)
    reaching PostgreSQL through a TCP proxy the test can close, and nginx in front of it."""
    db = django_settings.DATABASES["default"]
    with django_db_blocker.unblock():
        proxy = TcpProxy((db["HOST"], int(db["PORT"] or 5432)))
        proxy.open()
        env = _env(shared_media, DATABASE_URL=_database_url(proxy.port))
    # Outside pytest's private temporary folder: as root, nginx's workers run as nobody.
    prefix = Path(tempfile.mkdtemp(prefix="reliability-"))
    prefix.chmod(0o755)
    g_port, n_port = _free_port(), _free_port()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(_start_gunicorn(g_port, env, prefix / "gunicorn.log"))
        processes.append(_start_nginx(prefix / "nginx", n_port, g_port, env))
        yield Front(proxy, f"http://127.0.0.1:{g_port}", f"http://127.0.0.1:{n_port}")
    finally:
        for process in reversed(processes):
            _stop(process)
        proxy.close()
        shutil.rmtree(prefix, ignore_errors=True)


def _predict(base: str, name: str, key: str, body: bytes, timeout: float = 10) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(  # noqa: S310 (local test server)
        f"{base}/api/v1/models/{name}/predict",
        data=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", "Connection": "close"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"raw": raw[:200].decode(errors="replace")}


def _prediction_body(german: Any) -> bytes:
    rows = german[1][demo_data.NUMERIC + demo_data.CATEGORICAL].head(2).to_dict(orient="records")
    return json.dumps({"instances": rows}).encode()


def test_postgresql_refusing_connections_under_load_gives_503s_and_no_unlogged_answer(
    committed_db, front, production, german
):
    base, name = front.gunicorn, production.registered_model.name
    key = create_api_key(actor=None, name="under-load")[1]
    body = _prediction_body(german)
    results: list[tuple[float, float, int, dict[str, Any]]] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            sent = time.monotonic()
            try:
                status, answer = _predict(base, name, key, body)
            except OSError as exc:  # (no answer at all: counted, and asserted below)
                status, answer = 0, {"exception": repr(exc)}
            results.append((sent, time.monotonic(), status, answer))

    with ThreadPoolExecutor(6) as pool:
        for _ in range(6):
            pool.submit(client)
        time.sleep(1.5)
        front.proxy.close()
        closed = time.monotonic()
        time.sleep(2.0)
        front.proxy.open()
        reopened = time.monotonic()
        time.sleep(2.5)
        stop.set()
    statuses = [status for _, _, status, _ in results]
    answered = [answer for _, _, status, answer in results if status == 200]
    ids = {pid.split(".")[0] for answer in answered for pid in answer["prediction_ids"]}
    logged = PredictionLog.objects.filter(public_id__in=ids).count()
    during = [status for sent, _, status, _ in results if closed <= sent < reopened]
    # (the fault is real: nothing sent and finished while the proxy was closed was answered)
    within = [status for sent, done, status, _ in results if closed <= sent and done < reopened]
    first_ok = min(done for sent, done, status, _ in results if status == 200 and sent >= reopened)
    print(
        f"\n[postgresql outage] {len(results)} requests: {statuses.count(200)} answered (200), "
        f"{statuses.count(503)} refused (503), other {sorted(set(statuses) - {200, 503})}; "
        f"{len(ids)} answered records, {logged} of them in serving_predictionlog; "
        f"{len(during)} sent during the 2 s outage, {within.count(503)} refused within it; "
        f"recovery {first_ok - reopened:.2f} s after reopening"
    )
    assert 500 not in statuses and set(statuses) <= {200, 503}, sorted(set(statuses))
    assert logged == len(ids) == len(answered)  # 0 answered predictions without a log record
    assert within and set(within) == {503}
    assert first_ok - reopened < 2.0


class SlowClient(threading.Thread):
    """An anonymous client trickling a multipart POST body to /login/, one byte per second. It
    sends a CSRF cookie, so that Django reads the body before it can refuse the token."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        host, port = base.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)))
        self.sock.sendall(
            b"POST /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: csrftoken=" + b"a" * 32 + b"\r\n"
            b"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 100000\r\n\r\n"
        )
        self.sent = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(1.0):
            try:
                self.sock.sendall(b"-")
            except OSError:
                return
            self.sent += 1

    def stop(self) -> None:
        self.stopped.set()
        self.sock.close()


def _timed_predictions(base: str, name: str, key: str, body: bytes, n: int, timeout: float) -> list[float]:
    latencies = []
    for _ in range(n):
        started = time.monotonic()
        try:
            status, answer = _predict(base, name, key, body, timeout=timeout)
            assert status == 200, answer
        except TimeoutError:
            pass  # no answer within `timeout`
        latencies.append(time.monotonic() - started)
        time.sleep(0.3)
    return latencies


def test_two_slow_anonymous_clients_do_not_hold_up_predictions_behind_nginx(committed_db, front, production, german):
    name, key = production.registered_model.name, create_api_key(actor=None, name="slow-clients")[1]
    body = _prediction_body(german)
    assert _predict(front.nginx, name, key, body)[0] == 200

    # Control: straight at gunicorn, the two slow bodies hold both sync workers.
    slow = [SlowClient(front.gunicorn) for _ in range(2)]
    for client in slow:
        client.start()
    time.sleep(1.5)
    blocked = _timed_predictions(front.gunicorn, name, key, body, n=1, timeout=2.0)
    for client in slow:
        client.stop()

    slow = [SlowClient(front.nginx) for _ in range(2)]
    for client in slow:
        client.start()
    time.sleep(1.5)
    latencies = _timed_predictions(front.nginx, name, key, body, n=8, timeout=5.0)
    still_trickling = all(client.is_alive() and client.sent >= 3 for client in slow)
    for client in slow:
        client.stop()
    print(
        f"\n[slow clients] straight to gunicorn a prediction waited {blocked[0]:.2f} s (gave up at 2 s); "
        f"behind nginx {len(latencies)} predictions, slowest {max(latencies) * 1000:.0f} ms, "
        f"median {sorted(latencies)[len(latencies) // 2] * 1000:.0f} ms"
    )
    assert blocked[0] >= 2.0  # the attack is real without nginx
    assert still_trickling  # the slow clients were still connected throughout
    assert max(latencies) < 1.0


def _status_for_declared_length(base: str, path: str, length: int, key: str = "") -> int | None:
    """Send only the headers of a POST declaring `length` bytes: nginx refuses an oversized body
    (413) or an upload without a valid key (401) at once; None when it waits for the body instead."""
    host, port = base.removeprefix("http://").split(":")
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    with socket.create_connection((host, int(port)), timeout=1) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n{auth}"
            f"Content-Length: {length}\r\n\r\n".encode()
        )
        try:
            head = sock.recv(200).decode(errors="replace")
        except TimeoutError:
            return None
    return int(head.split()[1]) if head.startswith("HTTP/") else None


def test_nginx_takes_each_endpoint_s_largest_body_and_nothing_larger(committed_db, front):
    key = create_api_key(actor=None, name="largest-bodies")[1]
    default = django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1024 * 1024
    version = django_settings.MAX_ARTIFACT_BYTES + 2 * django_settings.MAX_DATASET_BYTES + 1024 * 1024
    batch = django_settings.BATCH_MAX_BYTES + 1024 * 1024
    cases = [
        ("/login/", default + 1, 413),
        ("/api/v1/models/m/predict", default + 1, 413),
        ("/api/v1/models/m/versions/", default + 1, None),
        ("/registry/models/m/versions/new/", version, None),
        ("/api/v1/models/m/versions/", version + 1, 413),
        ("/api/v1/models/m/batches", batch, None),
        ("/batches/", batch, None),
        ("/api/v1/models/m/batches", batch + 1, 413),
    ]
    seen = [(path, length, _status_for_declared_length(front.nginx, path, length, key)) for path, length, _ in cases]
    assert seen == cases
    # without a key the upload routes answer 401 before reading the body, whatever its size
    for path, length in (("/api/v1/models/m/versions/", version), ("/api/v1/models/m/batches", batch)):
        assert _status_for_declared_length(front.nginx, path, length) == 401
        assert _status_for_declared_length(front.nginx, path, length, "mg_not_a_key") == 401


def test_with_redis_killed_gunicorn_keeps_answering_and_logging_predictions(
    committed_db, own_redis, production, german, shared_media, tmp_path
):
    """The API-key rate and quota count in Redis (CACHE_URL); with Redis gone they fall back to a
    bucket in each worker: no 500, every answer logged, and the workers say so in their log."""
    name, key = production.registered_model.name, create_api_key(actor=None, name="redis-outage")[1]
    env = _env(
        shared_media,
        CACHE_URL=f"rediscache://127.0.0.1:{own_redis.port}/0",
        API_KEY_DAILY_QUOTA="1000",
        SERVING_RATE_PER_KEY="100000/min",
    )
    port, log = _free_port(), tmp_path / "gunicorn.log"
    gunicorn = _start_gunicorn(port, env, log)
    try:
        body = _prediction_body(german)
        base = f"http://127.0.0.1:{port}"
        assert _predict(base, name, key, body)[0] == 200
        own_redis.kill()
        statuses = [_predict(base, name, key, body)[0] for _ in range(6)]
    finally:
        _stop(gunicorn)
    assert statuses == [200] * 6, log.read_text()[-3000:]
    assert PredictionLog.objects.filter(outcome="ok", model_name=name).count() == 7
    assert "counted per process" in log.read_text()


REPORT_RECORDS = 1_000_000


def _http(base: str, path: str, cookies: dict[str, str], data: dict[str, str] | None = None) -> Any:
    """A request to the server with the auditor's session (and, for a form POST, a CSRF token);
    redirects are not followed. Returns (status, headers, body)."""
    token = "c" * 32
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in {**cookies, "csrftoken": token}.items())}
    body = None
    if data is not None:
        body = urllib.parse.urlencode({**data, "csrfmiddlewaretoken": token}).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(f"{base}{path}", data=body, headers=headers)  # noqa: S310 (local test server)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=300) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def _pdf_text(pdf: bytes) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True
    ).stdout.decode()


def test_a_version_report_over_a_million_records_finishes_under_gunicorn_and_reads_back(
    committed_db, front, celery_worker_process, production, german, auditor, client
):
    """A version whose log holds 1,000,000 sealed records (bench.logfill, the
    fill bench-audit uses: leaves, MACs and seals as the application writes them). Through `make
    serve`'s gunicorn: the report job an auditor starts is rendered by the worker, and the report
    the API renders in the request itself finishes within gunicorn's timeout; both PDFs read
    back with the count and a passed verification."""
    from datetime import timedelta

    from django.utils import timezone

    from bench import logfill
    from compliance.models import ReportJob

    name = production.registered_model.name
    key = create_api_key(actor=None, name="report-template")[1]
    status, answer = _predict(front.gunicorn, name, key, _prediction_body(german))
    assert status == 200, answer
    template = PredictionLog.objects.get(public_id=answer["prediction_ids"][0].split(".")[0])
    started = time.monotonic()
    fill = logfill.fill_log(
        production, template, first=0, last=REPORT_RECORDS - 1, start=timezone.now() - timedelta(days=30),
        span=timedelta(days=30),
    )  # fmt: skip
    seal = logfill.seal()
    total = PredictionLog.objects.filter(version=production).count()
    assert total == REPORT_RECORDS and not PredictionLog.objects.filter(seal__isnull=True).exists()
    filled = time.monotonic() - started

    client.force_login(auditor)  # a session in the database, sent to gunicorn as a cookie
    cookies = {django_settings.SESSION_COOKIE_NAME: client.cookies[django_settings.SESSION_COOKIE_NAME].value}
    started = time.monotonic()
    report = {"kind": "version_report", "model": name, "version": str(production.version)}
    status, headers, _ = _http(front.gunicorn, "/audit/jobs/", cookies, report)
    assert status == 302, status
    job_page = headers["Location"]

    def finished() -> dict[str, Any] | None:
        state = json.loads(_http(front.gunicorn, f"{job_page}status.json", cookies)[2])
        return state if state["status"] in ("done", "failed") else None

    state = wait_for(finished, timeout=900, message="the report job over 1,000,000 records")
    job_seconds = time.monotonic() - started
    job = ReportJob.objects.get()
    assert state["status"] == "done", job.error
    status, headers, pdf = _http(front.gunicorn, state["result_url"], cookies)
    assert status == 200 and pdf.startswith(b"%PDF-")
    assert hashlib.sha256(pdf).hexdigest() == job.result_sha256 == headers["X-Report-SHA256"]

    started = time.monotonic()  # the API renders it in the request: within gunicorn's timeout
    status, _, direct = _http(
        front.gunicorn, f"/api/v1/models/{name}/versions/{production.version}/report.pdf", cookies
    )
    api_seconds = time.monotonic() - started
    assert status == 200 and direct.startswith(b"%PDF-"), direct[:300]
    for text in (_pdf_text(pdf), _pdf_text(direct)):
        assert re.search(rf"Requests logged\s+{REPORT_RECORDS}\b", text), re.findall(r"Requests logged.*", text)
        assert "Verification PASSED" in text
    print(
        f"\n[report over {total:,} records] fill {fill:.0f} s + seal {seal:.0f} s ({filled:.0f} s); the job through "
        f"gunicorn and the worker {job_seconds:.0f} s ({len(pdf):,} bytes); the API's report in one request "
        f"{api_seconds:.0f} s (gunicorn's timeout: {int(django_settings.REPORT_RENDER_TIMEOUT) + 30} s)"
    )
