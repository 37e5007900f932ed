"""Safe production defaults, each seen from outside the test process: the settings as
a fresh interpreter reads them from the environment, `manage.py check --deploy`, and `make serve`'s
refusal to start without its secrets."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What the environment holds for our settings, removed so that each run sees only what it is given.
OURS = (
    "DEBUG",
    "SECRET_KEY",
    "LOG_MAC_KEY",
    "AUDIT_MAC_KEY",
    "CHECKPOINT_SIGNING_KEY",
    "CHECKPOINT_WITNESS_KEY",
    "TRUST_PROXY_HEADERS",
    "DATABASE_URL",
    "MIGRATION_DATABASE_URL",
    "METRICS_TOKEN",
)


def production_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in OURS and not k.startswith("DJANGO_")}
    env.update(
        DEBUG="False",
        SECRET_KEY=secrets.token_urlsafe(50),
        LOG_MAC_KEY=secrets.token_hex(32),
        AUDIT_MAC_KEY=secrets.token_hex(32),
        CHECKPOINT_SIGNING_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        METRICS_TOKEN=secrets.token_urlsafe(32),
        CHECKPOINT_WITNESS_KEY=secrets.token_hex(32),
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    env.update(extra)
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def setting(name: str, env: dict[str, str]) -> str:
    code = f"import config.settings as s; print(repr(getattr(s, {name!r}, None)))"
    result = run([sys.executable, "-c", code], env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_forwarded_proto_is_trusted_only_when_trust_proxy_headers_is_set() -> None:
    assert setting("SECURE_PROXY_SSL_HEADER", production_env()) == "None"
    assert setting("SECURE_PROXY_SSL_HEADER", production_env(TRUST_PROXY_HEADERS="false")) == "None"
    trusted = production_env(TRUST_PROXY_HEADERS="true")
    assert setting("SECURE_PROXY_SSL_HEADER", trusted) == "('HTTP_X_FORWARDED_PROTO', 'https')"


def test_check_deploy_prints_no_warning_with_the_production_settings() -> None:
    result = run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env())
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output
    assert "WARNINGS" not in output


@pytest.mark.parametrize(
    "unset",
    ["SECRET_KEY", "LOG_MAC_KEY", "AUDIT_MAC_KEY", "CHECKPOINT_SIGNING_KEY", "CHECKPOINT_WITNESS_KEY", "METRICS_TOKEN"],
)
def test_make_serve_refuses_to_start_without_each_secret(unset: str) -> None:
    env = production_env(DEBUG="True")  # make serve must not care what DEBUG says
    del env[unset]
    # -o: never rebuild the virtualenv here; serve-preflight stops make before anything starts.
    result = run(["make", "--no-print-directory", "-o", ".venv/.installed", "serve"], env)
    assert result.returncode != 0
    assert f"make serve refuses to start: set {unset} " in result.stderr
    assert "DEBUG must be False" not in result.stderr  # make serve sets it whatever the environment says
    assert "gunicorn" not in result.stdout + result.stderr


def test_serve_preflight_alone_insists_on_debug_false() -> None:
    """(With DEBUG=False and the secrets it goes on to `check --deploy`, the test above.)"""
    result = run(["make", "--no-print-directory", "serve-preflight"], production_env(DEBUG="True"))
    assert result.returncode != 0 and "DEBUG must be False" in result.stderr


def _serve_environment(variable: str, env: dict[str, str]) -> str:
    """What `make serve`'s recipes see of `variable`: a probe added as serve's last prerequisite
    prints it and stops make (-o: nothing before it is built or checked)."""
    probe = f"serve-probe: ; @echo {variable}=$${variable}; exit 3"
    args = ["make", "--no-print-directory", "-o", ".venv/.installed", "-o", "venv", "-o", "serve-preflight"]
    result = run([*args, "-o", "nginx", "--eval", "serve: serve-probe", "--eval", probe, "serve"], env)
    assert result.returncode != 0 and "gunicorn" not in result.stdout
    return result.stdout.strip().splitlines()[-1].split("=", 1)[1]


def test_make_serve_sets_a_daily_quota_per_key_unless_the_environment_does() -> None:
    env = {k: v for k, v in production_env().items() if k != "API_KEY_DAILY_QUOTA"}
    assert int(_serve_environment("API_KEY_DAILY_QUOTA", env)) > 0
    assert _serve_environment("API_KEY_DAILY_QUOTA", {**env, "API_KEY_DAILY_QUOTA": "0"}) == "0"


APP_ROLE = "postgres://modelgov_app:app-secret@127.0.0.1:5432/modelgov"
OWNER = "postgres://modelgov_owner:owner-secret@127.0.0.1:5432/modelgov"
REFUSED = "make serve refuses to start: on PostgreSQL set MIGRATION_DATABASE_URL"


def test_make_serve_on_postgresql_refuses_to_start_without_a_separate_migration_role() -> None:
    """The application's role would own the tables, and could drop the triggers that keep the
    evidence append-only: nothing starts, and the message says why and how."""
    result = run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "serve"], production_env(DATABASE_URL=APP_ROLE)
    )
    assert result.returncode != 0
    assert REFUSED in result.stderr and "other than DATABASE_URL's (modelgov_app)" in result.stderr
    assert "drop the" in result.stderr and "triggers" in result.stderr  # why
    assert "grant_runtime_role" in result.stderr and "createuser" in result.stderr  # how
    assert "gunicorn" not in result.stdout + result.stderr and "migrate" not in result.stdout


@pytest.mark.parametrize(
    "migration_url",
    [
        APP_ROLE.replace("app-secret", "other-password"),  # the same role is no separation
        "postgres://127.0.0.1:5432/modelgov",  # no role named
    ],
)
def test_serve_preflight_refuses_a_migration_url_that_is_not_another_role(migration_url: str) -> None:
    env = production_env(DATABASE_URL=APP_ROLE, MIGRATION_DATABASE_URL=migration_url)
    result = run(["make", "--no-print-directory", "serve-preflight"], env)
    assert result.returncode != 0 and REFUSED in result.stderr


def test_serve_preflight_passes_with_two_roles_on_postgresql_and_on_sqlite_without_one() -> None:
    """(check --deploy needs no connection, so no database has to exist here.)"""
    for env in (production_env(DATABASE_URL=APP_ROLE, MIGRATION_DATABASE_URL=OWNER), production_env()):
        result = run(["make", "--no-print-directory", "serve-preflight"], env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert REFUSED not in result.stderr and "manage.py check --deploy" in result.stdout
