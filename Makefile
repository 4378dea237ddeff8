# make run   -- set everything up, migrate, serve dashboard + /api/v1 on $(PORT)
# make test  -- set everything up, ruff + mypy, then the whole suite (PYTEST_ARGS=... to add args)
SHELL := /bin/bash

PORT ?= 3000
PYTHON ?= python3
PYTEST_ARGS ?=
BUN_VERSION := 1.4.4
SWAGGER_UI_VERSION := 5.35.0
# The coding agents the end-to-end tests run (tests/e2e/test_agents.py): the versions
# whose requests tests/fixtures/agents/ captured.
CLAUDE_CODE_VERSION := 2.1.332
CODEX_VERSION := 0.171.0

VENV := .venv
PY := $(VENV)/bin/python
DEPS := $(VENV)/.installed
DEV_DEPS := $(VENV)/.installed-dev
TOOLS := .tools
BUN := $(TOOLS)/node_modules/.bin/bun
BUN_STAMP := $(TOOLS)/.bun-$(BUN_VERSION)
SWAGGER_UI := $(TOOLS)/swagger-ui
SWAGGER_UI_STAMP := $(SWAGGER_UI)/.swagger-ui-dist-$(SWAGGER_UI_VERSION)
AGENTS := $(TOOLS)/agents
AGENTS_STAMP := $(AGENTS)/.claude-code-$(CLAUDE_CODE_VERSION)-codex-$(CODEX_VERSION)

export PORT
export PATH := $(CURDIR)/$(TOOLS)/node_modules/.bin:$(PATH)
export REFLEX_USE_SYSTEM_BUN := 1
export REFLEX_TELEMETRY_ENABLED := false
export REFLEX_CHECK_LATEST_VERSION := false

.PHONY: run serve test migrate bench deps bun swagger-ui agents chromium clean-web

# Python virtualenv with the pinned requirements; redone only when they change.
# The stamp is a copy of the requirements.txt it installed and is compared by
# content: `reflex init` (run by reflex on a fresh .web) touches requirements.txt.
$(DEPS): requirements.txt
	@if cmp -s requirements.txt $@; then touch $@; else \
		set -e; \
		test -x $(PY) || { echo "creating $(VENV)"; $(PYTHON) -m venv $(VENV); }; \
		echo "installing requirements.txt into $(VENV)"; \
		$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt; \
		cp requirements.txt $@; \
	fi

# The test-only packages (requirements-dev.txt), on top of the runtime ones.
$(DEV_DEPS): requirements-dev.txt $(DEPS)
	@if cmp -s requirements-dev.txt $@; then touch $@; else \
		set -e; \
		echo "installing requirements-dev.txt into $(VENV)"; \
		$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt; \
		cp requirements-dev.txt $@; \
	fi

deps: $(DEPS)

# Bun (the JS runtime/package manager Reflex builds the frontend with), from the
# npm registry's `bun` package, installed into .tools/ (nothing system-wide).
# Its postinstall puts the native binary in place; do that by hand if npm skipped it.
$(BUN_STAMP):
	npm install --prefix $(TOOLS) --no-save --no-audit --no-fund --loglevel=error bun@$(BUN_VERSION)
	$(BUN) --version >/dev/null 2>&1 || (cd $(TOOLS)/node_modules/bun && node install.js)
	test "$$($(BUN) --version)" = "$(BUN_VERSION)"
	touch $@

bun: $(BUN_STAMP)

# Swagger UI's files for the API docs page (/api/v1/docs serves them itself: no CDN), from
# the npm registry's `swagger-ui-dist`, in a prefix of its own (npm would prune bun from
# .tools/node_modules, which no package.json lists); no install scripts (its analytics dependency).
$(SWAGGER_UI_STAMP):
	npm install --prefix $(SWAGGER_UI) --no-save --no-audit --no-fund --ignore-scripts --loglevel=error swagger-ui-dist@$(SWAGGER_UI_VERSION)
	test -f $(SWAGGER_UI)/node_modules/swagger-ui-dist/swagger-ui-bundle.js
	touch $@

swagger-ui: $(SWAGGER_UI_STAMP)

# Claude Code and the Codex CLI for the end-to-end agent tests, from the npm registry, in a
# prefix of their own (one npm command installs both, so neither prunes the other, nor
# they bun); the tests run them by path ($(AGENTS)/node_modules/.bin/{claude,codex}).
# Each package's native binary comes as an optional dependency; Claude Code's postinstall
# copies it into place, so install scripts stay on. The version checks run the binaries
# (with a HOME of their own: they may write there).
$(AGENTS_STAMP):
	rm -f $(AGENTS)/.claude-code-*
	npm install --prefix $(AGENTS) --no-save --no-audit --no-fund --loglevel=error \
		@anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION) @openai/codex@$(CODEX_VERSION)
	mkdir -p $(AGENTS)/home
	test "$$(HOME=$(CURDIR)/$(AGENTS)/home $(AGENTS)/node_modules/.bin/claude --version)" = "$(CLAUDE_CODE_VERSION) (Claude Code)"
	test "$$(HOME=$(CURDIR)/$(AGENTS)/home $(AGENTS)/node_modules/.bin/codex --version)" = "codex-cli $(CODEX_VERSION)"
	touch $@

agents: $(AGENTS_STAMP)

migrate: $(DEPS)
	mkdir -p data
	$(PY) -m store migrate

# Dashboard + mounted /api/v1 on one port, Reflex production mode (frontend
# packages are reused; the ~4 s vite build reruns each start). Ready: /ping -> "pong".
run: $(DEPS) $(BUN_STAMP) $(SWAGGER_UI_STAMP) migrate
	exec scripts/serve.sh

# Like run, without the migration step.
serve: $(DEPS) $(BUN_STAMP) $(SWAGGER_UI_STAMP)
	exec scripts/serve.sh

# Headless Chromium for the browser tests (Debian's package; skipped when present).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }; \
	fi

# Lint, format and types first (configured in pyproject.toml): each must pass, as the suite must.
test: $(DEV_DEPS) $(BUN_STAMP) $(SWAGGER_UI_STAMP) $(AGENTS_STAMP) chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q tests $(PYTEST_ARGS)

# The benchmark (never part of `make test`), three tables: wrk against a zero-delay fake
# upstream, C = 50/200/1000 streams held open through a fake upstream that paces its
# chunks, and one balance under many callers on two workers (PostgreSQL + Redis, when they
# answer); targets: direct, the platform as `make run` serves it, the API alone, the same
# two built from BENCH_BASELINE_REF (default 0216049, in a worktree under bench/out) and
# Portkey's gateway (npm, into bench/out/portkey); BENCH_LITELLM=1 adds LiteLLM's proxy.
# BENCH_WRK=0 / BENCH_STREAMS=0 / BENCH_HOT=0 skip a table. See docs/benchmarks.md.
bench: $(DEPS) $(BUN_STAMP)
	$(PY) -m bench

# Force a full frontend rebuild next time.
clean-web:
	rm -rf .web
