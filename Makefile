# `make solve` and `make test` work on a fresh machine: they create .venv first.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
# Which torch to install when the environment has none. `pip install torch==2.13.0` takes
# the CPU wheel only where a local wheel store offers it (as on this project's machines);
# from PyPI on Linux it is the CUDA build (several GB), on macOS the CPU one. Choose, e.g.:
#   make test TORCH='torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu'
# A torch that is already importable is kept (a GPU user's build): with
#   make test VENV_FLAGS=--system-site-packages
# the environment sees the system Python's torch and installs none.
TORCH ?= torch==2.13.0
VENV_FLAGS ?=

.PHONY: solve test lint bench bench-paper docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# torch first (see TORCH above): the project's bare `torch>=2.4` would pick one itself.
	$(VENV)/bin/python -c "import torch" 2>/dev/null || $(VENV)/bin/pip install -q $(TORCH)
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

solve: $(STAMP)
	$(VENV)/bin/nsvd solve problems/oscillator-1d.yaml --out runs/oscillator-1d
	$(VENV)/bin/nsvd eval runs/oscillator-1d

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q -n auto

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
