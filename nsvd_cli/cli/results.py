"""The commands that read a finished run or a problem's reference: ``eval``, ``export``,
``reference``. Registered on the app of ``cli_base`` when ``cli`` imports this module."""

from __future__ import annotations

import json
import math
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import typer
from rich.table import Table

from nsvd_cli.cli.common import (
    MaxMemory,
    WindowOption,
    app,
    err,
    fail,
    load_or_exit,
    memory_bound,
    out,
    user_errors,
    window_or_exit,
)
from nsvd_cli.cli.tables import interval_note, interval_text, values_table
from nsvd_cli.errors import NoReference, UsageError
from nsvd_cli.files import vtkhdf
from nsvd_cli.files.export import write_export
from nsvd_cli.files.reference import read_reference, write_reference
from nsvd_cli.kinds import Evaluation, Run, kind_of
from nsvd_cli.objectives.readout import normalized_gram, orthogonality
from nsvd_cli.runs import Export, evaluate, export, grid_reference, load_run
from nsvd_cli.runs.resources import export_bytes, largest_grid, network_workspace, readout_bytes


class ReferenceMethod(str, Enum):
    auto = "auto"
    fem = "fem"
    grid = "grid"


def reference_title(attrs: dict[str, Any]) -> str:
    """What a reference file's three resolutions were, for the table's title."""
    if "cells" in attrs:
        return f"finite-element reference ({attrs['cells']} elements across)"
    return f"grid reference ({attrs['points']} points per axis)"


@app.command("eval")
def eval_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Run folder (or its results.h5).")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    against: Annotated[
        Path | None,
        typer.Option(
            "--against",
            help="A reference file from `nsvd reference` instead of the problem's closed form.",
        ),
    ] = None,
    samples: Annotated[
        int, typer.Option(min=256, help="Monte-Carlo points for the function comparisons.")
    ] = 1 << 16,
    max_memory: MaxMemory = None,
) -> None:
    """Compare a run with its problem's reference spectrum (and eigenfunctions)."""
    with user_errors():
        run = load_run(run_dir)
        settings = run.settings
        dim = max(len(run.problem.coordinates), len(run.problem.input_coordinates))
        memory_bound(max_memory, torch.device("cpu")).require(
            f"the evaluation sample (--samples {samples})",
            readout_bytes(samples, dim, run.problem.modes, settings.network.hidden),
            "lower --samples",
        )
        ref = read_reference(against) if against is not None else None
        try:
            report = evaluate(run, samples=samples, against=ref)
        except NoReference:
            _print_own_report(run, as_json)
            raise
    staircase = ref is not None and str(ref.attrs.get("method", "")).startswith("finite diff")
    if staircase and run.problem.region_expr() is not None:
        # A curved edge cuts the grid's cells: first-order convergence, and an error estimate
        # (from three grids) that a user's ellipse showed to be optimistic by 1.4x.
        err.print(
            "warning: on a region domain the finite-difference reference converges at first "
            "order (its values are typically 1e-3 to 1e-2 off at the default grid); small "
            "learned errors are dominated by the reference's own (`nsvd reference --method "
            "fem` meshes the curved edge)",
            highlight=False,
        )
    if ref is not None and ref.problem_yaml != run.problem.source_text:
        err.print(
            f"warning: {against} was computed from a different problem file than this run's",
            highlight=False,
        )
    if as_json:
        typer.echo(json.dumps(_json_safe(report.to_json())))
        return
    _print_evaluation(report, against)


def _print_own_report(run: Run, as_json: bool) -> None:
    """What a run says of itself where there is nothing to compare with: its values, their
    residual intervals and how orthogonal its functions are."""
    results = run.results
    gram = normalized_gram(torch.from_numpy(results.wanted_gram))
    intervals = results.intervals
    if as_json:
        own: dict[str, Any] = {
            "problem": run.problem.name,
            "eigenvalues": np.sort(results.eigenvalues).tolist(),
            "stderr": results.stderr[np.argsort(results.eigenvalues)].tolist(),
            "reference": None,
            "relative_errors": None,
            "max_relative_error": None,
            "mean_relative_error": None,
            "subspace_distance": None,
            "orthogonality": orthogonality(torch.from_numpy(results.wanted_gram)),
            "normalized_gram": gram.tolist(),
            "intervals": None,
            "interval_methods": None,
            "residuals": None,
            "reference_in_interval": None,
            "interval_unavailable": None if intervals is None else intervals.reason,
        }
        if intervals is not None:  # eigen runs: already ascending
            own["intervals"] = np.stack([intervals.low, intervals.high], axis=1).tolist()
            own["interval_methods"] = list(intervals.methods)
            own["residuals"] = intervals.residual.tolist()
        typer.echo(json.dumps(_json_safe(own)))
        return
    out.print(values_table(run.problem, results.eigenvalues, results.stderr, intervals))
    note = interval_note(intervals)
    if note is not None:
        out.print(note, highlight=False)
    out.print(
        f"orthogonality {orthogonality(torch.from_numpy(results.wanted_gram)):.3e} (largest "
        "off-diagonal of the normalised Gram matrix)",
        highlight=False,
    )


