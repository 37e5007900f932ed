# Two commands set everything up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# The services suite gets a fresh PostgreSQL database (pytest-django creates test_<name>
# and drops it afterwards) and its own Redis database number.
SERVICES_DB ?= modelgov_ci_$(shell date +%s)_$(shell echo $$$$)
SERVICES_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/$(SERVICES_DB)
SERVICES_BROKER_URL ?= redis://127.0.0.1:6379/7

.DEFAULT_GOAL := help
WEB_WORKERS ?= 2
WEB_THREADS ?= 1
# Each suite runs on this many pytest-xdist processes (one per core here); every process has its own
# test database and, on the services suite, its own Redis database and Celery worker (tests/conftest.py).
TEST_PROCESSES ?= 2
# --durations: the slowest tests are printed, where to look when CI grows
PYTEST_XDIST := -n $(TEST_PROCESSES) --dist worksteal --durations=15
.PHONY: help demo serve serve-preflight nginx bench bench-ledger bench-audit bench-decisions bench-monitoring bench-batch bench-personal bench-all bench-smoke wrk typecheck test test-sqlite test-services lint check browser pdftools venv clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements/base.txt requirements/dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed ($(PYTHON) not found); set PYTHON=..."; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt
	touch $@

venv: $(VENV)/.installed ## Create .venv and install the pinned requirements

# make demo: the demo is loaded with tasks in-process (seed_demo waits for nothing), then the site
# runs with a real Celery worker on kombu's filesystem transport (messages are files under
# var/broker: no broker server), so checks, batch chunks and report jobs are seen queued and running.
DEMO_DATABASE_URL ?= sqlite:///$(CURDIR)/db.sqlite3
DEMO_BROKER_DIR ?= $(CURDIR)/var/broker
DEMO_ENV := env -u CELERY_BROKER_URL DATABASE_URL=$(DEMO_DATABASE_URL)
DEMO_RUN_ENV := $(DEMO_ENV) CELERY_BROKER_URL=filesystem:// CELERY_FILESYSTEM_BROKER_DIR=$(DEMO_BROKER_DIR) \
  DEMO_LOGINS=True BATCH_CHUNK_ROWS=1000
demo: venv ## Run the application with the demo loaded (SQLite, a real Celery worker on a filesystem broker)
	@echo "Preparing the demo database..."
	@set -o pipefail; $(DEMO_ENV) $(PY) manage.py migrate --noinput -v0 2>&1 | { grep -v '^AXES' || true; }
	@mkdir -p var && rm -rf $(DEMO_BROKER_DIR)
	@# (what the in-process tasks print, mails included, goes to var/demo-seed.log)
	@$(DEMO_ENV) $(PY) manage.py seed_demo > var/demo-seed.log 2>&1 || { tail -40 var/demo-seed.log; exit 1; }
	@grep -h '^Loaded the demo\|^Demo models already loaded' var/demo-seed.log || true
	@echo
	@echo "  Open http://$(HOST):$(PORT)/  (API docs: http://$(HOST):$(PORT)/api/docs/)"
	@echo "  Demo logins (password for all: demo-password-2026; the login page lists them too):"
	@echo "    dana   data scientist      sam     data scientist"
	@echo "    rita   risk officer        omar    risk officer"
	@echo "    audrey auditor             valerie validator"
	@echo "    cora   case officer (the oversight queue: a queued and a contested decision)"
	@echo "    admin  superuser (Django admin)"
	@echo "  A Celery worker runs beside the site (its log: var/demo-worker.log). Ctrl-C stops both."
	@echo
	@trap 'kill 0' EXIT INT TERM; \
	$(DEMO_RUN_ENV) OMP_NUM_THREADS=1 $(VENV)/bin/celery -A config worker --pool=solo --loglevel=WARNING \
	  --without-gossip --without-mingle --without-heartbeat > var/demo-worker.log 2>&1 & \
	$(DEMO_RUN_ENV) $(PY) manage.py runserver $(HOST):$(PORT) 2>&1 | grep --line-buffered -v '^AXES' & \
	wait

