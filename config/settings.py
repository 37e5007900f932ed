"""The one settings file. Every setting is an environment variable with a safe development
default: nothing set means SQLite in the project folder and Celery tasks run in-process."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG=False.")
    SECRET_KEY = "insecure-development-key-only-used-when-DEBUG-is-true-0123456789"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "core.admin_app.GovernanceAdminConfig",  # django.contrib.admin with the product's site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",  # intcomma: row counts with separators
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    # The layers, bottom to top (each imports only those above it in this list; make lint).
    "core",
    "lifecycle",
    "governance",
    "serving",
    "monitoring",
    "compliance",
    "integrations",
    "config",  # the top layer: seed_demo, which calls every app's demo
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy on every response (policy below).
    "csp.middleware.CSPMiddleware",
    # The database unreachable: a 503 that says so, for pages and /api/ alike (not a 500).
    "config.unavailable.DatabaseUnavailableMiddleware",
    # A query string holding NUL is a 400 before any view (PostgreSQL cannot take NUL in text).
    "config.middleware.RefuseNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Auditors change nothing: any write by an auditor-only account is refused and audited.
    "governance.middleware.AuditorReadOnlyMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Counts and times the prediction endpoints for /metrics (no database access).
    "integrations.metrics.PredictionMetricsMiddleware",
    # Turns a login refused for lockout into the lockout page (429); last, as axes requires.
    "axes.middleware.AxesMiddleware",
]

if env.bool("EXPOSE_WORKER_PID", default=False):
    MIDDLEWARE.append("serving.middleware.WorkerPidMiddleware")

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.roles.roles_context",
            ],
        },
    },
]

# SQLite by default (in the project folder); DATABASE_URL=postgres://... for PostgreSQL.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock at BEGIN, so two writers queue instead of one failing
    # with "database is locked" when it upgrades a read lock. The journal stays in its
    # durable default (no WAL + synchronous=NORMAL): the prediction log must survive power loss.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 30})
else:
    # Reconnecting per request cost 2-3x throughput in the serving benchmark (docs/benchmarks.md).
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # The serving path's few statements run as prepared statements (serving/rawsql.py): planned
    # once per connection instead of every request. Django's own queries are never prepared
    # (client-side binding), so the threshold only enables the explicit ones. Turn it off
    # behind a connection pooler in transaction mode (PgBouncer), which cannot keep them.
    if env.bool("DB_PREPARED_STATEMENTS", default=True):
        DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 2**31 - 1
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# axes first: it refuses a locked-out login before any password is checked.
AUTHENTICATION_BACKENDS = ["core.logins.LoginLimitsBackend", "django.contrib.auth.backends.ModelBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# examples/: the small model and CSVs the version form links to (examples/make_examples.py)
STATICFILES_DIRS = [BASE_DIR / "static", ("examples", BASE_DIR / "examples")]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "var" / "static")
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "var" / "media")
# Files kept across a refused version form, encrypted, for a day (lifecycle.staging): apart from
# MEDIA_ROOT, which holds only what was saved.
STAGED_UPLOAD_DIR = env.path("STAGED_UPLOAD_DIR", default=BASE_DIR / "var" / "staged")
MEDIA_URL = "media/"  # never served by URL: artifacts are read only through lifecycle.artifacts

# Uploads bigger than this go to a temporary file instead of memory, in FILE_UPLOAD_TEMP_DIR
# (unset: the system's). `make serve` points it at var/upload-tmp and empties it at start, so a
# file left by a worker killed mid-upload does not outlive the server.
FILE_UPLOAD_MAX_MEMORY_SIZE = env.int("FILE_UPLOAD_MAX_MEMORY_SIZE", default=5 * 1024 * 1024)
FILE_UPLOAD_TEMP_DIR = env.str("FILE_UPLOAD_TEMP_DIR", default="") or None

# --- Artifacts and datasets -------------------------------------------------------------
MAX_ARTIFACT_BYTES = env.int("MAX_ARTIFACT_BYTES", default=200 * 1024 * 1024)
MAX_DATASET_BYTES = env.int("MAX_DATASET_BYTES", default=200 * 1024 * 1024)
# A CSV with more columns is refused before pandas reads it (60,000 columns took 30 s).
MAX_DATASET_COLUMNS = env.int("MAX_DATASET_COLUMNS", default=2_000)
# Checked on the zip directory before skops opens the file (zip bombs).
SKOPS_MAX_ZIP_ENTRIES = env.int("SKOPS_MAX_ZIP_ENTRIES", default=20_000)
# Also the limit on every array a .npy member declares in its header, read before it is inflated.
SKOPS_MAX_UNCOMPRESSED_BYTES = env.int("SKOPS_MAX_UNCOMPRESSED_BYTES", default=4 * MAX_ARTIFACT_BYTES)
# The allow-list for skops.io.load: the dotted path of a frozenset of exact, fully qualified
# names (lifecycle/allowlist.py says why each one is there). A name is never trusted for the
# package it lives in. Deliberately a constant, not an environment variable and never taken
# from the file: widening it is a reviewed code change.
SKOPS_ALLOWED_TYPES = "lifecycle.allowlist.ALLOWED_TYPES"

# --- Serving ----------------------------------------------------------------------------
SERVING_MAX_ROWS = env.int("SERVING_MAX_ROWS", default=10_000)
# Request bodies above this are refused with 413 before they are parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("SERVING_MAX_BODY_BYTES", default=20 * 1024 * 1024)
# The longest text an input field takes (characters); a field whose schema lists its categories
# takes up to its longest category (at least 32). Longer: 400 invalid_input naming the field.
SERVING_MAX_TEXT_CHARS = env.int("SERVING_MAX_TEXT_CHARS", default=256)
# JSON bodies of the prediction routes nested deeper than this are refused (400 too_deep, logged)
# before they are parsed; a v1 body nests 3 levels, a v2 body 5.
SERVING_MAX_JSON_DEPTH = env.int("SERVING_MAX_JSON_DEPTH", default=32)
SERVING_RATE_PER_KEY = env.str("SERVING_RATE_PER_KEY", default="600000/min")
# Prediction requests per API key per UTC day (429 daily_quota_exceeded beyond it); 0: unlimited.
API_KEY_DAILY_QUOTA = env.int("API_KEY_DAILY_QUOTA", default=0)
# A refused request logs at most this many of its rows (plus their count, SHA-256 and size).
REFUSED_LOG_SAMPLE_ROWS = env.int("REFUSED_LOG_SAMPLE_ROWS", default=10)
SEAL_BATCH_SIZE = env.int("SEAL_BATCH_SIZE", default=100_000)
# Verifying the seals (verify_audit, Verify now, a report's verification) on PostgreSQL: seals
# are judged by up to VERIFY_PROCESSES forked processes, each with at least
# VERIFY_RECORDS_PER_PROCESS records (serving.seal_processes). Default: the machine's cores.
VERIFY_PROCESSES = env.int("VERIFY_PROCESSES", default=os.cpu_count() or 1)
VERIFY_RECORDS_PER_PROCESS = env.int("VERIFY_RECORDS_PER_PROCESS", default=50_000)
# Batch jobs (serving.batch): the largest CSV accepted, the rows of one chunk (one Celery task,
# one transaction), and the rows of one log record within a chunk.
BATCH_MAX_BYTES = env.int("BATCH_MAX_BYTES", default=2 * 1024**3)
BATCH_CHUNK_ROWS = env.int("BATCH_CHUNK_ROWS", default=50_000)
BATCH_RECORD_ROWS = env.int("BATCH_RECORD_ROWS", default=1_000)
# Chunks of unfinished jobs untouched this long past the task time limit are sent again.
BATCH_STRANDED_AFTER_SECONDS = env.int("BATCH_STRANDED_AFTER_SECONDS", default=600)
SEAL_INTERVAL_SECONDS = env.int("SEAL_INTERVAL_SECONDS", default=300)

# --- Signed checkpoints (docs/design.md, "Audit trail, seals and checkpoints") ------------------
# The chain head and the latest seal, signed (Ed25519, a C2SP signed note) and appended to
# CHECKPOINT_DIR/checkpoints.log, outside the database: a truncated or rewritten chain shows.
CHECKPOINT_DIR = Path(env.str("CHECKPOINT_DIR", default=str(BASE_DIR / "var" / "checkpoints")))
# The Ed25519 private key (32 bytes, hex or base64). Unset and DEBUG: one is generated on first
# use and kept in CHECKPOINT_KEY_FILE. With DEBUG=False it must be set.
CHECKPOINT_SIGNING_KEY = env.str("CHECKPOINT_SIGNING_KEY", default="")
CHECKPOINT_KEY_FILE = Path(env.str("CHECKPOINT_KEY_FILE", default=str(BASE_DIR / "var" / "checkpoint-signing.key")))
# The log's name in each note (first line, and the key name): no spaces, no "+".
_CHECKPOINT_HOST = next((h.lstrip(".") for h in ALLOWED_HOSTS if h.strip(".*")), "localhost")
CHECKPOINT_ORIGIN = env.str("CHECKPOINT_ORIGIN", default=f"modelgov/{_CHECKPOINT_HOST}")
# Verification needs only the public key: the verifier key `manage.py checkpoint --public-key`
# prints (<name>+<key hash>+<base64 key>). Unset: derived from the signing key, if there is one.
CHECKPOINT_PUBLIC_KEY = env.str("CHECKPOINT_PUBLIC_KEY", default="")
# Beat writes one every interval; verification fails when the newest is older than twice it.
CHECKPOINT_INTERVAL_SECONDS = env.int("CHECKPOINT_INTERVAL_SECONDS", default=60)
# The witness: its own Ed25519 key cosigns each checkpoint (C2SP tlog-cosignature) and keeps every
# note it cosigned in its own directory (unset: "<CHECKPOINT_DIR>-witness" beside it; best on
# another disk or host), so a checkpoint log cut or emptied behind it fails verification.
CHECKPOINT_WITNESS_DIR = env.str("CHECKPOINT_WITNESS_DIR", default="")
CHECKPOINT_WITNESS_NAME = env.str("CHECKPOINT_WITNESS_NAME", default=f"witness/{_CHECKPOINT_HOST}")
# Its private key (32 bytes, hex or base64): required with DEBUG=False; in development generated on
# first use into CHECKPOINT_WITNESS_KEY_FILE. Verifying needs only its public key (or this key).
CHECKPOINT_WITNESS_KEY = env.str("CHECKPOINT_WITNESS_KEY", default="")
CHECKPOINT_WITNESS_KEY_FILE = Path(
    env.str("CHECKPOINT_WITNESS_KEY_FILE", default=str(BASE_DIR / "var" / "checkpoint-witness.key"))
)
CHECKPOINT_WITNESS_PUBLIC_KEY = env.str("CHECKPOINT_WITNESS_PUBLIC_KEY", default="")
# Every prediction record carries an HMAC-SHA256 of its Merkle leaf under this key, held outside
# the database, so someone with database access cannot forge a record and its hash before it is
# sealed. Unset in development: generated on first use into LOG_MAC_KEY_FILE; required otherwise.
LOG_MAC_KEY = env.str("LOG_MAC_KEY", default="")
LOG_MAC_KEY_FILE = Path(env.str("LOG_MAC_KEY_FILE", default=str(BASE_DIR / "var" / "log-mac.key")))
# Every audit event carries an HMAC-SHA256 of its hash under this key, held outside the database,
# so SQL alone cannot append an event (or rewrite the chain) that verify_audit accepts. Unset in
# development: generated on first use into AUDIT_MAC_KEY_FILE; required otherwise.
AUDIT_MAC_KEY = env.str("AUDIT_MAC_KEY", default="")
AUDIT_MAC_KEY_FILE = Path(env.str("AUDIT_MAC_KEY_FILE", default=str(BASE_DIR / "var" / "audit-mac.key")))
# The key encryption key of personal data in the log (serving.personal): 32 bytes, hex or base64.
# It wraps one data key per (model, data subject, month); LOG_KEK_PREVIOUS (comma separated)
# still unwraps keys wrapped before a rotation (`manage.py rotate_log_kek` re-wraps them).
LOG_KEK = env.str("LOG_KEK", default="")
LOG_KEK_PREVIOUS = env.list("LOG_KEK_PREVIOUS", default=[])
LOG_KEK_FILE = Path(env.str("LOG_KEK_FILE", default=str(BASE_DIR / "var" / "log-kek.key")))
# How long a process keeps a subject's unwrapped data key for new answers; an erasure reaches
# every process within this time (reads always ask the database).
SUBJECT_KEY_CACHE_SECONDS = env.int("SUBJECT_KEY_CACHE_SECONDS", default=30)

# --- Reports ----------------------------------------------------------------------------
# WeasyPrint runs in a child process that is stopped after this many seconds.
REPORT_RENDER_TIMEOUT = env.float("REPORT_RENDER_TIMEOUT", default=120.0)
# Period reports and exports cover at most this many days per request.
REPORT_MAX_PERIOD_DAYS = env.int("REPORT_MAX_PERIOD_DAYS", default=3660)
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}
if "redis" in CACHES["default"]["BACKEND"].lower():
    # A cache that does not answer must not hold a request: the API-key counters then fail open
    # to a per-process bucket (serving.throttling, docs/operations-limits.md).
    CACHES["default"].setdefault("OPTIONS", {}).update(
        {
            "socket_connect_timeout": env.float("CACHE_TIMEOUT_SECONDS", default=0.5),
            "socket_timeout": env.float("CACHE_TIMEOUT_SECONDS", default=0.5),
        }
    )

# --- Celery -----------------------------------------------------------------------------
# No broker configured: tasks run in-process, right after the transaction that enqueued them.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
if not CELERY_BROKER_URL:
    CELERY_BROKER_URL = "memory://"
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=600)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=660)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The login page lists the demo's logins (make demo sets it; never in production).
DEMO_LOGINS = env.bool("DEMO_LOGINS", default=False)
# A message a worker took but never acknowledged (the worker died) is delivered again after this
# long, instead of kombu's 3,600 s default; longer than any task may run (CELERY_TASK_TIME_LIMIT).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=CELERY_TASK_TIME_LIMIT + 240),
    # A worker looks for such messages every 10 s (unacked_restore_interval), but kombu 5.7 scans
    # only on every 10th look by default: up to ~100 s more. Every look scans (one ZRANGE).
    "unacked_restore_throttle": 1,
}
# `make demo`: a real worker without a broker server, on kombu's filesystem transport (each
# message a file under var/broker; the README's "Run it" says why).
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker = Path(env.str("CELERY_FILESYSTEM_BROKER_DIR", default=str(BASE_DIR / "var" / "broker")))
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker / "queue"),
        "data_folder_out": str(_broker / "queue"),
        "control_folder": str(_broker / "control"),
        "processed_folder": str(_broker / "processed"),
        "store_processed": False,
    }
    for _folder in ("queue", "control", "processed"):
        (_broker / _folder).mkdir(parents=True, exist_ok=True)
# Checks nobody works on (task lost with the broker, worker killed) are sent again by beat.
CHECK_RESEND_AFTER_SECONDS = env.int("CHECK_RESEND_AFTER_SECONDS", default=300)
CHECK_SWEEP_SECONDS = env.int("CHECK_SWEEP_SECONDS", default=120)
# The reproducibility check's refit, whatever the policy: a model whose parameters ask for more
# trees than this (summed over its ensembles) is not refitted, and a refit still running after
# REFIT_MAX_SECONDS is stopped; either ends the check inconclusive, naming why.
REFIT_MAX_ESTIMATORS = env.int("REFIT_MAX_ESTIMATORS", default=5_000)
REFIT_MAX_SECONDS = env.float("REFIT_MAX_SECONDS", default=300.0)
# How often beat re-checks that every servable version's approval still holds (governance.integrity).
INTEGRITY_CHECK_INTERVAL_SECONDS = env.int("INTEGRITY_CHECK_INTERVAL_SECONDS", default=300)
CELERY_BEAT_SCHEDULE = {
    "seal-predictions": {"task": "serving.tasks.seal_predictions_task", "schedule": SEAL_INTERVAL_SECONDS},
    "integrity-check": {"task": "governance.tasks.integrity_check_task", "schedule": INTEGRITY_CHECK_INTERVAL_SECONDS},
    "resend-stranded-checks": {"task": "governance.tasks.resend_stranded_checks_task", "schedule": CHECK_SWEEP_SECONDS},
    "erase-expired-personal-data": {"task": "serving.tasks.erase_expired_personal_data_task", "schedule": 86400},
    "add-log-partitions": {"task": "serving.tasks.add_log_partitions_task", "schedule": 86400},
    "resend-stranded-batches": {"task": "serving.tasks.resend_stranded_batches_task", "schedule": CHECK_SWEEP_SECONDS},
    "write-checkpoint": {"task": "compliance.tasks.write_checkpoint_task", "schedule": CHECKPOINT_INTERVAL_SECONDS},
    "resend-stranded-report-jobs": {
        "task": "compliance.tasks.resend_stranded_report_jobs_task",
        "schedule": CHECK_SWEEP_SECONDS,
    },
}

# --- Monitoring (docs/design.md, "Monitoring") -----------------------------------------------
# Window length: "1d", "6h", "30m" or seconds. Windows align to multiples of it from the epoch (UTC).
MONITOR_WINDOW = env.str("MONITOR_WINDOW", default="1d")
MONITOR_INTERVAL_SECONDS = env.int("MONITOR_INTERVAL_SECONDS", default=3600)
# The rows a window needs (to close early and to alert on drift) and the longest window are policy
# values (governance.models.Policy.monitor_min_rows, monitor_max_window_days), shown on the page.
# KS reads the values themselves: at most this many rows of a window (every k-th record beyond).
MONITOR_KS_MAX_ROWS = env.int("MONITOR_KS_MAX_ROWS", default=100_000)
# Folding a seal into the hourly counts parses every row: a seal of at least twice
# MONITOR_FOLD_ROWS_PER_PROCESS rows is counted by up to MONITOR_FOLD_PROCESSES forked processes
# (PostgreSQL only). Default: the machine's cores.
MONITOR_FOLD_PROCESSES = env.int("MONITOR_FOLD_PROCESSES", default=os.cpu_count() or 1)
MONITOR_FOLD_ROWS_PER_PROCESS = env.int("MONITOR_FOLD_ROWS_PER_PROCESS", default=100_000)
# A version put in shadow is also compared on the production traffic of this long before it started.
SHADOW_BACKFILL_SECONDS = env.int("SHADOW_BACKFILL_SECONDS", default=7 * 86400)
CELERY_BEAT_SCHEDULE["kpi-check"] = {"task": "monitoring.tasks.kpi_check_task", "schedule": MONITOR_INTERVAL_SECONDS}
CELERY_BEAT_SCHEDULE["overlay-expiry"] = {"task": "governance.tasks.overlay_expiry_task", "schedule": 3600}
CELERY_BEAT_SCHEDULE["monitor"] = {"task": "monitoring.tasks.monitor_task", "schedule": MONITOR_INTERVAL_SECONDS}

# --- Incidents (EU AI Act art. 73; compliance.incidents) -----------------------------------
# Risk officers are mailed once when an incident's report is due within this many hours.
INCIDENT_REMIND_BEFORE_HOURS = env.int("INCIDENT_REMIND_BEFORE_HOURS", default=48)
# The provider named in the serious-incident report (the Commission's template, "provider").
PROVIDER_NAME = env.str("PROVIDER_NAME", default="Example Bank plc (model governance demo)")
# --- Human oversight (docs/oversight.md): the routing sweep's period ----------------------
OVERSIGHT_ROUTE_SECONDS = env.int("OVERSIGHT_ROUTE_SECONDS", default=60)
CELERY_BEAT_SCHEDULE["route-decisions"] = {
    "task": "serving.tasks.route_decisions_task",
    "schedule": OVERSIGHT_ROUTE_SECONDS,
}
CELERY_BEAT_SCHEDULE["incident-reminders"] = {"task": "compliance.tasks.remind_incidents_task", "schedule": 3600}

# --- Integrations ---------------------------------------------------------------
# Webhooks: private, loopback and link-local targets are refused unless this is set (SSRF).
WEBHOOK_ALLOW_PRIVATE = env.bool("WEBHOOK_ALLOW_PRIVATE", default=False)
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=15.0)
# Retries: base x 2^(n-1) seconds (+-10% jitter, at most 6 h apart) until this long after the event.
WEBHOOK_RETRY_BASE_SECONDS = env.float("WEBHOOK_RETRY_BASE_SECONDS", default=30.0)
WEBHOOK_RETRY_WINDOW_SECONDS = env.int("WEBHOOK_RETRY_WINDOW_SECONDS", default=24 * 3600)
WEBHOOK_SWEEP_SECONDS = env.int("WEBHOOK_SWEEP_SECONDS", default=60)
CELERY_BEAT_SCHEDULE["webhook-sweep"] = {
    "task": "integrations.tasks.webhook_sweep_task",
    "schedule": WEBHOOK_SWEEP_SECONDS,
}
# /metrics answers only `Authorization: Bearer <METRICS_TOKEN>` (Prometheus's scrape job sends it:
# `authorization: {credentials_file: ...}`) or a risk officer's or auditor's API key; never
# anonymous requests. `make serve` refuses to start without it.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# --- REST API ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "serving.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.api_errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
# The schema and Swagger UI (/api/schema/, /api/docs/) need a session or an API key; by default
# only in production, where the schema would tell anyone every route and field.
API_DOCS_REQUIRE_LOGIN = env.bool("API_DOCS_REQUIRE_LOGIN", default=not DEBUG)
SPECTACULAR_SETTINGS = {
    "TITLE": "Model governance API",
    "DESCRIPTION": "Registry, submission and serving API of the governance-first model lifecycle manager.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the installed sidecar package, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Its schema-completeness warnings are not deployment settings: kept out of `check --deploy`
    # (which must be clean); `manage.py spectacular --validate` still lists them.
    "ENABLE_DJANGO_DEPLOY_CHECK": False,
}

# --- E-mail -----------------------------------------------------------------------------
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="modelgov@localhost")

# --- Security (manage.py check --deploy is clean with DEBUG=False) ------------------------
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
# Only behind a proxy that sets these headers itself (and drops the client's): otherwise anyone
# could claim HTTPS with X-Forwarded-Proto, or any address with X-Forwarded-For (login lockouts).
TRUST_PROXY_HEADERS = env.bool("TRUST_PROXY_HEADERS", default=False)
if TRUST_PROXY_HEADERS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Login throttling (django-axes): LOGIN_FAILURE_LIMIT wrong passwords for one username from one
# address lock that pair out for LOGIN_COOLOFF_MINUTES (429 and the lockout page, audited as
# core.login.locked_out). Attempts during a lockout neither extend it nor are stored; a successful
# login clears the count. The database handler shares the count across every worker.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# Beyond the pair: failures from one address (any usernames) and for one username (from any
# addresses) within the cool-off lock that address, or that username, out (core.logins).
LOGIN_FAILURE_LIMIT_PER_ADDRESS = env.int("LOGIN_FAILURE_LIMIT_PER_ADDRESS", default=30)
LOGIN_FAILURE_LIMIT_PER_USERNAME = env.int("LOGIN_FAILURE_LIMIT_PER_USERNAME", default=20)
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_CLIENT_IP_CALLABLE = "core.logins.client_ip"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Successful logins are not kept (personal data nobody reads); lockouts are in the audit trail.
AXES_DISABLE_ACCESS_LOG = True

# Content-Security-Policy (django-csp): nothing inline, nothing from elsewhere. Page scripts and
# styles are static files; the API docs use drf-spectacular's split Swagger view for the same reason.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "img-src": [SELF, "data:"],
        "style-src": [SELF],
        "script-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
