# One entry point for set-up, checks and benchmarks; .ci/run uses the same targets.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-sqlite test-postgres lint bench setup setup-test system viewer light-viewer oidc-test-provider demo screenshots clean

# Installs (only what is missing), migrates, loads the demo, starts the platform.
run: setup viewer light-viewer
	$(BIN)/vetpacs migrate
	$(BIN)/vetpacs demo
	$(BIN)/vetpacs serve --host $(HOST) --port $(PORT) --with-worker

system:
	@scripts/system-packages.sh

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip==26.3"

setup: system $(BIN)/python
	@scripts/pip-install.sh $(BIN) .

setup-test: system $(BIN)/python
	@scripts/pip-install.sh $(BIN) ".[test]"

viewer:
	@scripts/fetch-ohif.sh

# The light viewer for phones (Cornerstone3D, Vite) and the pages' htmx and ECharts, into build/light-viewer.
light-viewer:
	@scripts/build-light-viewer.sh

# The OpenID Connect provider (npm oidc-provider, pinned) the single sign-on tests start, into build/.
oidc-test-provider:
	@scripts/install-oidc-test-provider.sh

# Every test, on SQLite and then on PostgreSQL (127.0.0.1:5432).
test: setup-test viewer light-viewer oidc-test-provider lint test-sqlite test-postgres

test-sqlite:
	VETPACS_TEST_DATABASE=sqlite $(BIN)/pytest $(PYTEST_ARGS)

test-postgres:
	VETPACS_TEST_DATABASE=postgresql $(BIN)/pytest $(PYTEST_ARGS)

lint: setup-test
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/vetpacs makemigrations --check --dry-run

bench: setup-test viewer light-viewer
	$(BIN)/python bench/run_all.py

screenshots: setup-test viewer light-viewer
	$(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(VENV) var build
