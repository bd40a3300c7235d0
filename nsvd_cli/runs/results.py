"""A finished run: reload it, evaluate it against its reference, sample its functions on
grids for export; and a problem's deterministic reference. No printing: the CLI does that.
Every step asks the run's kind (``kinds``)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nsvd_cli import __version__
from nsvd_cli.errors import NsvdError, RunFileError, UsageError
from nsvd_cli.files import RESULTS_NAME, GridReference, read_results
from nsvd_cli.kinds import Evaluation, FunctionSide, Run, kind_of
from nsvd_cli.kinds.records import first_line
from nsvd_cli.spec import Problem, ProblemError, parse_problem
from nsvd_cli.spec.medium import weight_expr
from nsvd_cli.training import Settings

EXPORT_CHUNK = 65536  # points per network call of an export


# H u = lambda rho u: the functions are orthonormal in rho's inner product.
WEIGHTED_NORM = "unit norm in the weighted inner product (integral of u^2 * weight)"


def load_run(run_dir: Path) -> Run:
    """A run folder (or its results.h5) with its networks rebuilt."""
    path = run_dir / RESULTS_NAME if run_dir.is_dir() else run_dir
    results = read_results(path)
    try:
        problem = parse_problem(results.problem_yaml, str(path) + ":/problem/yaml")
    except ProblemError as exc:  # the run's file, not the user's: a damaged run (exit 1)
        raise RunFileError(str(exc)) from exc
    try:
        settings = Settings.from_dict(results.settings)
        return kind_of(problem).load(problem, settings, results)
    except (RuntimeError, TypeError, ValueError, KeyError) as exc:
        raise RunFileError(
            f"{path}: its stored network and settings do not fit its problem "
            f"({first_line(exc)}); was the file edited or written by another program?"
        ) from exc


def evaluate(run: Run, samples: int = 1 << 16, against: GridReference | None = None) -> Evaluation:
    """The comparison of ``nsvd eval``: errors, orthogonality and subspace distances, against
    the problem's closed form or, with ``against``, a grid reference's values."""
    if against is not None:
        _check_reference_fits(run, against)
    try:
        return run.kind.evaluate(run, samples, against)
    except ValueError as exc:  # e.g. a closed form that is not finite for one of the states
        raise NsvdError(str(exc)) from exc


def _check_reference_fits(run: Run, against: GridReference) -> None:
    """A reference of another problem (another name or dimension) is refused: its values
    would be compared with this run's as if they were its own."""
    try:
        theirs = parse_problem(against.problem_yaml, "the reference's /problem/yaml")
    except ProblemError as exc:
        raise RunFileError(f"the reference's stored problem does not validate: {exc}") from exc
    ours = run.problem
    if theirs.name != ours.name or len(theirs.coordinates) != len(ours.coordinates):
        raise UsageError(
            f"--against: the reference was computed for problem {theirs.name!r} "
            f"({len(theirs.coordinates)}-D), this run solved {ours.name!r} "
            f"({len(ours.coordinates)}-D)"
        )


def grid_reference(
    problem: Problem, points: int | None = None, extra: int = 4, method: str = "auto"
) -> GridReference:
    """The deterministic reference of ``nsvd reference`` (d <= 3): ``modes + extra`` values
    with their estimated errors (finite elements or differences, or quadrature for a
    kernel)."""
    return kind_of(problem).reference(problem, points, extra, method)


@dataclass(frozen=True)
class Export:
    """What an export holds, before it is written in one format or another."""

    eigenvalues: np.ndarray  # the file's /eigenvalues
    # "eigenfunctions" first, then a singular problem's "right_functions": (axes, values)
    functions: dict[str, tuple[dict[str, np.ndarray], np.ndarray]]
    attrs: dict[str, Any]
    singular_values: np.ndarray | None = None  # in mode order


Window = dict[str, tuple[float, float]]


