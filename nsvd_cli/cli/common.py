"""What every ``nsvd`` command shares: the Typer app, the consoles, and the ways a command
ends early (a bad problem file, a bad device, a memory bound) with one clear line."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.console import Console

from nsvd_cli import __version__
from nsvd_cli.errors import NsvdError
from nsvd_cli.kinds import Run
from nsvd_cli.runs.resources import Bound, MemoryBoundError
from nsvd_cli.runs.results import Window, parse_window, windowed
from nsvd_cli.spec.load import Problem, ProblemError, load_problem
from nsvd_cli.training.loop import resolve_device

PIPED_WIDTH = 160

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    # Plain help: Rich help showed every flag as "--json <bool>" (which fails when typed so)
    # and read "[tensorboard]" in help text as markup, dropping it.
    rich_markup_mode=None,
    help="Eigenpairs of PDE operators with neural networks (NeuralSVD).",
)
# Piped or redirected, tables are not wrapped at Rich's default 80 columns (a log or `tee`
# keeps one row per line); COLUMNS still sets the width where given.
_columns = os.environ.get("COLUMNS", "")
out = Console(
    emoji=False,
    width=None if sys.stdout.isatty() else int(_columns) if _columns.isdigit() else PIPED_WIDTH,
)
# soft_wrap: a message stays one line (for grep and for tools that read stderr).
# emoji=False: ":100:" in "FILE:100: key" is an emoji code to Rich.
err = Console(stderr=True, soft_wrap=True, markup=False, highlight=False, emoji=False)


def _version(value: bool) -> None:
    if value:
        out.print(f"nsvd {__version__} (torch {torch.__version__})")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    pass


def load_or_exit(path: Path) -> Problem:
    try:
        return load_problem(path)
    except ProblemError as exc:
        raise problem_errors(exc) from None


def problem_errors(exc: ProblemError) -> typer.Exit:
    """Print a problem file's errors, one ``FILE:LINE: key: message`` line each; exit 2."""
    for issue in exc.errors:
        err.print(str(issue))
    return typer.Exit(2)


@contextmanager
def user_errors(problem_exit: int = ProblemError.exit_code) -> Iterator[None]:
    """An error the user must act on ends the command with its message and exit code: a
    problem file's issues one ``FILE:LINE: key: message`` line each (exit ``problem_exit``:
    1 where the file is nsvd's own, not the user's), others ``error: ...``."""
    try:
        yield
    except ProblemError as exc:
        for issue in exc.errors:
            err.print(str(issue))
        raise typer.Exit(problem_exit) from None
    except NsvdError as exc:
        raise fail(str(exc), exc.exit_code) from None


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"error: {message}", markup=False, highlight=False)
    return typer.Exit(code)


WindowOption = Annotated[
    str | None,
    typer.Option(
        "--window",
        help="The box to sample, per coordinate, e.g. x=-4:4,y=-2:2 (coordinates not named "
        "keep the problem's export window).",
    ),
]


def window_or_exit(text: str | None, run: Run) -> Window | None:
    """--window parsed and checked against the run's coordinates (exit 2 saying why)."""
    if text is None:
        return None
    try:
        window = parse_window(text)
        windowed(run.kind.sides(run), window)
    except ValueError as exc:
        raise fail(f"--window: {exc}", 2) from None
    return window


MaxMemory = Annotated[
    str | None,
    typer.Option(
        "--max-memory",
        help="Memory bound, e.g. 8G or 512M (default: what is available on the device).",
    ),
]


def memory_bound(max_memory: str | None, device: torch.device) -> CheckedBound:
    try:
        return CheckedBound(Bound.resolve(max_memory, device))
    except ValueError as exc:
        raise fail(f"--max-memory: {exc}", 2) from None


class CheckedBound:
    """A memory bound whose refusals end the command (exit 2) with the numbers."""

    def __init__(self, bound: Bound) -> None:
        self.bound = bound

    def require(self, what: str, needed: int, advice: str) -> None:
        try:
            self.bound.require(what, needed, advice)
        except MemoryBoundError as exc:
            raise fail(str(exc), 2) from None


def device_or_exit(name: str) -> torch.device:
    try:
        return resolve_device(name)
    except (ValueError, RuntimeError) as exc:
        raise fail(str(exc), 2) from None
