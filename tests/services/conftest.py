"""The services suite: PostgreSQL, Redis as the Celery broker, and a real Celery worker.

Two database roles, as `make serve` runs: this test process is the owner (it migrates, flushes
and plays the DBA), while the components under test that the suite starts (the Celery worker,
gunicorn, the Django processes standing in for a web request) connect as a runtime role that
owns nothing, created and granted with `manage.py grant_runtime_role` (runtime_database_url).

It never skips: if a service is missing it fails and says how to start it."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.db import connection

from tests.serving.conftest import client_key, keyed, production  # noqa: F401  (fixtures: a deployed version, an API key)

START_HELP = (
    "Run this suite with `make test-services` (it sets DATABASE_URL=postgres://... and "
    "CELERY_BROKER_URL=redis://...). Start the services with:\n"
    "  PostgreSQL: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n"
    '  Redis:      redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'
)
ROOT = Path(__file__).resolve().parents[2]
APPEND_ONLY_TABLES = ("governance_auditevent", "serving_predictionlog")
WORKER_APP_NAME = "celery-worker-under-test"
_WORKERS: list[subprocess.Popen] = []  # the worker this session started, while it runs


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/services" in str(item.fspath):
            item.add_marker(pytest.mark.services)


@pytest.fixture(scope="session", autouse=True)
def services_available() -> None:
    if django_settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.fail("tests/services needs PostgreSQL, but DATABASE_URL is not a postgres:// URL.\n" + START_HELP)
    if django_settings.CELERY_TASK_ALWAYS_EAGER or not django_settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.fail("tests/services needs Redis as the Celery broker (CELERY_BROKER_URL=redis://...).\n" + START_HELP)
    import psycopg
    import redis

    db = django_settings.DATABASES["default"]
    try:
        psycopg.connect(
            host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], dbname="postgres", connect_timeout=5
        ).close()
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {db['HOST']}:{db['PORT']}: {exc}\n{START_HELP}")
    try:
        redis.Redis.from_url(django_settings.CELERY_BROKER_URL, socket_connect_timeout=5).flushdb()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {django_settings.CELERY_BROKER_URL}: {exc}\n{START_HELP}")


def runtime_role_name() -> str:
    """The runtime role of this test database (one per database: helpers' suites run side by side)."""
    return f"{connection.settings_dict['NAME']}_app"[:63]


def runtime_database_url(port: int | None = None) -> str:
    """DATABASE_URL for a component under test: the test database, as the runtime role."""
    db = django_settings.DATABASES["default"]
    where = f"{db['HOST']}:{port or db['PORT'] or 5432}/{connection.settings_dict['NAME']}"
    return f"postgres://{runtime_role_name()}@{where}"


def connected_roles(application_name: str) -> set[str]:
    """The roles a component under test (named by its PGAPPNAME) is connected as right now."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name = %s", [application_name])
        return {row[0] for row in cursor.fetchall()}


def grant_runtime_role() -> None:
    """(Re)grant the runtime role what it may do: after the session's migrations, and again after a
    test that migrated (tables created again have no grants), as `make serve` does after migrate."""
    call_command("grant_runtime_role", runtime_role_name(), stdout=io.StringIO())


@pytest.fixture(scope="session", autouse=True)
def runtime_database_role(services_available: None, django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    """The role every component the suite starts connects as, created once the test database is
    migrated; dropped at the end (before the database is)."""
    with django_db_blocker.unblock():
        role = runtime_role_name()
        grant_runtime_role()
    yield role
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(f'DROP OWNED BY "{role}"')
        cursor.execute(f'DROP ROLE "{role}"')


@pytest.fixture(scope="session")
def shared_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shared-media")


@pytest.fixture(autouse=True)
def media_root(settings: Any, shared_media: Path) -> Path:
    """Overrides the per-test folder: the worker process must read the files the test wrote."""
    settings.MEDIA_ROOT = str(shared_media)
    return shared_media


@pytest.fixture
def committed_db(transactional_db: None) -> Iterator[None]:
    """Data the worker can see (committed). The append-only triggers refuse TRUNCATE, so they
    are switched off only for the flush that cleans up after the test."""
    with connection.cursor() as cursor:
        for table in APPEND_ONLY_TABLES:
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    yield
    _wait_for_the_worker_to_settle()
    with connection.cursor() as cursor:
        for table in APPEND_ONLY_TABLES:
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    _flush_until_it_holds()


def _other_active_sessions() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')"
        )
        return int(cursor.fetchone()[0])


def _queued_tasks() -> int:
    import redis

    client = redis.Redis.from_url(django_settings.CELERY_BROKER_URL, socket_connect_timeout=5)
    return sum(int(client.llen(name)) for name in client.scan_iter(match="celery*", _type="list"))


def _wait_for_the_worker_to_settle(timeout: float = 150.0) -> None:
    """Before the flush after a test: let the worker (or a server) finish what the test left it
    doing (checks, batch chunks, webhook deliveries the demo queues), so that TRUNCATE does not
    deadlock with it: nothing queued and no other session busy, twice in a row."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline and quiet < 3:
        # (with no worker started, what is queued stays queued: only the sessions are waited for)
        drained = not _WORKERS or _queued_tasks() == 0
        quiet = quiet + 1 if drained and _other_active_sessions() == 0 else 0
        time.sleep(0.2)


def _flush_until_it_holds(attempts: int = 4) -> None:
    """The test's own flush (pytest-django's follows on empty tables). A session that is still busy
    can deadlock with TRUNCATE: wait and try again, and before the last try end the other sessions
    on this database (the worker reconnects on its next task)."""
    for attempt in range(attempts):
        if attempt == attempts - 1:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
        try:
            call_command("flush", verbosity=0, interactive=False, inhibit_post_migrate=True)
            return
        except CommandError:
            if attempt == attempts - 1:
                raise
            _wait_for_the_worker_to_settle(timeout=30.0)


def log_keys_env() -> dict[str, str]:
    """The log's and the audit trail's MAC keys and the key encryption key of the test settings, for
    a child process (a worker, gunicorn): without them it would generate its own and not read (or
    verify) what the tests wrote."""
    return {
        "LOG_MAC_KEY": django_settings.LOG_MAC_KEY,
        "AUDIT_MAC_KEY": django_settings.AUDIT_MAC_KEY,
        "LOG_KEK": django_settings.LOG_KEK,
    }


@pytest.fixture(scope="session")
def celery_worker_process(
    runtime_database_role: str,
    django_db_blocker: Any,
    shared_media: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Path]:
    """A real `celery worker` process on the test database, as the runtime role, and the Redis broker."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with django_db_blocker.unblock():
        database_url = runtime_database_url()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": django_settings.CELERY_BROKER_URL,
        "MEDIA_ROOT": str(shared_media),
        **log_keys_env(),
        "OMP_NUM_THREADS": "1",
        "PGAPPNAME": WORKER_APP_NAME,  # libpq names the worker's connections
        # small seals are folded by forked processes too, so the worker's fold is the forked one
        "MONITOR_FOLD_ROWS_PER_PROCESS": "50",
    }
    handle = log.open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=prefork",
            "--concurrency=1",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "-n",
            "services-test@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while "ready." not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"The Celery worker did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    _WORKERS.append(process)
    yield log
    _WORKERS.remove(process)
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    handle.close()


def wait_for(predicate: Any, timeout: float = 180.0, message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
