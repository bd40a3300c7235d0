"""``nsvd plot RUN_DIR``: PNG figures of a run in RUN_DIR/plots/ (eigenfunctions beside the
reference, training curves, the normalised Gram matrix). Registered on ``cli_base.app``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nsvd_cli.cli.common import WindowOption, app, err, fail, out, user_errors, window_or_exit
from nsvd_cli.errors import RunFileError
from nsvd_cli.files.reference import read_reference
from nsvd_cli.files.run_folder import PLOTS_DIR
from nsvd_cli.runs import load_run
from nsvd_cli.runs.results import windowed
from nsvd_cli.viz.figures import function_panels, function_sides, gram_matrices, training_curves


@app.command("plot")
def plot_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Run folder (or its results.h5).")],
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for the PNGs [RUN_DIR/plots].")
    ] = None,
    axes: Annotated[
        str | None,
        typer.Option(help="The coordinates to plot, e.g. x,y (d > 2: a slice through 0)."),
    ] = None,
    grid: Annotated[
        int | None, typer.Option(min=8, max=4096, help="Points per axis [400 in 1-D, 96 in 2-D].")
    ] = None,
    modes: Annotated[int | None, typer.Option(min=1, help="Plot the first K modes only.")] = None,
    against: Annotated[
        Path | None,
        typer.Option(help="A reference file from `nsvd reference` for the training curves."),
    ] = None,
    dpi: Annotated[int, typer.Option(min=30, max=600, help="Resolution.")] = 100,
    window: WindowOption = None,
) -> None:
    """Draw a run: its eigenfunctions (beside the reference ones, aligned within degenerate
    levels), its training curves and the normalised Gram matrix, as PNGs."""
    # matplotlib takes a second to import: only this command pays for it.
    from nsvd_cli.viz.plotting import plot_functions, plot_gram, plot_training

    with user_errors():
        run = load_run(run_dir)
        ref = read_reference(against) if against is not None else None
    box = window_or_exit(window, run)
    folder = out_dir or (run_dir if run_dir.is_dir() else run_dir.parent) / PLOTS_DIR
    chosen = tuple(a.strip() for a in axes.split(",")) if axes else None
    title = run.problem.name
    written = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        sides = function_sides(run) if box is None else windowed(run.kind.sides(run), box)
        for side in sides:
            try:  # a window asked for is drawn as it is, not zoomed per mode
                zoom = False if box is not None else None
                panels = function_panels(run, side, chosen, grid, modes, ref, zoom)
            except ValueError as exc:
                raise fail(f"--axes: {exc}", 2) from None
            name = "eigenfunctions" if side.name == "eigen" else f"{side.name}-functions"
            written.append(plot_functions(panels, title, folder / f"{name}.png", dpi))
        curves = training_curves(run, ref)
        written.append(plot_training(curves, title, folder / "training.png", dpi))
        written.append(plot_gram(gram_matrices(run), title, folder / "gram.png", dpi))
    except (RunFileError, OSError) as exc:
        raise fail(f"{folder}: cannot write the figures ({exc})") from None
    for path in written:
        out.print(str(path), highlight=False)
    if ref is None and run.problem.reference is None:
        err.print(
            "note: the problem has no reference; `nsvd reference` computes one (d <= 3) for "
            "--against",
            highlight=False,
        )
