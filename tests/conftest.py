"""Fixtures the test modules share: problem files written to a temporary folder, and the
command line invoked in-process."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner, Result

from nsvd_cli.cli import app

# Under pytest-xdist (``make test`` runs ``-n auto``) each worker is one process per core:
# torch's own threads on top would oversubscribe the cores and slow every worker (OpenMP
# threads spin while they wait). Commands the tests start inherit the one thread too.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture
def write_problem(tmp_path: Path) -> Callable[[str, str], Path]:
    """``write_problem(text, name="problem")`` -> the path of tmp_path/NAME.yaml."""

    def write(text: str, name: str = "problem") -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        return path

    return write


@pytest.fixture
def nsvd() -> Callable[..., Result]:
    """``nsvd("solve", FILE, "--out", DIR)``: the app in-process, arguments as strings."""
    runner = CliRunner()

    def invoke(*args: object) -> Result:
        return runner.invoke(app, [str(a) for a in args])

    return invoke
