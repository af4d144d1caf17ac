# Everyone types the same thing: `make demo`, `make test`, `make bench`.
# Each target builds the virtualenv it needs on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The pinned Pulumi CLI that `make cli` builds (docs/cli.md); first on PATH where used.
TOOLS_BIN := $(CURDIR)/.tools/bin
WITH_CLI := PATH="$(TOOLS_BIN):$$PATH"

.PHONY: demo test lint bench emulator clean cli

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# The pinned Pulumi CLI and its Python dynamic provider plugin, into .tools/bin (once;
# a pulumi of the pinned version on PATH is used instead).
cli:
	@tools/build-cli.sh

# Quick on a fresh clone: the real CLI only if `make cli` already built it (or one is
# installed); otherwise the offline runner. The demo says which engine it used.
demo: $(STAMP)
	$(WITH_CLI) $(BIN)/python -m qlik_email_resource.demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/mypy --explicit-package-bases policies/rules.py policies/__main__.py

# Where Go is missing (a laptop), the CLI tests skip with their reason; CI must build it.
test: lint
	@tools/build-cli.sh || { [ -z "$$CI" ] && echo "make test: no Pulumi CLI built; the tests that need it will skip"; }
	$(WITH_CLI) $(BIN)/python -m pytest -q

bench: $(STAMP) cli
	$(WITH_CLI) $(BIN)/python benchmarks/run.py

emulator: $(STAMP)
	$(BIN)/qlik-emulator --tenant demo --tenant acme

clean:
	rm -rf $(VENV) .tools .demo .pytest_cache .mypy_cache .ruff_cache
