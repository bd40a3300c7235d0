"""The medium of a differential operator, read from the problem file: the kinetic factor,
the diffusion A(x) of -div(A grad u) (``operator.diffusion``: a scalar or a symmetric
matrix of expressions) and the weight rho(x) of H u = lambda rho u (``operator.weight``).

``kinetic`` and a constant scalar ``diffusion`` are the same thing (a factor of
-Laplacian); a diffusion that varies in space, or is a matrix, is a field, and the factor is
then 1. A weight of 1 is no weight.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, TypeAlias

import sympy as sp

from nsvd_cli.spec.scope import ExpressionScope

if TYPE_CHECKING:
    from nsvd_cli.spec.models import Problem

DiffusionKind = Literal["constant", "scalar", "matrix"]
Diffusion: TypeAlias = "sp.Expr | list[list[sp.Expr]]"


def diffusion_kind(problem: Problem) -> DiffusionKind:
    """``constant`` (kinetic, or a constant scalar diffusion), ``scalar`` (a field k(x)) or
    ``matrix`` (a field A(x), constant or not)."""
    diffusion = problem.operator.diffusion
    if diffusion is None or problem.operator.langevin is not None:
        return "constant"
    if isinstance(diffusion, list):
        return "matrix"
    expr = problem.space_expr("diffusion", diffusion)
    names = {str(s) for s in expr.free_symbols}
    return "scalar" if names & set(problem.coordinates) else "constant"


def kinetic_factor(problem: Problem, scope: ExpressionScope) -> float:
    """The constant factor of the kinetic term: ``kinetic``, a Langevin temperature, a
    constant scalar ``diffusion``, or 1 where the diffusion is a field."""
    operator = problem.operator
    if operator.langevin is not None:
        return scope.kinetic(operator.langevin.temperature)
    if operator.diffusion is None:
        return scope.kinetic(operator.kinetic)
    if diffusion_kind(problem) != "constant":
        return 1.0
    assert not isinstance(operator.diffusion, list)
    return scope.kinetic(operator.diffusion)


def diffusion_expr(problem: Problem) -> Diffusion | None:
    """The diffusion field over coordinates and parameters: k(x), or A(x) as rows of
    expressions; None where it is the constant ``kinetic_value``."""
    kind = diffusion_kind(problem)
    diffusion = problem.operator.diffusion
    if kind == "constant" or diffusion is None:
        return None
    if isinstance(diffusion, list):
        return [
            [problem.space_expr(f"diffusion[{i}][{j}]", a) for j, a in enumerate(row)]
            for i, row in enumerate(diffusion)
        ]
    return problem.space_expr("diffusion", diffusion)


def diffusion_gradient(problem: Problem) -> list[sp.Expr] | None:
    """grad k of a scalar diffusion field (the strong form's first-order term), else None."""
    k = diffusion_expr(problem)
    if k is None or isinstance(k, list):
        return None
    return [sp.diff(k, s) for s in problem.symbols()]


def weight_expr(problem: Problem) -> sp.Expr | None:
    """rho(x), or None for no weight (absent, or 1)."""
    weight = problem.operator.weight
    if weight is None or problem.operator.langevin is not None:
        return None
    expr = problem.space_expr("weight", weight)
    return None if sp.simplify(expr - 1) == 0 else expr

