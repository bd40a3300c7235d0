"""What makes a differential problem unusable, found while deriving its settings: a potential
that overflows, is unbounded below or does not confine; a region that is empty or cut by
its bounds. Each is a located error (file, line, key)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from nsvd_cli.expr import compile_torch
from nsvd_cli.numerics import weyl as analysis
from nsvd_cli.spec.load import Problem, ProblemError, located_error


def region_field(problem: Problem) -> analysis.Field:
    region = problem.region_expr()
    assert region is not None
    return compile_torch(region, problem.symbols(), problem.parameter_values())


def domain_bounds(problem: Problem) -> tuple[str, list[float], list[float]]:
    bounds = problem.domain_bounds()
    if bounds is None:
        return "whole-space", [], []
    kind = "region" if problem.region_expr() is not None else "box"
    return kind, [float(lo) for lo, _ in bounds], [float(hi) for _, hi in bounds]


# A tenth of the analysis sample's outer radius (1e4): wider estimated states are not bound.
UNCONFINED_EXTENT = 1e3


_ESTIMATE_HINT = (
    "the potential must be bounded below, grow at infinity in whole space and stay within "
    "float64 where the states live (whole space is sampled at |x| from 1e-4 to 1e4)"
)


def unusable_potential(problem: Problem, what: str) -> ProblemError:
    return located_error(
        problem,
        problem.potential_key,
        f"cannot derive the training settings: {what}; {_ESTIMATE_HINT}",
    )


def check_potential_values(problem: Problem, v: torch.Tensor) -> None:
    if not bool(torch.isfinite(v).any()):
        raise unusable_potential(
            problem, f"it is not a finite number at any of {v.numel()} points of the domain"
        )


FACE_POINTS = 4096


def check_region_bounds(problem: Problem) -> None:
    """For ``nsvd check``: a region domain's bounds enclose its region (else a located
    ``ProblemError``), without deriving the rest of the settings."""
    kind, lo, hi = domain_bounds(problem)
    if kind == "region":
        gen = torch.Generator().manual_seed(0)
        check_region_inside_bounds(problem, region_field(problem), lo, hi, gen)


def check_region_inside_bounds(
    problem: Problem,
    region: Callable[[torch.Tensor], torch.Tensor],
    lo: list[float],
    hi: list[float],
    gen: torch.Generator,
) -> None:
    """The bounds must enclose the region (the contract): where the expression is still > 0
    on a face of the bounds, the problem solved would be the region clipped by that face,
    a different shape with other eigenvalues, and nothing would say so."""
    d = len(lo)
    lo_t = torch.tensor(lo, dtype=torch.float64)
    hi_t = torch.tensor(hi, dtype=torch.float64)
    for axis in range(d):
        for side, value in (("lower", lo[axis]), ("upper", hi[axis])):
            u = torch.rand(FACE_POINTS, d, generator=gen, dtype=torch.float64)
            pts = lo_t + u * (hi_t - lo_t)
            pts[:, axis] = value
            g = region(pts)
            scale = float(g.abs().max()) if g.numel() else 0.0
            outside = g > 1e-9 * max(scale, 1e-300)
            if bool(outside.any()):
                name = problem.coordinates[axis]
                where = ", ".join(
                    f"{c} = {float(x):.4g}"
                    for c, x in zip(problem.coordinates, pts[int(outside.nonzero()[0, 0])])
                )
                raise located_error(
                    problem,
                    ("domain", "bounds", name),
                    f"the region reaches the {side} bound {name} = {value:g} (the expression is "
                    f"> 0 at {where}): the bounds must enclose it; widen them, or write a cut "
                    "into the expression (e.g. Min(..., y) for y > 0)",
                )


def _positive(values: Any) -> bool:
    return all(math.isfinite(v) and v > 0 for v in values)


def check_estimate(problem: Problem, est: analysis.SpectrumEstimate, whole_space: bool) -> None:
    """The Weyl estimate must give finite energies (and, in whole space, positive extents:
    the sampling scales are made from them)."""
    energies = (est.lowest, est.highest)
    if not all(math.isfinite(e) for e in energies):
        raise unusable_potential(
            problem, f"the estimated energies of the wanted states are {est.lowest}, {est.highest}"
        )
    extents = [*est.rms_lowest, *est.rms_highest, *est.axis_rms_lowest, *est.axis_rms_highest]
    if whole_space and not (_positive(extents) and all(math.isfinite(c) for c in est.center)):
        raise unusable_potential(
            problem, "the estimated extent of the wanted states is zero or not finite"
        )
    widest = max(extents)
    if whole_space and widest > UNCONFINED_EXTENT:
        # The semiclassical count then measures the sample's edge, not bound states (a
        # potential that levels off below the wanted energies, e.g. exp(exp(x)) as x -> -oo).
        raise unusable_potential(
            problem,
            f"the wanted states would spread over |x| ~ {widest:.2g}, a good part of the "
            "sampled space: the potential does not confine them",
        )