# make serve is production: DEBUG=False whatever the environment says (every recipe below, and
# serve-preflight's, sees it), and nothing starts without the production secrets.
serve: export DEBUG = False
# gunicorn is reachable only through nginx (a unix socket), and nginx replaces X-Forwarded-For and
# -Proto: the application may trust them. Uploads spool to var/upload-tmp, emptied at each start.
serve: export TRUST_PROXY_HEADERS = True
serve: export FILE_UPLOAD_TEMP_DIR = $(CURDIR)/var/upload-tmp
# The API keys' rate and daily quota are counted in Redis, shared by every gunicorn worker
# (serving.throttling); set CACHE_URL to use another one.
serve: export CACHE_URL ?= rediscache://127.0.0.1:6379/2
# Every answered row is logged for good: a key gets at most this many prediction requests per UTC
# day unless the environment says otherwise (0: unlimited; docs/operations-limits.md).
serve: export API_KEY_DAILY_QUOTA ?= 100000
# Plain HTTP is for a local demo only: on a loopback HOST there is no redirect to HTTPS unless the
# environment says SECURE_SSL_REDIRECT=True (check --deploy then warns, W008); elsewhere the
# settings' default (True) holds and TLS ends in front of nginx.
serve: export SECURE_SSL_REDIRECT ?= $(if $(filter 127.0.0.1 localhost,$(HOST)),False,True)
serve: venv serve-preflight nginx ## Production-style serving: nginx in front of gunicorn (WEB_WORKERS x WEB_THREADS), a Celery worker and beat, on the configured services
	@# With MIGRATION_DATABASE_URL (the owner; serve-preflight requires it on PostgreSQL), migrations run as the
	@# owner and the application's role (DATABASE_URL's user) is granted only what it may do: it owns nothing
	@# (compliance/db_roles.py). On SQLite there are no roles: migrations run as the application.
	if [ -n "$$MIGRATION_DATABASE_URL" ]; then \
	  DATABASE_URL="$$MIGRATION_DATABASE_URL" $(PY) manage.py migrate --noinput && \
	  DATABASE_URL="$$MIGRATION_DATABASE_URL" $(PY) manage.py grant_runtime_role \
	    "$$($(PY) -c 'import os, urllib.parse; print(urllib.parse.urlparse(os.environ["DATABASE_URL"]).username)')"; \
	else $(PY) manage.py migrate --noinput; fi
	$(PY) manage.py collectstatic --noinput -v0
	rm -rf var/upload-tmp var/nginx/client_body && mkdir -p var/upload-tmp var/run
	$(PY) scripts/nginx_conf.py --listen $(HOST):$(PORT) --upstream unix:$(CURDIR)/var/run/gunicorn.sock --prefix var/nginx
	@echo "Serving on http://$(HOST):$(PORT)/ (nginx, then gunicorn with $(WEB_WORKERS) workers); Ctrl-C stops everything."
	trap 'kill 0' EXIT INT TERM; \
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 $(VENV)/bin/celery -A config worker --loglevel=INFO --concurrency=1 & \
	$(VENV)/bin/celery -A config beat --loglevel=INFO --schedule var/celerybeat-schedule & \
	rm -rf var/prometheus && mkdir -p var/prometheus; \
	PROMETHEUS_MULTIPROC_DIR=$(CURDIR)/var/prometheus \
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 $(VENV)/bin/gunicorn config.wsgi:application \
	  --config python:config.gunicorn \
	  --bind unix:$(CURDIR)/var/run/gunicorn.sock --workers $(WEB_WORKERS) --threads $(WEB_THREADS) & \
	PATH="$$PATH:/usr/sbin" nginx -p $(CURDIR)/var/nginx -c $(CURDIR)/var/nginx/nginx.conf -e $(CURDIR)/var/nginx/error.log -g 'daemon off;' & \
	wait

