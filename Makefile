# Every target creates .venv from the locked requirements/ files when it is missing or stale.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# Tools that load settings without serving anything (mypy's Django plugin) need some key.
TOOL_ENV := SECRET_KEY=$${SECRET_KEY:-not-a-secret-tools-only}

.PHONY: run test test-suite faults cluster lint format bench bench-cluster clean requirements browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-base: requirements/base.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements/base.txt
	touch $@

$(VENV)/.installed-dev: requirements/dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements/dev.txt
	touch $@ $(VENV)/.installed-base

.env:
	cp .env.example .env

## run: start the whole product on the embedded default (SQLite + embedded Redis);
## `make run PORT=8001 HOST=0.0.0.0` serves it elsewhere. The demo data is loaded by `stack up`
## once the port, the database and Redis are known good (a refused start writes nothing).
# Set on make's command line only: a HOST or PORT in the environment (tcsh exports HOST) is
# not meant for the web server.
HOST = 127.0.0.1
PORT = 8000
run: $(VENV)/.installed-base .env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py stack up --seed-demo --host $(HOST) --port $(PORT)

## test: the whole test suite: unit, integration and security tests, then the fault suite and
## the cluster suite
test: test-suite faults cluster

## test-suite: every test but the fault suite, on DATABASE_URL and REDIS_URL (default: embedded)
test-suite: $(VENV)/.installed-dev browser
	$(BIN)/python -m pytest -m "not faults and not cluster" $(PYTEST_ARGS)

## faults: the fault suite alone (tests/faults/): real processes, with Redis and PostgreSQL
## servers of its own that it restarts; figures in benchmarks/results/faults.json
faults: $(VENV)/.installed-dev browser
	env -u REDIS_URL -u CELERY_BROKER_URL -u CHANNEL_LAYER_URL TEST_EMBEDDED_REDIS=1 \
		$(BIN)/python -m tests.faults.postgres -- \
		$(BIN)/python -m pytest -m faults tests/faults $(PYTEST_ARGS)

## cluster: the cluster suite alone (tests/cluster/): hosts made as Linux network namespaces
## (root; skipped elsewhere, saying why), a data host with PostgreSQL and Redis of their own;
## the figures it measures go to benchmarks/results/cluster.json
cluster: $(VENV)/.installed-dev
	env -u REDIS_URL -u CELERY_BROKER_URL -u CHANNEL_LAYER_URL -u DATABASE_URL \
		CLUSTER_FIGURES=$(CURDIR)/benchmarks/results/cluster.json \
		$(BIN)/python -m tests.cluster.run -- \
		$(BIN)/python -m pytest -m cluster tests/cluster $(PYTEST_ARGS)

## browser: Debian's Chromium for the dashboard's browser test (never a downloaded browser)
browser:
	@test -x "$${CHROMIUM_PATH:-/usr/bin/chromium}" || { \
		echo "Installing Debian's chromium for tests/scheduler/dashboard/test_browser.py"; \
		(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
		echo "Could not install chromium (not root?): the browser test will say what to do"; }

## lint: ruff (lint + format), the import contracts (lint-imports) and mypy
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(TOOL_ENV) $(BIN)/mypy .

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## bench: every benchmark in benchmarks/, each printing its figures and writing JSON (the
## cluster's own, which needs the cluster suite's hosts and root, with bench-cluster)
bench: $(VENV)/.installed-dev
	@set -e; for script in benchmarks/[!_]*.py; do \
		[ "$$script" = benchmarks/cluster_throughput.py ] && continue; \
		echo "== $$script"; $(BIN)/python $$script; \
	done

## bench-cluster: throughput with one worker host, then two (benchmarks/cluster_throughput.py)
bench-cluster: $(VENV)/.installed-dev
	env -u REDIS_URL -u CELERY_BROKER_URL -u CHANNEL_LAYER_URL -u DATABASE_URL \
		$(BIN)/python -m tests.cluster.run -- $(BIN)/python benchmarks/cluster_throughput.py

## requirements: regenerate the locked files from pyproject.toml
requirements: $(VENV)/.installed-dev
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --quiet \
		--custom-compile-command "make requirements" -o requirements/base.txt
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra flower --python-version 3.11 --quiet \
		--custom-compile-command "make requirements" -o requirements/dev.txt

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache benchmarks/results
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