def _print_evaluation(report: Evaluation, against: Path | None) -> None:
    table = Table(title=f"{report.problem}: learned vs reference")
    columns = ["mode", "learned", "s.e.", "reference", "rel. error"]
    if report.intervals is not None:
        columns[2:2] = ["95% interval"]
    for col in columns:
        table.add_column(col, justify="right")
    if report.reference_reliable is not None and not all(report.reference_reliable):
        err.print(
            "warning: the grid reference flags some of these values as unreliable",
            highlight=False,
        )
    if report.reference_error is not None:
        out.print(
            f"reference: {against} (grid), its own estimated relative error up to "
            f"{max(report.reference_error):.1e}",
            highlight=False,
        )
    held = report.reference_in_interval()
    rows = zip(report.values, report.stderr, report.reference, report.relative_errors)
    for i, (v, s, r, e) in enumerate(rows):  # mode order
        cells = [str(i), f"{v:.10g}"]
        if report.intervals is not None:
            low, high = (float(x) for x in report.intervals[i])
            cells.append(interval_text(low, high))
        table.add_row(*cells, f"{s:.2g}", f"{r:.10g}", f"{e:.2e}")
    out.print(table)
    if held is not None:
        inside = [i for i, h in enumerate(held) if h]
        outside = [i for i, h in enumerate(held) if h is False]
        out.print(
            f"the reference lies in {len(inside)} of {len(held)} intervals"
            + (f" (not in modes {outside})" if outside else "")
            + ("" if len(inside) + len(outside) == len(held) else "; the rest have none")
            + ("; s.e. 0: a quadrature read-out (no Monte-Carlo error)"
               if not np.any(np.asarray(report.stderr)) else
               "; s.e.: the read-out's Monte-Carlo standard error alone"),
            highlight=False,
        )
    if report.interval_reason is not None:
        out.print(f"no interval for some modes: {report.interval_reason}", highlight=False)
    out.print(
        f"max relative error {report.relative_errors.max():.3e}, "
        f"mean {report.relative_errors.mean():.3e}, "
        f"orthogonality {report.orthogonality:.3e}",
        highlight=False,
    )
    native = report.native_relative_errors
    if native is not None:
        out.print(
            f"{report.method}'s own estimates (no Rayleigh-Ritz): max relative error "
            f"{np.nanmax(native):.3e}, mean {np.nanmean(native):.3e}",
            highlight=False,
        )
    _print_distances(report)


def _print_distances(report: Evaluation) -> None:
    d = report.distances
    if d is not None:
        per_level = ", ".join(f"{v:.2e}" for v in d.per_level)
        out.print(
            f"subspace distance (mean over levels) {np.mean(d.per_level):.3e} [{per_level}]",
            highlight=False,
        )
        out.print(f"subspace distance (whole learned span) {d.whole:.3e}", highlight=False)
        out.print(
            f"angle distance (mean over modes, radians) {np.mean(d.angles):.3e}",
            highlight=False,
        )
    for side in ("left", "right"):
        distance = (report.side_distances or {}).get(side)
        ortho = (report.side_orthogonality or {}).get(side)
        if distance is not None or ortho is not None:
            parts = [
                f"subspace distance {distance:.3e}" if distance is not None else "",
                f"orthogonality {ortho:.3e}" if ortho is not None else "",
            ]
            out.print(f"{side} functions: " + ", ".join(p for p in parts if p), highlight=False)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


EXPORT_FORMATS = {"h5": ".h5", "vtkhdf": vtkhdf.SUFFIX}


@app.command("export")
def export_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Run folder (or its results.h5).")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Output file (.h5 or .vtkhdf)")
    ] = None,
    grid: Annotated[int, typer.Option(min=2, help="Points per coordinate.")] = 64,
    file_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="h5 (the contract's layout) | vtkhdf (VTK ImageData for ParaView, d <= 3)",
        ),
    ] = "h5",
    max_memory: MaxMemory = None,
    window: WindowOption = None,
) -> None:
    """Sample the learned eigenfunctions on a regular grid and write them to HDF5."""
    if file_format not in EXPORT_FORMATS:
        raise fail(f"--format: unknown {file_format!r} (known: {' | '.join(EXPORT_FORMATS)})", 2)
    with user_errors():
        run = load_run(run_dir)
    box = window_or_exit(window, run)
    families = run.kind.sides(run)
    sides = [len(side.coordinates) for side in families]
    if file_format == "vtkhdf":
        try:
            for dim in sides:
                vtkhdf.check_dimension(dim)
        except ValueError as exc:
            raise fail(f"--format vtkhdf: {exc}", 2) from None
    bound = memory_bound(max_memory, torch.device("cpu"))
    settings = run.settings
    modes = run.problem.modes
    points = min(grid ** max(sides), 65536)  # export_grid's chunk
    jets = any(side.jets for side in families)  # left functions u = A v / s
    workspace = network_workspace(points, max(sides), settings.network.hidden, jets)
    room = bound.bound.bytes - workspace
    fits = room >= export_bytes(sides, 2, modes)
    bound.require(
        f"the export on a {grid}^{max(sides)} grid ({modes} modes)",
        export_bytes(sides, grid, modes) + workspace,
        f"use --grid {largest_grid(sides, modes, room)} or less" if fits else "raise it",
    )
    base = run_dir if run_dir.is_dir() else run_dir.parent
    target = output or base / f"eigenfunctions{EXPORT_FORMATS[file_format]}"
    with user_errors():
        exported = export(run, grid, box)
        if file_format == "vtkhdf":
            written = _write_vtkhdf(exported, target)
        else:
            _write_h5(exported, target)
            written = [target]
    err.print(
        f"wrote {', '.join(map(str, written))} ({run.problem.modes} modes on "
        f"{grid}^{len(run.problem.coordinates)} points"
        + (", and the right functions" if len(families) > 1 else "")
        + ")",
        highlight=False,
    )


