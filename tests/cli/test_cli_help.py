"""Command-line help that works as printed: every flag can be typed as shown."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from nsvd_cli.cli import app

COMMANDS = ["solve", "check", "eval", "export", "reference", "plot", "problems", "init", "schema"]


@pytest.mark.parametrize("command", COMMANDS)
def test_flags_show_no_value_placeholder(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output  # "--json <bool>" fails when typed that way
    assert "Options" in result.output


def test_the_tensorboard_extra_is_printed_whole() -> None:
    result = CliRunner().invoke(app, ["solve", "--help"], env={"COLUMNS": "200"})
    assert "pip install 'nsvd[tensorboard]'" in " ".join(result.output.split())


def test_a_flag_typed_as_the_help_shows_it_works(tmp_path) -> None:  # type: ignore[no-untyped-def]
    help_text = CliRunner().invoke(app, ["problems", "--help"], env={"COLUMNS": "120"}).output
    shown = re.search(r"^\s+(--json)\b(.*)$", help_text, re.MULTILINE)
    assert shown is not None and "<" not in shown.group(2).split("  ")[0]
    result = CliRunner().invoke(app, ["problems", "--json"])
    assert result.exit_code == 0, result.output
