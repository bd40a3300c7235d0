# `make solve` and `make test` work on a fresh machine: they create .venv first.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: solve test lint bench bench-paper docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# The CPU build of torch first: a bare `torch` requirement would pull the CUDA build.
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

solve: $(STAMP)
	$(VENV)/bin/nsvd solve problems/oscillator-1d.yaml --out runs/oscillator-1d
	$(VENV)/bin/nsvd eval runs/oscillator-1d

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/accuracy.py

bench-paper: $(STAMP)
	$(VENV)/bin/pip install -q -e '.[dev,bench]'
	$(VENV)/bin/python benchmarks/paper.py

# docs/cli.md from the Typer app (tests/test_docs.py fails when it is stale).
docs: $(STAMP)
	$(VENV)/bin/typer nsvd_cli.cli utils docs --name nsvd --title "nsvd command-line reference" --output docs/cli.md

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
