"""The commands about problem files to start from: ``problems`` lists the shipped library,
``init`` writes a commented starter file (or a copy of a library problem). Registered on
the app of ``cli_base`` when ``cli`` imports this module."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from nsvd_cli.cli.common import app, err, fail, out, user_errors
from nsvd_cli.files.atomic import atomic_path
from nsvd_cli.spec.library import (
    LibraryEntry,
    LibraryError,
    check_name,
    copy_problem,
    find_problem,
    library_dir,
    list_problems,
    template,
)
from nsvd_cli.spec.load import ProblemError

REFERENCE_LABELS = {"closed-form": "closed form", "listed": "listed", "none": "none"}
# Below this many columns a table leaves the descriptions a word per line: list instead.
WIDE = 110


@app.command("problems")
def problems_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON list on stdout.")] = False,
) -> None:
    """List the shipped problems (copy one with `nsvd init NAME --from PROBLEM`)."""
    with user_errors(problem_exit=1):  # a library file that fails: a damaged installation
        folder = library_dir()
        entries = list_problems(folder)
    if as_json:
        typer.echo(json.dumps([e.to_json() for e in entries]))
        return
    if out.width >= WIDE:
        out.print(_table(entries, folder))
    else:
        _print_list(entries, folder)
    out.print(
        "solve one: nsvd solve PROBLEM_FILE; start your own: nsvd init NAME [--from PROBLEM]",
        highlight=False,
    )


def _table(entries: list[LibraryEntry], folder: Path) -> Table:
    table = Table(
        title=Text(f"{len(entries)} problems in {folder}"),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("name", no_wrap=True)
    table.add_column("d", justify="right")
    table.add_column("modes", justify="right")
    table.add_column("domain", no_wrap=True)
    table.add_column("reference", no_wrap=True)
    table.add_column("description", ratio=1)
    for e in entries:
        # Text, not markup: a description's "[0, 1]" must not be read as a style tag.
        table.add_row(
            e.name,
            str(e.dim),
            str(e.modes),
            e.domain,
            REFERENCE_LABELS[e.reference],
            Text(e.description),
        )
    return table


def _print_list(entries: list[LibraryEntry], folder: Path) -> None:
    out.print(Text(f"{len(entries)} problems in {folder}"))
    for e in entries:
        facts = (
            f"d={e.dim}, {e.modes} modes, {e.domain}, reference: {REFERENCE_LABELS[e.reference]}"
        )
        out.print(Text.assemble((e.name, "bold"), "  ", facts))
        out.print(Padding(Text(e.description), (0, 0, 0, 4)))


@app.command("init")
def init_cmd(
    name: Annotated[str, typer.Argument(help="Problem name: letters, digits, _ . -")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="File to write (default NAME.yaml).")
    ] = None,
    source: Annotated[
        str | None,
        typer.Option("--from", help="Copy this library problem (see `nsvd problems`)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented problem file to start from: a working example showing every
    optional key, or with --from a copy of a library problem."""
    try:
        check_name(name)
        text = copy_problem(find_problem(source), name) if source else template(name)
    except LibraryError as exc:
        raise fail(str(exc), 2) from None
    except ProblemError as exc:  # the starter itself does not validate: nsvd's bug
        raise fail(f"the generated file does not validate: {exc}") from None
    target = output if output is not None else Path(f"{name}.yaml")
    if target.is_dir():
        target = target / f"{name}.yaml"
    if target.exists() and not force:
        raise fail(f"{target} exists; use --force to overwrite it", 2)
    with user_errors():
        with atomic_path(target) as tmp:
            tmp.write_text(text, encoding="utf-8")
    what = f"a copy of {source}" if source else "a starter problem"
    err.print(f"wrote {target} ({what}); next: nsvd check {target}", highlight=False)