serve-preflight: ## Refuse to serve without DEBUG=False, the production secrets and (on PostgreSQL) a separate MIGRATION_DATABASE_URL; then manage.py check --deploy
	@if [ "$$DEBUG" != False ]; then echo "serve-preflight: DEBUG must be False (make serve sets it)." >&2; exit 1; fi
	@missing=""; for name in SECRET_KEY LOG_MAC_KEY AUDIT_MAC_KEY CHECKPOINT_SIGNING_KEY CHECKPOINT_WITNESS_KEY METRICS_TOKEN; do \
	  [ -n "$${!name}" ] || missing="$$missing $$name"; done; \
	if [ -n "$$missing" ]; then \
	  echo "make serve refuses to start: set$$missing in the environment (production runs with DEBUG=False;" >&2; \
	  echo "  SECRET_KEY: python -c 'import secrets; print(secrets.token_urlsafe(50))'; METRICS_TOKEN: the bearer token" >&2; \
	  echo "  Prometheus sends to /metrics, made the same way; see docs/configuration.md)." >&2; \
	  exit 1; fi
	@# On PostgreSQL the application's role must own nothing: an owner can ALTER or DROP the tables'
	@# append-only and guard triggers. So migrations run as another role (MIGRATION_DATABASE_URL).
	@case "$$DATABASE_URL" in postgres*://*|pgsql://*|psql://*|postgis://*) \
	  user_of() { printf '%s' "$$1" | sed -E 's#^[a-z]+://([^:@/]*)(:[^@/]*)?@.*#\1#; t; s#.*##'; }; \
	  runtime="$$(user_of "$$DATABASE_URL")"; owner="$$(user_of "$${MIGRATION_DATABASE_URL:-}")"; \
	  if [ -z "$$runtime" ] || [ -z "$$owner" ] || [ "$$owner" = "$$runtime" ]; then \
	    echo "make serve refuses to start: on PostgreSQL set MIGRATION_DATABASE_URL to the role that owns the tables," >&2; \
	    echo "  a role other than DATABASE_URL's ($${runtime:-none: DATABASE_URL names no role})." >&2; \
	    echo "  Why: the role that owns the tables can disable or drop the triggers that keep the evidence" >&2; \
	    echo "  append-only, so the application must run as a role that owns nothing." >&2; \
	    echo "  How: createuser --pwprompt modelgov_app; then DATABASE_URL=postgres://modelgov_app:...@host/db and" >&2; \
	    echo "  MIGRATION_DATABASE_URL=postgres://<owner>:...@host/db: make serve migrates as the owner and grants" >&2; \
	    echo "  the application's role only what it may do (manage.py grant_runtime_role; see docs/configuration.md)." >&2; \
	    exit 1; fi;; \
	esac
	@test -z "$$FILE_UPLOAD_TEMP_DIR" || mkdir -p "$$FILE_UPLOAD_TEMP_DIR"  # (check --deploy wants it to exist)
	$(PY) manage.py check --deploy

bench/.mlflow-venv/.installed: bench/requirements-mlflow.txt
	test -x bench/.mlflow-venv/bin/python || $(PYTHON) -m venv bench/.mlflow-venv
	bench/.mlflow-venv/bin/pip install --quiet -r bench/requirements-mlflow.txt
	touch $@

bench/.mlserver-venv/.installed: bench/requirements-mlserver.txt
	test -x bench/.mlserver-venv/bin/python || $(PYTHON) -m venv bench/.mlserver-venv
	bench/.mlserver-venv/bin/pip install --quiet -r bench/requirements-mlserver.txt
	touch $@

bench: venv bench/.mlflow-venv/.installed bench/.mlserver-venv/.installed ## Serving benchmark against mlflow models serve and Seldon MLServer (needs PostgreSQL; prints the table)
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(PY) bench/serving/run.py

bench-batch: venv bench/.mlflow-venv/.installed ## Batch benchmark on PostgreSQL + Redis: a 1,000,000-row CSV with 1 and 2 workers, against the model alone and mlflow models predict
	$(PY) bench/batch/run.py

bench-personal: venv ## Personal data's cost on PostgreSQL: serving with and without two personal fields (wrk), erasing a subject with 10,000 rows
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(PY) bench/personal/run.py

bench-audit: venv ## Auditor benchmark on PostgreSQL: over 1,000,000 sealed predictions, exports (rows/s, memory), a version report, the control map and verify_audit (targets, pass/fail)
	$(PY) bench/audit/run.py

