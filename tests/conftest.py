"""Fixtures the test modules share: problem files written to a temporary folder, and the
command line invoked in-process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from nsvd_cli.cli import app


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
