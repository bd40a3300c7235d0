"""The ``nsvd`` command line (Typer). Parses arguments, calls ``runner``, prints with Rich.

Exit codes: 0 success, 1 a run or file that cannot be used (or training that diverged),
2 a bad problem file or bad arguments, 130 / 143 interrupted by SIGINT / SIGTERM (a
checkpoint and an incomplete results.h5 were written; ``--resume`` continues).
"""

from __future__ import annotations

import json
import math
import signal
import time
import warnings
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .formulations import FORMULATION_NAMES
from .guard import TrainingFailed
from .io import (
    CHECKPOINT_NAME,
    RunFileError,
    has_checkpoint,
    read_reference,
    write_export,
    write_reference,
)
from .methods import get_method
from .methods.svd import SVD_LOSSES
from .progress import training_progress
from .resources import (
    Bound,
    MemoryBoundError,
    export_bytes,
    largest_grid,
    network_workspace,
    readout_bytes,
)
from .run_record import Run
from .runner import (
    evaluate,
    export_grid,
    grid_reference,
    left_functions,
    load_run,
    prepare,
    resume_settings,
    solve,
)
from .singular_runner import export_singular
from .spec import Problem, ProblemError, load_problem
from .train import resolve_device

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Eigenpairs of PDE operators with neural networks (NeuralSVD).",
)
out = Console()
# soft_wrap: a message stays one line (for grep and for tools that read stderr).
err = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)


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


def _load(path: Path) -> Problem:
    try:
        return load_problem(path)
    except ProblemError as exc:
        for issue in exc.errors:
            err.print(str(issue), markup=False, highlight=False)
        raise typer.Exit(2) from None


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"error: {message}", markup=False, highlight=False)
    return typer.Exit(code)


MaxMemory = Annotated[
    str | None,
    typer.Option(
        "--max-memory",
        help="Memory bound, e.g. 8G or 512M (default: what is available on the device).",
    ),
]


def _bound(max_memory: str | None, device: torch.device) -> _Checked:
    try:
        return _Checked(Bound.resolve(max_memory, device))
    except ValueError as exc:
        raise _fail(f"--max-memory: {exc}", 2) from None


class _Checked:
    """A memory bound whose refusals end the command (exit 2) with the numbers."""

    def __init__(self, bound: Bound) -> None:
        self.bound = bound

    def require(self, what: str, needed: int, advice: str) -> None:
        try:
            self.bound.require(what, needed, advice)
        except MemoryBoundError as exc:
            raise _fail(str(exc), 2) from None


def _device(name: str) -> torch.device:
    try:
        return resolve_device(name)
    except (ValueError, RuntimeError) as exc:
        raise _fail(str(exc), 2) from None


@app.command()
def check(problem_file: Annotated[Path, typer.Argument(help="Problem file (YAML).")]) -> None:
    """Validate a problem file and report every error in it (exit 2 if any)."""
    problem = _load(problem_file)
    out.print(
        f"{problem_file}: ok ({problem.name}, d={len(problem.coordinates)}, {problem.modes} modes)",
        highlight=False,
    )


def _default_run_dir(problem: Problem) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{problem.name}-{stamp}"
    path, i = base, 1
    while path.exists():
        path, i = Path(f"{base}-{i}"), i + 1
    return path


