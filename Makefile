# Two commands set everything up on a fresh machine with Python 3.11 and pip:
#   make demo   builds .venv, installs gradiance and runs the showcase
#   make test   builds .venv, installs gradiance with its dev extra and runs lint, types and tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Development pins torch to the CPU build that lies on disk here; the package itself declares a range.
TORCH  ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: test demo lint typecheck install clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)" -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/gradiance demo --out outputs/demo

clean:
	rm -rf $(VENV) outputs .pytest_cache .mypy_cache .ruff_cache
