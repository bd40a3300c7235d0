"""The finite-difference reference of a differential problem (``nsvd reference``, d <= 3):
-kappa Laplacian + V (plus a drift's singular values) on a box, a region's staircase or a
window of the whole space, with Dirichlet walls or one Neumann condition per axis."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from nsvd_cli.files import GridReference
from nsvd_cli.kinds.records import reference_record
from nsvd_cli.kinds.schrodinger import CompiledProblem, build, derive_settings
from nsvd_cli.kinds.schrodinger_checks import region_field
from nsvd_cli.references import grid
from nsvd_cli.references.grid import GridSpectrum
from nsvd_cli.spec import Problem, RegionDomain
from nsvd_cli.spec.medium import diffusion_kind, weight_expr
from nsvd_cli.training.settings import Settings

DEFAULT_GRID = {1: 2048, 2: 192, 3: 40}


def _neumann_axes(problem: Problem) -> tuple[bool, ...]:
    """Per coordinate, whether both faces of a box are Neumann walls (the grid reference
    takes one condition per axis)."""
    faces = problem.box_faces()
    if faces is None or problem.walls() in (None, "dirichlet"):
        return ()
    if problem.operator.langevin is not None:
        raise ValueError(
            "reflecting walls of a Langevin generator are a Robin condition on the "
            "transformed functions (alpha = dU/dn / 2T), which the finite-difference "
            "reference does not have; compare with a closed form instead"
        )
    if any(isinstance(face, dict) for pair in faces for face in pair):
        raise ValueError(
            "the finite-difference reference has no Robin walls yet; compare with a closed "
            "form instead"
        )
    if any(low != high for low, high in faces):
        raise ValueError(
            "the finite-difference reference takes one condition per coordinate (both faces "
            "of an axis Dirichlet, or both Neumann); compare with a closed form instead"
        )
    return tuple(low == "neumann" for low, _ in faces)


def compiled_window(
    problem: Problem,
) -> tuple[Settings, CompiledProblem, list[float], list[float]]:
    """The problem's derived settings and compiled operator, and the box a reference
    solves on (``reference_window``)."""
    settings = derive_settings(problem)
    lo, hi = reference_window(settings)
    return settings, build(problem, settings), lo, hi


def reference_window(settings: Settings) -> tuple[list[float], list[float]]:
    """The box a reference solves on: the domain's bounds, or in whole space 1.5x the
    export window (centre +- 6 rms radii of the highest wanted state), with zero walls."""
    if settings.sampler.domain != "whole-space":
        return list(settings.sampler.bounds_lo), list(settings.sampler.bounds_hi)
    export_lo, export_hi = settings.readout.export_lo, settings.readout.export_hi
    centre = [0.5 * (lo + hi) for lo, hi in zip(export_lo, export_hi)]
    lo = [c + 1.5 * (v - c) for c, v in zip(centre, export_lo)]
    hi = [c + 1.5 * (v - c) for c, v in zip(centre, export_hi)]
    return lo, hi


# A whole-space reference is checked on a window this much wider (about its centre).
WINDOW_GROWTH = 1.25


def grown_window(lo: list[float], hi: list[float]) -> tuple[list[float], list[float]]:
    centre = [0.5 * (a + b) for a, b in zip(lo, hi)]
    return (
        [c + WINDOW_GROWTH * (a - c) for c, a in zip(centre, lo)],
        [c + WINDOW_GROWTH * (b - c) for c, b in zip(centre, hi)],
    )


def with_window_error(
    spectrum: GridSpectrum, wider: GridSpectrum
) -> tuple[GridSpectrum, list[float]]:
    """The spectrum's error estimate plus what cutting whole space to its window costs:
    ``wider`` is the same discretisation on the grown window, whose finest level has about
    the spacing of ``spectrum``'s middle one, so their difference is the window's effect
    (a zero wall lifts every value; a window 25% wider lifts it far less, the states
    decaying at least exponentially), up to a discretisation difference that the error
    budget already holds. The three-grid estimate alone cannot see the window: before this,
    Morse's and Poschl-Teller's whole-space references claimed 1e-9 and were 3e-7 and 7e-5
    off (docs/reference.md)."""
    middle = spectrum.levels[1]
    k = min(len(middle), len(wider.eigenvalues))
    window = np.abs(wider.eigenvalues[:k] - middle[:k])
    error = spectrum.error.copy()
    error[:k] += window
    return replace(spectrum, error=error), [float(w) for w in window]


def numpy_field(field: Callable[[torch.Tensor], torch.Tensor]) -> grid.PointField:
    """A torch field as a function of numpy points (float64, no gradients)."""

    def call(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return field(torch.from_numpy(np.ascontiguousarray(x))).numpy()

    return call


def grid_reference(problem: Problem, points: int | None, extra: int) -> GridReference:
    """The finite-difference spectrum of a problem (d <= 3), ``modes + extra`` values."""
    dim = len(problem.coordinates)
    grid.check_dimension(dim)  # before deriving settings, which samples the potential
    if diffusion_kind(problem) != "constant" or weight_expr(problem) is not None:
        raise ValueError(
            "the finite-difference reference has -kappa Laplacian + V only (no diffusion "
            "field, no weight); compare with a closed form instead"
        )
    if isinstance(problem.domain, RegionDomain) and problem.walls() != "dirichlet":
        raise ValueError(
            "the finite-difference reference has free walls on boxes only (a region's "
            "staircase edge has no normal); in 2 dimensions --method fem meshes the edge"
        )
    settings, compiled, lo, hi = compiled_window(problem)
    inside = numpy_field(region_field(problem)) if settings.sampler.domain == "region" else None
    drift = compiled.operator.drift
    spec = grid.GridProblem(
        kinetic=compiled.operator.kinetic,
        potential=numpy_field(compiled.operator.potential),
        lo=tuple(lo),
        hi=tuple(hi),
        inside=inside,
        drift=None if drift is None else numpy_field(drift),
        singular=problem.wanted == "smallest-singular",
        neumann=_neumann_axes(problem),
    )
    n = points or DEFAULT_GRID[dim]
    started = time.perf_counter()
    spectrum = grid.solve(spec, problem.modes + extra, n)
    window: dict[str, str] = {}
    if settings.sampler.domain == "whole-space":
        wide_lo, wide_hi = grown_window(lo, hi)
        wide = replace(spec, lo=tuple(wide_lo), hi=tuple(wide_hi))
        wider = grid.solve(wide, problem.modes + extra, round(WINDOW_GROWTH * spectrum.points[1]))
        spectrum, cut = with_window_error(spectrum, wider)
        window["window_error"] = json.dumps(cut)
    return reference_record(
        problem,
        spectrum,
        "finite differences, 4th order, ARPACK shift-invert"
        + (" on [[0, A], [A^T, 0]] (singular values)" if spec.singular else ""),
        "smallest-singular" if spec.singular else "eigen",
        started,
        window_lo=json.dumps(list(lo)),
        window_hi=json.dumps(list(hi)),
        **window,
    )
