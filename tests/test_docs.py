"""The documentation stays true: the CLI reference is what Typer generates from the app
(`make docs`), links between pages resolve, and every `nsvd` command line shown in the
README and the docs names a real command with real options."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from nsvd_cli.cli import app

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CLI_DOC = ROOT / "docs" / "cli.md"
# The command `make docs` runs (keep the two in step).
GENERATE = ["utils", "docs", "--name", "nsvd", "--title", "nsvd command-line reference"]


def test_cli_reference_is_generated_from_the_app(tmp_path: Path) -> None:
    out = tmp_path / "cli.md"
    result = subprocess.run(
        [sys.executable, "-m", "typer", "nsvd_cli.cli", *GENERATE, "--output", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if result.returncode != 0 and "No such command" in result.stderr:
        pytest.skip("this Typer has no `utils docs`")
    assert result.returncode == 0, result.stderr
    assert out.read_text() == CLI_DOC.read_text(), "docs/cli.md is stale: run `make docs`"


def _commands() -> dict[str, Any]:
    """The app's commands (click's, or the copy of click that newer Typers carry)."""
    group = typer.main.get_command(app)
    return dict(group.commands)  # type: ignore[attr-defined]


def test_every_command_is_in_the_cli_reference() -> None:
    text = CLI_DOC.read_text()
    for name in _commands():
        assert f"## `nsvd {name}`" in text, name


LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    for target, _ in LINK.findall(page.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (page.parent / target).exists(), f"{page.name}: broken link {target}"


def _command_lines(text: str) -> list[str]:
    """`nsvd ...` lines inside fenced code blocks (comments and continuations dropped)."""
    lines, inside = [], False
    for raw in text.splitlines():
        if raw.strip().startswith("```"):
            inside = not inside
            continue
        line = raw.split("  #")[0].strip()
        if inside and line.startswith("nsvd "):
            lines.append(line)
    return lines


def _check_line(line: str, commands: dict[str, Any]) -> None:
    words = shlex.split(line.replace("[", " ").replace("]", " ").replace("|", " "))
    assert len(words) >= 2, line
    name = words[1]
    if name.startswith("-"):  # nsvd --version
        assert name in ("--version", "--help"), line
        return
    assert name in commands, f"unknown command in: {line}"
    known = {opt for p in commands[name].params for opt in (*p.opts, *p.secondary_opts)}
    for word in words[2:]:
        option = word.split("=")[0]
        if option.startswith("-") and option not in ("-", "--"):
            assert option in known, f"unknown option {option} in: {line}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_documented_command_lines_exist(page: Path) -> None:
    commands = _commands()
    for line in _command_lines(page.read_text()):
        _check_line(line, commands)
