# Everyone types the same thing: `make demo`, `make test`, `make bench`.
# Each target builds the virtualenv it needs on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench emulator clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m qlik_email_resource.demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/mypy --explicit-package-bases policies/rules.py policies/__main__.py

test: lint
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

emulator: $(STAMP)
	$(BIN)/qlik-emulator --tenant demo --tenant acme

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