@app.command("solve")
def solve_cmd(
    problem_file: Annotated[Path, typer.Argument(help="Problem file (YAML).")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Run folder.")] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="Training steps.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:i")] = "auto",
    resume: Annotated[bool, typer.Option(help="Continue from RUN_DIR's checkpoint.")] = False,
    method: Annotated[
        str | None,
        typer.Option(help="neuralsvd-sequential | neuralsvd-joint | neuralef | spin"),
    ] = None,
    derivatives: Annotated[
        str | None,
        typer.Option(help="auto | forward-laplacian | hutchinson | weak | autograd"),
    ] = None,
    compile_step: Annotated[
        bool | None,
        typer.Option("--compile/--no-compile", help="torch.compile the training step."),
    ] = None,
    max_memory: MaxMemory = None,
) -> None:
    """Train networks for the lowest eigenpairs and write RUN_DIR/results.h5."""
    problem = _load(problem_file)
    dev = _device(device)
    if resume and out_dir is None:
        raise _fail("--resume needs --out RUN_DIR (the run to continue)", 2)
    run_dir = out_dir or _default_run_dir(problem)
    if resume and not has_checkpoint(run_dir):
        # A job killed before its first checkpoint is restarted by the same command.
        err.print(f"warning: {run_dir} has no checkpoint yet; starting from step 0")
        resume = False
    try:
        if resume:
            settings = resume_settings(run_dir, problem, steps)
        else:
            settings = prepare(problem, steps, seed)
    except RunFileError as exc:
        raise _fail(str(exc)) from None
    if derivatives is not None:
        if derivatives not in FORMULATION_NAMES:
            known = ", ".join(FORMULATION_NAMES)
            raise _fail(f"--derivatives: unknown {derivatives!r} (known: {known})", 2)
        settings.derivatives = derivatives
    if compile_step is not None:
        settings.compile = compile_step
    if method is not None:
        settings.method = method
    try:
        get_method(settings.method)
        if problem.is_singular and settings.method not in SVD_LOSSES:
            raise ValueError(
                f"{settings.method!r} computes eigenvalues; an integral operator needs one of "
                f"{', '.join(SVD_LOSSES)}"
            )
    except ValueError as exc:
        where = "--method" if method is not None else f"{problem_file}: solver.method"
        raise _fail(f"{where}: {exc}", 2) from None
    if not problem.is_singular:  # refuse now what the read-out could not hold at the end
        need = readout_bytes(
            settings.eval_samples,
            len(problem.coordinates),
            problem.modes,
            settings.hidden,
        )
        _bound(max_memory, dev).require(
            f"{problem_file}: the read-out sample (solver.eval_samples = {settings.eval_samples})",
            need,
            "lower solver.eval_samples",
        )
    received: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        # First Ctrl-C / SIGTERM: finish the step, checkpoint, write results. A second aborts.
        if received:
            raise KeyboardInterrupt
        received.append(signum)
        name = signal.Signals(signum).name
        err.print(f"{name}: finishing the current step and saving (again to abort)")

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    err.print(f"run folder: {run_dir}", highlight=False)
    try:
        symbol = "s" if problem.singular_values_wanted else "E"
        with training_progress(settings.steps, symbol=symbol) as hook:
            results, complete = solve(
                problem,
                settings,
                run_dir,
                dev,
                resume=resume,
                on_progress=hook,
                stop=lambda: bool(received),
            )
    except RunFileError as exc:
        raise _fail(str(exc)) from None
    except TrainingFailed as exc:
        kept = run_dir / CHECKPOINT_NAME
        where = f"checkpoint kept: {kept}" if kept.exists() else "no checkpoint saved"
        raise _fail(
            f"{problem_file}: {exc}; results.h5 not written ({where}). Try a lower "
            "solver.learning_rate, or check the potential and domain for overflow"
        ) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if results.singular is not None:
        _print_values(problem, results.singular.values, results.singular.stderr)
    else:
        _print_values(problem, results.eigenvalues, results.stderr)
    variance = results.attrs.get("hutchinson_relative_variance")
    if variance is not None:
        err.print(
            f"hutchinson: relative variance of the Laplacian estimate {variance:.3g} per point "
            f"and draw ({settings.hutchinson_probes} probes), {variance / settings.batch_size:.2g}"
            " for a batch mean",
            highlight=False,
        )
    if not complete:
        err.print(
            f"interrupted at step {results.attrs['steps']}: results.h5 holds what was learned "
            f"so far (marked incomplete); continue with: nsvd solve {problem_file} "
            f"--out {run_dir} --resume",
            highlight=False,
        )
        # The shell's convention: 128 + the signal (130 Ctrl-C, 143 SIGTERM).
        raise typer.Exit(128 + (received[0] if received else signal.SIGINT))
    err.print(f"wrote {run_dir / 'results.h5'}", highlight=False)


def _print_values(problem: Problem, values: np.ndarray, stderr: np.ndarray) -> None:
    what = {
        "lowest": "lowest eigenvalues",
        "smallest-singular": "smallest singular values",
        "largest-singular": "largest singular values",
    }[problem.wanted]
    table = Table(title=f"{problem.name}: {what} ({problem.modes})")
    table.add_column("mode", justify="right")
    column = "singular value" if problem.singular_values_wanted else "eigenvalue"
    table.add_column(column, justify="right")
    table.add_column("std. error", justify="right")
    for i, (v, s) in enumerate(zip(values, stderr)):
        table.add_row(str(i), f"{v:.10g}", f"{s:.2g}")
    out.print(table)


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
    try:
        run = load_run(run_dir)
        settings = run.compiled.settings
        dim = max(len(run.problem.coordinates), len(run.problem.input_coordinates))
        _bound(max_memory, torch.device("cpu")).require(
            f"the evaluation sample (--samples {samples})",
            readout_bytes(samples, dim, run.problem.modes, settings.hidden),
            "lower --samples",
        )
        ref = read_reference(against) if against is not None else None
        report = evaluate(run, samples=samples, against=ref)
    except (RunFileError, ProblemError, ValueError) as exc:
        raise _fail(str(exc)) from None
    if ref is not None and ref.problem_yaml != run.problem.source_text:
        err.print(
            f"warning: {against} was computed from a different problem file than this run's",
            highlight=False,
        )
    if as_json:
        typer.echo(json.dumps(_json_safe(report)))
        return
    table = Table(title=f"{report['problem']}: learned vs reference")
    for col in ("mode", "learned", "std. error", "reference", "rel. error"):
        table.add_column(col, justify="right")
    if report["reference_reliable"] is not None and not all(report["reference_reliable"]):
        err.print(
            "warning: the grid reference flags some of these values as unreliable",
            highlight=False,
        )
    if report["reference_error"] is not None:
        out.print(
            f"reference: {against} (grid), its own estimated relative error up to "
            f"{max(report['reference_error']):.1e}",
            highlight=False,
        )
    keys = ("eigenvalues", "stderr", "reference", "relative_errors")
    if report.get("kind") == "singular":  # mode order, the largest singular value first
        keys = (
            "singular_values",
            "singular_value_stderr",
            "reference_singular_values",
            "singular_value_relative_errors",
        )
    for i, (v, s, r, e) in enumerate(zip(*(report[k] for k in keys))):
        table.add_row(str(i), f"{v:.10g}", f"{s:.2g}", f"{r:.10g}", f"{e:.2e}")
    out.print(table)
    out.print(
        f"max relative error {report['max_relative_error']:.3e}, "
        f"mean {report['mean_relative_error']:.3e}, "
        f"orthogonality {report['orthogonality']:.3e}",
        highlight=False,
    )
    if report["native_relative_errors"] is not None:
        native = np.asarray(report["native_relative_errors"])
        out.print(
            f"{report['method']}'s own estimates (no Rayleigh-Ritz): max relative error "
            f"{np.nanmax(native):.3e}, mean {np.nanmean(native):.3e}",
            highlight=False,
        )
    if report["subspace_distance"] is not None:
        per_level = ", ".join(f"{d:.2e}" for d in report["subspace_distances"])
        out.print(
            f"subspace distance (mean over levels) {report['subspace_distance']:.3e} [{per_level}]",
            highlight=False,
        )
        out.print(
            f"subspace distance (whole learned span) {report['subspace_distance_all']:.3e}",
            highlight=False,
        )
        out.print(
            f"angle distance (mean over modes, radians) {report['angle_distance']:.3e}",
            highlight=False,
        )
    for side in ("left", "right"):
        distance = report.get(f"{side}_subspace_distance")
        ortho = report.get(f"{side}_orthogonality")
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


@app.command("export")
def export_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Run folder (or its results.h5).")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Output .h5")] = None,
    grid: Annotated[int, typer.Option(min=2, help="Points per coordinate.")] = 64,
    max_memory: MaxMemory = None,
) -> None:
    """Sample the learned eigenfunctions on a regular grid and write them to HDF5."""
    try:
        run = load_run(run_dir)
    except (RunFileError, ProblemError, ValueError) as exc:
        raise _fail(str(exc)) from None
    sides = [len(run.problem.coordinates)]
    if run.problem.singular_values_wanted:  # left and right functions
        sides.append(len(run.problem.input_coordinates) or sides[0])
    if run.problem.wanted == "smallest-singular":  # left and right on the same grid
        sides = [sides[0], sides[0]]
    bound = _bound(max_memory, torch.device("cpu"))
    settings = run.compiled.settings
    modes = run.problem.modes
    points = min(grid ** max(sides), 65536)  # export_grid's chunk
    jets = run.problem.wanted == "smallest-singular"  # left functions u = A v / s
    workspace = network_workspace(points, max(sides), settings.hidden, jets)
    room = bound.bound.bytes - workspace
    fits = room >= export_bytes(sides, 2, modes)
    bound.require(
        f"the export on a {grid}^{max(sides)} grid ({modes} modes)",
        export_bytes(sides, grid, modes) + workspace,
        f"use --grid {largest_grid(sides, modes, room)} or less" if fits else "raise it",
    )
    base = run_dir if run_dir.is_dir() else run_dir.parent
    target = output or base / "eigenfunctions.h5"
    try:
        _write_export(run, grid, target)
    except RunFileError as exc:
        raise _fail(str(exc)) from None
    err.print(
        f"wrote {target} ({run.problem.modes} modes on {grid}^{len(run.problem.coordinates)} "
        "points"
        + (", and the right functions" if run.problem.singular_values_wanted else "")
        + ")",
        highlight=False,
    )


