# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# The Claude Code CLI the end-to-end suite drives: pinned in package.json, installed by npm.
CLAUDE_DIR := tests/e2e/claude
CLAUDE_BIN := $(CLAUDE_DIR)/node_modules/.bin/claude
CLAUDE_LATEST_DIR := .cache/claude-latest
# The OpenID Connect provider the SSO tests sign in through (npm oidc-provider), pinned likewise.
OIDC_DIR := tests/oidc
OIDC_STAMP := $(OIDC_DIR)/node_modules/.installed

.PHONY: run test lint typecheck unit check-python clean bench compat-latest

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Gatehouse needs Python 3.11 or newer (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

## Start Gatehouse on SQLite (simulator upstream unless one is configured) with a demo key.
run: $(STAMP)
	$(BIN)/gatehouse demo

## Every gate: lint, format, types, tests (warnings are errors).
test: lint typecheck $(CLAUDE_BIN) $(OIDC_STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

# npm stamps extracted files with old times: touch the binary so make sees it as fresh.
$(CLAUDE_BIN): $(CLAUDE_DIR)/package.json $(CLAUDE_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		echo "Installing the pinned Claude Code CLI into $(CLAUDE_DIR)"; \
		cd $(CLAUDE_DIR) && npm ci --no-audit --no-fund && touch node_modules/.bin/claude; \
	else \
		echo "npm not found: the Claude Code tests will be skipped (they fail in CI)."; \
		echo "Install Node.js and npm to run them."; \
	fi

$(OIDC_STAMP): $(OIDC_DIR)/package.json $(OIDC_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		echo "Installing the pinned OIDC provider into $(OIDC_DIR)"; \
		cd $(OIDC_DIR) && npm ci --no-audit --no-fund && touch node_modules/.installed; \
	else \
		echo "npm not found: the SSO tests will be skipped (they fail in CI)."; \
		echo "Install Node.js and npm to run them."; \
	fi

## Before a fleet upgrade: the Claude Code tests against the newest published CLI.
compat-latest: $(STAMP)
	@command -v npm >/dev/null 2>&1 || { echo "compat-latest needs npm (Node.js)"; exit 1; }
	@mkdir -p $(CLAUDE_LATEST_DIR)
	@test -f $(CLAUDE_LATEST_DIR)/package.json || echo '{"private": true}' > $(CLAUDE_LATEST_DIR)/package.json
	cd $(CLAUDE_LATEST_DIR) && npm install --no-audit --no-fund --prefer-online @anthropic-ai/claude-code@latest
	@echo "Claude Code under test: $$($(CLAUDE_LATEST_DIR)/node_modules/.bin/claude --version)"
	GATEHOUSE_CLAUDE_BIN=$(abspath $(CLAUDE_LATEST_DIR))/node_modules/.bin/claude \
		$(BIN)/pytest -m claude $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy --strict src/gatehouse

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

bench: $(STAMP)
	$(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) .gatehouse .pytest_cache .mypy_cache .ruff_cache
