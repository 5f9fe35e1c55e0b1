# Two commands set everything up on a fresh machine with Python 3.11+:
#   make run    the product on embedded defaults (SQLite, local provider, filesystem broker)
#   make test   the whole test suite (needs PostgreSQL on 127.0.0.1:5432; .ci/run starts it)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` (each has its own test databases, Pub/Sub emulator and ports;
# see README, "Tests"). Most of the suite waits on PostgreSQL, subprocesses and the emulator, so
# more workers than cores pays. TEST_WORKERS=0 runs the suite serially in one process. Not
# --dist loadgroup/loadscope: they key work by test id and silently drop the 60 schemathesis cases
# of tests/hardening/test_fuzz_api.py that share one id.
# --maxschedchunk 4: a worker is handed at most 4 tests at a time, so the known-long tests that
# tests/scheduling.py puts first (4 apart) start at once on different workers instead of queueing
# behind each other on one.
TEST_WORKERS ?= 4
# Extra options of `make run`'s supervisor (controlplane/supervisor.py), e.g. RUN_ARGS="-c worker=2"
# for two Celery worker processes (HONCHO_ARGS, its old name, still works).
HONCHO_ARGS ?=
RUN_ARGS ?= $(HONCHO_ARGS)
# Local state of `make run` (SQLite file, broker folders, admin password); the settings read the same variable.
VAR_DIR ?= var

.PHONY: run test lint bench soak screenshots reset clean-venv

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
		{ echo "Python 3.11 or newer is needed (found: $$($(PYTHON) --version)); set PYTHON=python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime-installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime-installed

# The demo fills every screen within a minute or so: metrics are polled, SLOs evaluated, pools sized
# and dead letters mirrored more often than the production defaults, and the scaling cooldowns fit
# the demo's 20-minute day. Set any of them to override.
run: export TELEMETRY_POLL_INTERVAL_SECONDS ?= 10
run: export TELEMETRY_POLL_CURRENT_MINUTE ?= 1
run: export TELEMETRY_ALERTS_INTERVAL_SECONDS ?= 10
run: export SCALING_CONTROLLER_INTERVAL_SECONDS ?= 15
run: export SCALING_COOLDOWN_UP_SECONDS ?= 30
run: export SCALING_COOLDOWN_DOWN_SECONDS ?= 120
run: export DEAD_LETTER_SYNC_INTERVAL_SECONDS ?= 10
run: export WORKER_REPORT_INTERVAL_SECONDS ?= 10
# DEBUG (below) is for reloading and the demo's defaults; people trying the product still meet its
# own 404 and 500 pages, not Django's technical ones (controlplane/error_views.py).
run: export PRODUCT_ERROR_PAGES_IN_DEBUG ?= 1
run: $(VENV)/.runtime-installed
	mkdir -p $(VAR_DIR)
	DEBUG=1 $(BIN)/python manage.py migrate --noinput
	DEBUG=1 $(BIN)/python manage.py seed_demo
	DEBUG=1 $(BIN)/python manage.py provision
	DEBUG=1 $(BIN)/python manage.py ensure_admin
	@echo "Serving on http://127.0.0.1:$(PORT) (API docs: /api/docs/, admin: /admin/); Ctrl-C stops everything."
	DEBUG=1 WEB_PORT=$(PORT) PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m controlplane.supervisor \
		--port $(PORT) --state $(VAR_DIR)/processes.json $(RUN_ARGS)

# Compiled bytecode is kept for the test run even where PYTHONDONTWRITEBYTECODE is set (as on the
# shared machines), in a folder of pytest's cache rather than __pycache__ beside the sources:
# without it every worker, and every Python process a test starts (fleets, manage.py, the bench
# smoke), compiled the project and its libraries from source again (measured: collecting the
# suite took 29-33 s of CPU per process, 12-13 s with the cache).
test: export PYTHONPYCACHEPREFIX ?= $(abspath .pytest_cache/pycache)
test: export PYTHONDONTWRITEBYTECODE =
test: $(VENV)/.dev-installed
	$(BIN)/pytest -n $(TEST_WORKERS) --dist load --maxschedchunk 4 $(PYTEST_ARGS)

# lint-imports checks the layer contracts in .importlinter (see docs/architecture.md, "Layers").
lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PYTHONPATH=. $(BIN)/lint-imports --no-logo

bench: $(VENV)/.dev-installed
	$(BIN)/python -m bench

# `make run` for SOAK_MINUTES in a fresh folder under VAR_DIR, watched from outside: unexpected
# exits, memory per process, table sizes (bench/soak.py; figures in bench/README.md).
SOAK_MINUTES ?= 30
soak: $(VENV)/.runtime-installed
	mkdir -p $(VAR_DIR)
	$(BIN)/python -m bench.soak --minutes $(SOAK_MINUTES) --var-dir $$(mktemp -d $(abspath $(VAR_DIR))/soak-XXXXXX)

# The README's overview screenshots (docs/images/, laptop 1440x900 and phone 390x844), taken with
# Chromium from `make run` on the demo data in a fresh folder under VAR_DIR (bench/screenshots.py).
SCREENSHOT_MINUTES ?= 4
screenshots: $(VENV)/.dev-installed
	mkdir -p $(VAR_DIR)
	$(BIN)/python -m bench.screenshots --minutes $(SCREENSHOT_MINUTES) --var-dir $$(mktemp -d $(abspath $(VAR_DIR))/screenshots-XXXXXX)

# Only what `make run` keeps: a VAR_DIR pointed elsewhere may hold other things.
reset:
	rm -rf $(VAR_DIR)/controlplane.sqlite3 $(VAR_DIR)/controlplane.sqlite3-wal $(VAR_DIR)/controlplane.sqlite3-shm \
		$(VAR_DIR)/celery $(VAR_DIR)/admin-password.txt $(VAR_DIR)/processes.json
	@echo "Reset $(VAR_DIR)/: the next make run starts from an empty database (DATABASE_URL databases are left alone)."

clean-venv:
	rm -rf $(VENV)
