# Two commands: `make demo` runs the whole machine-to-machine flow locally, `make test` runs the suite.
# Both create .venv and install what they need; Python 3.11+ is the only prerequisite
# (Node.js and npm as well for the interop tests, which are skipped without them).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
INTEROP := tests/interop

.PHONY: install lock test check demo bench interop-deps clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (found: $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The exact versions (with hashes) the tests pass on, then the project itself without resolving again.
$(STAMP): $(BIN)/python pyproject.toml requirements-dev.lock
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

# Re-resolve both lock files from pyproject.toml (after changing a dependency; commit the result).
# requirements.lock: runtime + postgres (the Docker image); requirements-dev.lock: runtime + dev.
# Universal: one file serves every Python 3.11+ and platform (the image runs another Python than yours).
UV_COMPILE = $(BIN)/uv pip compile pyproject.toml --quiet --universal --python-version 3.11 \
	--generate-hashes --no-header --no-emit-index-url
lock: $(BIN)/python
	$(BIN)/python -m pip install --quiet "uv>=0.9,<1"
	$(UV_COMPILE) --extra postgres --output-file requirements.lock
	$(UV_COMPILE) --extra dev --output-file requirements-dev.lock

# The quick start, narrated: local issuer + API (gunicorn, SQLite) + one worker run; see demo/.
demo: $(STAMP)
	$(BIN)/python -m demo $(DEMO_ARGS)

# oidc-provider (the engine inside Logto) for the interop tests; skipped quietly without npm.
interop-deps:
	@if [ -f $(INTEROP)/package-lock.json ] && command -v npm >/dev/null 2>&1; then \
		if [ ! -f $(INTEROP)/node_modules/.installed ] || [ $(INTEROP)/package-lock.json -nt $(INTEROP)/node_modules/.installed ]; then \
			echo "npm ci ($(INTEROP))"; \
			(cd $(INTEROP) && npm ci --no-audit --no-fund --loglevel=error) && touch $(INTEROP)/node_modules/.installed; \
		fi; \
	fi

# The benchmarks of docs/benchmarks.md (a few minutes each; run them on an idle machine). A missed
# target (exit status 1) does not stop the others.
bench: $(STAMP)
	-$(BIN)/python bench/auth_overhead.py
	-$(BIN)/python bench/worker_throughput.py
	@if [ -n "$$TEST_DATABASE_URL" ]; then $(BIN)/python bench/orders_pages.py; \
	else echo "bench/orders_pages.py skipped: set TEST_DATABASE_URL to a PostgreSQL URL"; fi

# The suite under coverage (branch coverage, programs the tests start included; [tool.coverage.*] in
# pyproject.toml): the figure is printed at the end, and a whole run below the floor fails. A run
# narrowed with PYTEST_ARGS prints its figure without holding it to the floor.
test: $(STAMP) interop-deps
	@rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest $(PYTEST_ARGS)
	@$(BIN)/coverage combine --quiet
	$(BIN)/coverage report $(if $(PYTEST_ARGS),--fail-under=0)

# Lint, format and types, in seconds; CI runs it before the tests (.ci/run).
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Only what the project makes in this directory: the demo's work directory (when it carries the
# demo's marker), the API's default SQLite folder, the worker's default reports, the local
# issuer's default state (its signing key), pip's egg-info, and the caches of the checks and coverage.
clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache htmlcov .coverage .coverage.* $(INTEROP)/node_modules
	if [ -f .demo/.demo-workdir ]; then rm -rf .demo; fi
	rm -rf instance reports .local-issuer ./*.egg-info