def parse_window(text: str) -> Window:
    """``"x=-4:4,y=-2:2"`` -> {"x": (-4.0, 4.0), "y": (-2.0, 2.0)}; a ValueError says what
    is wrong with it."""
    window: Window = {}
    for part in (p.strip() for p in text.split(",")):
        name, sep, bounds = part.partition("=")
        lo_text, colon, hi_text = bounds.partition(":")
        try:
            lo, hi = float(lo_text), float(hi_text)
        except ValueError:
            lo = hi = math.nan
        if not (sep and colon and name.strip()) or not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"{part!r} is not NAME=LOW:HIGH (e.g. x=-4:4,y=-2:2)")
        if not lo < hi:
            raise ValueError(f"{part!r}: the low end must be below the high end")
        window[name.strip()] = (lo, hi)
    return window


def windowed(sides: list[FunctionSide], window: Window) -> list[FunctionSide]:
    """The families with the named coordinates' ranges replaced by ``window``'s; a name that
    no family has is an error."""
    known = {c for side in sides for c in side.coordinates}
    unknown = sorted(set(window) - known)
    if unknown:
        names = ", ".join(sorted(known))
        raise ValueError(f"{', '.join(unknown)}: not a coordinate (known: {names})")
    out = []
    for side in sides:
        ranges = [window.get(c, (a, b)) for c, a, b in zip(side.coordinates, side.lo, side.hi)]
        lo, hi = tuple(r[0] for r in ranges), tuple(r[1] for r in ranges)
        out.append(dataclasses.replace(side, lo=lo, hi=hi))
    return out


def side_on_grid(
    side: FunctionSide, points: int, modes: int, chunk: int = EXPORT_CHUNK
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One family of learned functions on a regular grid over its window: values of shape
    (modes, N, ..., N), zero outside a region."""
    axes = {
        name: np.linspace(lo, hi, points)
        for name, lo, hi in zip(side.coordinates, side.lo, side.hi)
    }
    mesh = np.meshgrid(*axes.values(), indexing="ij")
    pts = torch.from_numpy(np.stack([m.ravel() for m in mesh], axis=1))
    values = torch.cat([side.functions(pts[i : i + chunk]) for i in range(0, len(pts), chunk)])
    if side.inside is not None:
        values = values * (side.inside(pts) > 0).unsqueeze(-1)
    shape = (modes,) + tuple(len(a) for a in axes.values())
    return axes, values.T.reshape(shape).numpy()


# Which file group holds which side: the left functions (or the eigenfunctions) under the
# contract's /eigenfunctions, a singular problem's right functions beside them.
EXPORT_GROUPS: dict[str, str] = {
    "eigen": "eigenfunctions",
    "left": "eigenfunctions",
    "right": "right_functions",
}
Grid = tuple[dict[str, np.ndarray], np.ndarray]  # axes by coordinate, values (modes, N, ...)


def export(run: Run, points: int, window: Window | None = None) -> Export:
    """Every family of the run's learned functions on a grid of ``points`` per axis, over
    its export window or, for the coordinates ``window`` names, over that."""
    modes = run.problem.modes
    sides = run.kind.sides(run)
    if window:
        sides = windowed(sides, window)
    grids: dict[str, Grid] = {EXPORT_GROUPS[s.name]: side_on_grid(s, points, modes) for s in sides}
    functions: dict[str, Grid] = {
        name: grids[name] for name in ("eigenfunctions", "right_functions") if name in grids
    }
    attrs = {
        "problem_name": run.problem.name,
        "nsvd_version": __version__,
        "normalization": (
            WEIGHTED_NORM if weight_expr(run.problem) is not None else run.kind.function_norm
        ),
    }
    singular = run.results.singular
    if singular is None:
        return Export(run.results.eigenvalues, functions, attrs)
    values = np.asarray(singular.values)  # mode order
    return Export(values, functions, attrs, singular_values=values)
