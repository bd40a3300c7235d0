"""The finite-element reference of a differential problem (``nsvd reference``, d <= 3), and
the choice between it and the finite-difference one.

Finite elements take everything the eigen and Neumann kinds train: a diffusion field or
matrix, a weight, Dirichlet, Neumann and Robin walls per box face, one condition on a
planar region's curved edge, and Langevin generators (through the ground-state transform
the kinds train, reflecting walls as its Robin condition). Finite differences remain for
drifts (singular values of a non-symmetric operator), for regions in 3 dimensions (a
staircase edge), for constant-coefficient boxes in 1 and 2 dimensions with Dirichlet
walls or Neumann axes, where they are about 2x faster at equal accuracy, and for
constant-coefficient windows of whole space (hydrogen-3d: 309 s by differences, over
10 CPU minutes by Q2 elements (stopped there)). On a 3-D box Q2 elements are about 10x
faster than the 13-point stencil at equal accuracy (docs/reference.md measures both).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import sympy as sp
import torch

from nsvd_cli.expr import compile_torch
from nsvd_cli.files import GridReference
from nsvd_cli.kinds.grid_reference import (
    WINDOW_GROWTH,
    compiled_window,
    grid_reference,
    grown_window,
    numpy_field,
    with_window_error,
)
from nsvd_cli.kinds.records import reference_record
from nsvd_cli.kinds.robin import wall_alpha
from nsvd_cli.kinds.schrodinger_checks import region_field
from nsvd_cli.numerics.meshes import LevelSet, ladder_cells
from nsvd_cli.references import fem
from nsvd_cli.spec import Problem, RegionDomain
from nsvd_cli.spec.medium import diffusion_kind, weight_expr

# Elements across the longest side of the finest mesh (quadratic: 2x as many nodes). In 3-D
# 24 cells take ~20 s for ~1e-4; 16 cells give 4e-4 but a pre-asymptotic, 30x pessimistic
# estimate.
DEFAULT_CELLS = {1: 256, 2: 128, 3: 24}
METHOD_NAMES = ("auto", "fem", "grid")


def _level_set(problem: Problem) -> LevelSet:
    region = problem.region_expr()
    assert region is not None
    symbols, values = problem.symbols(), problem.parameter_values()
    parts = [compile_torch(sp.diff(region, x), symbols, values) for x in symbols]

    def gradient(x: torch.Tensor) -> torch.Tensor:
        return torch.stack([p(x) * torch.ones_like(x[:, 0]) for p in parts], -1)

    return LevelSet(numpy_field(region_field(problem)), numpy_field(gradient))


def _region_alpha(problem: Problem) -> fem.WallField | None:
    assert isinstance(problem.domain, RegionDomain)
    boundary = problem.domain.boundary
    if not isinstance(boundary, dict):
        return None
    alpha = problem.constant_value(boundary["robin"])
    return lambda x, normals: np.full(len(x), alpha)


def _wall_field(problem: Problem) -> fem.WallField | None:
    if isinstance(problem.domain, RegionDomain):
        return _region_alpha(problem)
    alpha_of = wall_alpha(problem)
    if alpha_of is None:
        return None
    found = alpha_of

    def call(x: np.ndarray, normals: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return found(torch.from_numpy(x.copy()), torch.from_numpy(normals.copy())).numpy()

    return call


def _optional(field: Callable[[torch.Tensor], torch.Tensor] | None) -> fem.PointField | None:
    return None if field is None else numpy_field(field)


def fem_problem(problem: Problem) -> tuple[fem.FemProblem, list[float], list[float], bool]:
    """The problem as finite elements see it, with the box it is solved on and whether
    that box is a window cut from whole space."""
    if problem.drift_exprs() is not None:
        raise ValueError(
            "the finite-element reference is for self-adjoint operators; a drift's singular "
            "values come from the finite-difference one (--method grid)"
        )
    settings, compiled, lo, hi = compiled_window(problem)
    medium = compiled.operator.medium
    region = isinstance(problem.domain, RegionDomain)
    faces = problem.box_faces() or []
    spec = fem.FemProblem(
        kinetic=compiled.operator.kinetic,
        potential=numpy_field(compiled.operator.potential),
        lo=tuple(lo),
        hi=tuple(hi),
        diffusion=_optional(medium.diffusion),
        weight=_optional(medium.weight),
        region=_level_set(problem) if region else None,
        dirichlet_faces=tuple((low == "dirichlet", high == "dirichlet") for low, high in faces),
        region_dirichlet=problem.walls() == "dirichlet",
        alpha=_wall_field(problem),
        breaks=compiled.operator.jumps_at,
    )
    return spec, lo, hi, settings.sampler.domain == "whole-space"


def fem_reference(problem: Problem, cells: int | None, extra: int) -> GridReference:
    """The finite-element spectrum of a problem (d <= 3), ``modes + extra`` values."""
    dim = len(problem.coordinates)
    if dim > 3:
        raise ValueError(f"{dim} coordinates: finite elements take d <= 3")
    spec, lo, hi, whole_space = fem_problem(problem)
    n = cells or DEFAULT_CELLS[dim]
    started = time.perf_counter()
    spectrum = fem.solve(spec, problem.modes + extra, n)
    window: dict[str, str] = {}
    if whole_space:
        wide_lo, wide_hi = grown_window(lo, hi)
        wide = replace(spec, lo=tuple(wide_lo), hi=tuple(wide_hi))
        middle = 2 * max(2, n // 4)
        wider = fem.solve(wide, problem.modes + extra, round(WINDOW_GROWTH * middle))
        spectrum, cut = with_window_error(spectrum, wider)
        window["window_error"] = json.dumps(cut)
    elements = ("P2, isoparametric on the curved edge" if spec.region is not None
                else "Q2 on tensor cells" if dim > 1 else "P2")
    return reference_record(
        problem,
        spectrum,
        f"finite elements, {elements}, ARPACK shift-invert",
        "eigen",
        started,
        window_lo=json.dumps(list(lo)),
        window_hi=json.dumps(list(hi)),
        cells=json.dumps(ladder_cells(n, spec.region is not None)),
        **window,
    )


def preferred_method(problem: Problem) -> str:
    """``fem`` or ``grid`` for ``--method auto`` (module docstring)."""
    if problem.drift_exprs() is not None:
        return "grid"
    if isinstance(problem.domain, RegionDomain):
        return "fem" if problem.dim == 2 else "grid"
    if problem.dim == 3 and problem.box_faces() is not None:
        return "fem"
    plain = diffusion_kind(problem) == "constant" and weight_expr(problem) is None
    faces = problem.box_faces()
    per_axis = faces is None or all(
        low == high and low in ("dirichlet", "neumann") for low, high in faces
    )
    langevin_walls = problem.operator.langevin is not None and problem.walls() == "neumann"
    return "grid" if plain and per_axis and not langevin_walls else "fem"


def differential_reference(
    problem: Problem, points: int | None, extra: int, method: str
) -> GridReference:
    """The reference of ``method`` (``auto``: :func:`preferred_method`)."""
    chosen = preferred_method(problem) if method == "auto" else method
    if chosen not in REFERENCES:
        raise ValueError(f"unknown reference method {method!r}; choose from {METHOD_NAMES}")
    return REFERENCES[chosen](problem, points, extra)


# The discretisations by --method name (``auto`` picks one of them).
REFERENCES: dict[str, Callable[[Problem, int | None, int], GridReference]] = {
    "fem": fem_reference,
    "grid": grid_reference,
}
