# One command to set up and run the system, one to set up and run the tests.
#   make run    installs what is needed and starts everything on embedded defaults
#   make test   installs what is needed (Python packages, Node modules, Chromium) and tests

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test test-backend test-frontend lint bench clean frontend-build

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/uv pip install -q --python $(BIN)/python -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# Ctrl-C: the launcher stops everything and exits 0, so make reports no error (a second Ctrl-C
# stops at once); make itself then exits as interrupted, like any command on Ctrl-C.
run: setup
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory frontend-build; \
	 else echo "npm not found: starting without the web app (the API still serves)"; fi
	$(BIN)/python -m backend.local

# The web app's lint and unit tests first, then every Python test (pytest's summary last).
test: setup lint frontend-build chromium test-frontend
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check backend tests

bench: setup
	$(BIN)/uv pip install -q --python $(BIN)/python -e '.[test,bench]'
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .data

# --- web app (frontend/): Angular, built once and served by the kernel -------------------
FRONTEND       := frontend
FRONTEND_STAMP := $(FRONTEND)/node_modules/.package-lock.json
FRONTEND_INDEX := $(FRONTEND)/dist/frontend/browser/index.html
FRONTEND_SRC   := $(shell find $(FRONTEND)/src $(FRONTEND)/public -type f 2>/dev/null) \
                  $(addprefix $(FRONTEND)/,angular.json tsconfig.json tsconfig.app.json package-lock.json \
                    scripts/precompress.mjs)
NG_ENV         := NG_CLI_ANALYTICS=false

.PHONY: frontend-setup chromium test-web lighthouse

# npm ci only when package-lock.json changed since the last install.
$(FRONTEND_STAMP): $(FRONTEND)/package-lock.json
	cd $(FRONTEND) && npm ci --no-audit --no-fund --loglevel=error
	touch $(FRONTEND_STAMP)

frontend-setup: $(FRONTEND_STAMP)

# Rebuild only when a source, config or dependency changed. `npm run build` is `ng build`,
# then .br and .gz files beside the bundles (the kernel sends those, compressing nothing).
$(FRONTEND_INDEX): $(FRONTEND_SRC) $(FRONTEND_STAMP)
	cd $(FRONTEND) && $(NG_ENV) npm run build --silent
	touch $(FRONTEND_INDEX)

frontend-build: $(FRONTEND_INDEX)

# Lint and unit tests (Vitest in jsdom; runs once, no browser).
test-frontend: frontend-setup
	cd $(FRONTEND) && $(NG_ENV) npm run lint --silent && $(NG_ENV) npm test --silent

# Debian's Chromium for the browser tests (Playwright never downloads its own).
chromium:
	ops/scripts/ensure-chromium.sh

# The web app end to end, in Chromium, against the real system.
test-web: setup frontend-build chromium
	$(BIN)/python -m pytest tests/e2e/test_web.py

# Lighthouse 12 (fetched by npx on first use) over every page, phone and desktop, against a
# live system with 300 jobs: prints scores, LCP and TBT per page (docs/web-app.md).
lighthouse: setup frontend-build chromium
	$(BIN)/python benchmarks/lighthouse.py