def _write_export(run: Run, grid: int, target: Path) -> None:
    attrs = {
        "problem_name": run.problem.name,
        "nsvd_version": __version__,
        "normalization": "unit L2 norm over the domain",
    }
    if run.problem.is_singular:
        sides, values = export_singular(run, grid)
        attrs["normalization"] = "unit L2 norm in each side's measure"
        write_export(
            target,
            values,  # in the functions' (mode) order, largest first
            *sides["left"],
            attrs,
            groups={"right_functions": sides["right"]},
            datasets={"singular_values": values},
        )
    elif run.problem.wanted == "smallest-singular":
        # Same layout as an integral operator's: left functions u = A v / s first.
        axes, right = export_grid(run, grid)
        _, left = export_grid(run, grid, functions=left_functions)
        attrs["normalization"] = "unit L2 norm over the domain"
        write_export(
            target,
            run.results.eigenvalues,
            axes,
            left,
            attrs,
            groups={"right_functions": (axes, right)},
            datasets={"singular_values": np.asarray(run.results.eigenvalues)},
        )
    else:
        axes, values = export_grid(run, grid)
        write_export(target, run.results.eigenvalues, axes, values, attrs)


@app.command("reference")
def reference_cmd(
    problem_file: Annotated[Path, typer.Argument(help="Problem file (YAML), d <= 3.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Output .h5")] = None,
    grid: Annotated[
        int | None,
        typer.Option(min=16, help="Points per axis of the finest grid (default by dimension)."),
    ] = None,
) -> None:
    """Reference values on grids (finite differences; quadrature for integral operators),
    with an error estimate from three resolutions."""
    problem = _load(problem_file)
    try:
        ref = grid_reference(problem, grid)
    except ValueError as exc:
        raise _fail(f"{problem_file}: {exc}", 2) from None
    target = output or problem_file.with_suffix(".reference.h5")
    try:
        write_reference(target, ref)
    except RunFileError as exc:
        raise _fail(str(exc)) from None
    table = Table(title=f"{problem.name}: grid reference ({ref.attrs['points']} points per axis)")
    value = "singular value" if problem.singular_values_wanted else "eigenvalue"
    for col in ("index", value, "est. error", "observed order"):
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
            + ("a discontinuous kernel?" if problem.is_singular else "a singular potential?")
            + "): their error is not estimated; use a finer --grid or a closed form",
            highlight=False,
        )
    err.print(f"wrote {target} ({ref.attrs['seconds']:.1f} s)", highlight=False)


def _show_warning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    # File warnings (a damaged checkpoint passed over) as one plain line, not a source line.
    err.print(f"warning: {message}", highlight=False)


def main() -> None:
    warnings.showwarning = _show_warning
    app()


if __name__ == "__main__":
    main()
