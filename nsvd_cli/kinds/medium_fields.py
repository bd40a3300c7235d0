"""The medium of a differential problem as torch fields (``numerics/media.py``), its checks
on samples of the domain, and the Weyl estimate that counts with it.

A diffusion must be positive (definite) and a weight positive wherever the domain is
sampled; either failing is a located error at its key, with a point where it fails.
"""

from __future__ import annotations

import torch

from nsvd_cli.expr import compile_torch
from nsvd_cli.numerics import weyl as analysis
from nsvd_cli.numerics.media import Field, Medium, MediumValues, effective_kappa
from nsvd_cli.spec.load import Problem, located_error
from nsvd_cli.spec.medium import diffusion_expr, diffusion_gradient, diffusion_kind, weight_expr


def compile_medium(problem: Problem) -> Medium:
    """The diffusion field (with its gradient when scalar) and the weight field; None where
    constant (the kinetic factor carries a constant diffusion)."""
    symbols, values = problem.symbols(), problem.parameter_values()
    diffusion = diffusion_expr(problem)
    gradient = diffusion_gradient(problem)
    weight = weight_expr(problem)
    field: Field | None = None
    matrix = isinstance(diffusion, list)
    if isinstance(diffusion, list):
        entries = [[compile_torch(a, symbols, values) for a in row] for row in diffusion]

        def stacked(x: torch.Tensor) -> torch.Tensor:
            return torch.stack([torch.stack([a(x) for a in row], -1) for row in entries], -2)

        field = stacked
    elif diffusion is not None:
        field = compile_torch(diffusion, symbols, values)
    grad = None
    if gradient is not None:
        parts = [compile_torch(g, symbols, values) for g in gradient]

        def grad(x: torch.Tensor) -> torch.Tensor:
            return torch.stack([p(x) for p in parts], -1)

    rho = None if weight is None else compile_torch(weight, symbols, values)
    return Medium(field, grad, rho, matrix, jumps=diffusion_kind(problem) == "jump")


def checked_values(problem: Problem, medium: Medium, points: torch.Tensor) -> MediumValues:
    """The medium at ``points`` of the domain, after checking that the diffusion is positive
    (definite) and the weight positive at every point where they are finite."""
    values = medium.values(points)
    if values.diffusion is not None:
        lowest = (
            torch.linalg.eigvalsh(values.diffusion)[:, 0] if values.matrix else values.diffusion
        )
        what = "positive definite (its smallest eigenvalue" if values.matrix else "> 0 (it"
        _check_positive(problem, ("operator", "diffusion"), lowest, points, what)
    if values.weight is not None:
        _check_positive(problem, ("operator", "weight"), values.weight, points, "> 0 (it")
    return values


def _check_positive(
    problem: Problem, key: tuple[str, ...], lowest: torch.Tensor, points: torch.Tensor,
    what: str,
) -> None:
    # -inf (an overflowing 1 - x**2 on a huge box) is no more positive than -1; NaN is
    # left to the potential checks.
    bad = ~torch.isnan(lowest) & (lowest <= 0)
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0, 0])
        at = ", ".join(f"{c} = {float(v):.4g}" for c, v in zip(problem.coordinates, points[i]))
        raise located_error(
            problem, key,
            f"must be {what} is {float(lowest[i]):.4g} at {at}) everywhere in the domain",
        )


def weyl_estimate(
    problem: Problem, potential: analysis.Field, kappa: float, points: torch.Tensor,
    log_weights: torch.Tensor,
) -> analysis.SpectrumEstimate:
    """The Weyl estimate of the problem's spectrum, with its medium (checked on ``points``
    first): the local det(kappa A)^{1/d} / rho and V / rho (``media.effective_kappa``)."""
    medium = compile_medium(problem)
    values = checked_values(problem, medium, points)
    d = len(problem.coordinates)
    local = effective_kappa(values, kappa, d)
    return analysis.weyl_estimate(
        potential, local, d, problem.modes, points, log_weights, values.weight
    )