bench-ledger: venv ## The ledger's proof on PostgreSQL: verify_evidence's time per proven row as the rows grow (flat: linear cost)
	$(PY) bench/ledger/run.py

bench-decisions: venv ## Decisions benchmark on PostgreSQL: explanation per model kind, business-key lookup over 1,000,000 records, inclusion proof and receipt on a 100,000-record seal (prints targets, pass/fail)
	$(PY) bench/decisions/run.py

bench/.evidently-venv/.installed: bench/requirements-evidently.txt
	test -x bench/.evidently-venv/bin/python || $(PYTHON) -m venv bench/.evidently-venv
	bench/.evidently-venv/bin/pip install --quiet -r bench/requirements-evidently.txt
	touch $@

bench/.nannyml-venv/.installed: bench/requirements-nannyml.txt
	test -x bench/.nannyml-venv/bin/python || $(PYTHON) -m venv bench/.nannyml-venv
	bench/.nannyml-venv/bin/pip install --quiet -r bench/requirements-nannyml.txt
	touch $@

bench-monitoring: venv bench/.evidently-venv/.installed bench/.nannyml-venv/.installed ## Drift monitoring on PostgreSQL: a window over 1,000,000 logged rows, against Evidently and NannyML (prints the table)
	$(PY) bench/monitoring/run.py

bench-all: venv wrk bench/.mlflow-venv/.installed bench/.mlserver-venv/.installed bench/.evidently-venv/.installed bench/.nannyml-venv/.installed ## Every benchmark at full size in one go (PostgreSQL + Redis), then one summary table: figure, target, peer, pass/fail
	$(PY) bench/all.py

bench-smoke: venv wrk ## Every benchmark at its smoke size (a few thousand rows, peers skipped): fails only when a benchmark breaks (make test runs it)
	$(PY) bench/all.py --smoke

wrk: ## Install Debian's wrk if missing (the serving benchmarks load with it)
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }

browser: ## Install Debian's Chromium for the browser tests if missing (never downloads a browser build)
	@test -x /usr/bin/chromium || { \
	  echo "Installing Debian's chromium package..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

nginx: ## Install Debian's nginx package if missing (make serve runs it as its own child process, never the system service)
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { \
	  echo "Installing Debian's nginx package..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; }

pdftools: ## Install Debian's poppler-utils (pdftotext, pdftoppm) if missing: the report tests read PDFs back with them
	@command -v pdftotext >/dev/null && command -v pdftoppm >/dev/null || { \
	  echo "Installing Debian's poppler-utils package..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq poppler-utils >/dev/null; }

lint: venv ## ruff lint and format check; import-linter: the layers, interfaces on top of every domain module, and the domain modules' contracts (pyproject.toml); no module over 500 lines
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	env -u DATABASE_URL -u CELERY_BROKER_URL $(VENV)/bin/lint-imports
	$(PY) scripts/check_module_size.py

typecheck: venv ## mypy with django-stubs and djangorestframework-stubs
	env -u DATABASE_URL -u CELERY_BROKER_URL $(VENV)/bin/mypy

check: venv ## Django system checks and missing migrations
	env -u DATABASE_URL -u CELERY_BROKER_URL $(PY) manage.py check
	env -u DATABASE_URL -u CELERY_BROKER_URL $(PY) manage.py makemigrations --check --dry-run

test-sqlite: venv browser pdftools ## The suite on the embedded defaults: SQLite, Celery in-process, real Chromium
	env -u DATABASE_URL -u CELERY_BROKER_URL $(PY) -m pytest tests --ignore=tests/services $(PYTEST_XDIST)

test-services: venv pdftools nginx ## The suite on PostgreSQL + Redis with a real Celery worker
	DATABASE_URL=$(SERVICES_DATABASE_URL) CELERY_BROKER_URL=$(SERVICES_BROKER_URL) \
	  $(PY) -m pytest tests --ignore=tests/e2e $(PYTEST_XDIST)

test: lint typecheck check test-sqlite test-services bench-smoke ## Everything: lint, checks, both suites, then every benchmark at its smoke size

clean: ## Remove the virtualenv, the SQLite database and stored files
	rm -rf $(VENV) db.sqlite3 var