def _write_h5(export: Export, target: Path) -> None:
    (axes, values), *others = export.functions.values()
    write_export(
        target,
        export.eigenvalues,
        axes,
        values,
        export.attrs,
        groups=dict(zip(list(export.functions)[1:], others)),
        datasets=(
            {"singular_values": export.singular_values}
            if export.singular_values is not None
            else None
        ),
    )


def _write_vtkhdf(export: Export, target: Path) -> list[Path]:
    """One image with every function set on it; a singular problem whose right functions
    live on another grid (other coordinates or domain) gets a second image,
    ``NAME-right.vtkhdf``. Returns the files written."""
    singular = export.singular_values is not None
    label = "singular_value" if singular else "eigenvalue"
    values = export.singular_values if singular else export.eigenvalues
    prefixes = {"eigenfunctions": "left" if singular else "psi", "right_functions": "right"}
    arrays = [
        vtkhdf.PointArrays(prefixes[name], axes, vals, {label: np.asarray(values)})
        for name, (axes, vals) in export.functions.items()
    ]
    file_values = {"eigenvalues": np.asarray(export.eigenvalues, dtype=np.float64)}
    if singular:
        file_values["singular_values"] = np.asarray(export.singular_values, dtype=np.float64)
    groups = [arrays]
    if len(arrays) > 1 and not vtkhdf.same_grid(arrays[0].axes, arrays[1].axes):
        groups = [[arrays[0]], arrays[1:]]
    written = []
    for group, path in zip(groups, (target, target.with_stem(f"{target.stem}-right"))):
        attrs = {**export.attrs, "functions": " ".join(a.prefix for a in group)}
        vtkhdf.write_vtkhdf(path, group, file_values, attrs)
        written.append(path)
    return written


@app.command("reference")
def reference_cmd(
    problem_file: Annotated[Path, typer.Argument(help="Problem file (YAML), d <= 3.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Output .h5")] = None,
    grid: Annotated[
        int | None,
        typer.Option(
            min=8,
            help="Points per axis of the finest grid, or elements across the longest side "
            "of the finest mesh (default by dimension).",
        ),
    ] = None,
    method: Annotated[
        ReferenceMethod,
        typer.Option(
            help="fem: P2 finite elements (every wall condition, diffusion fields, weights, "
            "curved regions); grid: 4th-order finite differences (drifts; faster on "
            "constant-coefficient boxes); auto: the kind's choice."
        ),
    ] = ReferenceMethod.auto,
) -> None:
    """Reference values on meshes or grids (finite elements or differences; quadrature for
    integral operators), with an error estimate from three resolutions."""
    problem = load_or_exit(problem_file)
    with user_errors():  # a ProblemError here was found while deriving the window
        try:
            ref = grid_reference(problem, grid, method=method.value)
        except ValueError as exc:  # no reference for this problem (d > 3, a missing grid)
            raise UsageError(f"{problem_file}: {exc}") from None
        target = output or problem_file.with_suffix(".reference.h5")
        write_reference(target, ref)
    table = Table(title=f"{problem.name}: {reference_title(ref.attrs)}")
    value = kind_of(problem).value_name
    for col in ("index", value, "est. abs. error", "observed order"):
        table.add_column(col, justify="right")
    orders = json.loads(ref.attrs["observed_order"])
    reliable = json.loads(ref.attrs["reliable"])
    for i, (v, e, p, ok) in enumerate(zip(ref.eigenvalues, ref.error, orders, reliable)):
        table.add_row(str(i), f"{v:.10g}", f"{e:.2g}" if ok else "unreliable", f"{p:.2f}")
    out.print(table)
    bad = [i for i, ok in enumerate(reliable) if not ok]
    if bad:
        err.print(
            f"warning: values {bad} converge slower than first order on these grids ("
            + "a singular potential, or a discontinuous kernel?"
            + "): their error is not estimated; use a finer --grid or a closed form",
            highlight=False,
        )
    err.print(f"wrote {target} ({ref.attrs['seconds']:.1f} s)", highlight=False)
