"""The medium of a differential operator, read from the problem file: the kinetic factor,
the diffusion A(x) of -div(A grad u) (``operator.diffusion``: a scalar or a symmetric
matrix of expressions) and the weight rho(x) of H u = lambda rho u (``operator.weight``).

``kinetic`` and a constant scalar ``diffusion`` are the same thing (a factor of
-Laplacian); a diffusion that varies in space, or is a matrix, is a field, and the factor is
then 1. A weight of 1 is no weight.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, TypeAlias, cast

import numpy as np
import sympy as sp

from nsvd_cli.spec.scope import ExpressionScope

if TYPE_CHECKING:
    from nsvd_cli.spec.models import Problem

DiffusionKind = Literal["constant", "scalar", "jump", "matrix"]
Diffusion: TypeAlias = "sp.Expr | list[list[sp.Expr]]"
# The functions through which a diffusion may jump. Its strong form would then miss the
# flux condition at the jump (a delta in k' that SymPy's derivative of a Piecewise drops),
# so it trains and reads out in the weak form only, as a matrix does. Continuous uses of
# them (a Piecewise whose pieces meet) are classed with the jumps: the weak form is right
# for both.
JUMPING = (sp.Piecewise, sp.Heaviside, sp.sign, sp.floor, sp.ceiling)


def diffusion_kind(problem: Problem) -> DiffusionKind:
    """``constant`` (kinetic, or a constant scalar diffusion), ``scalar`` (a field k(x)),
    ``jump`` (a field k(x) written with a function that may jump: :data:`JUMPING`) or
    ``matrix`` (a field A(x), constant or not)."""
    diffusion = problem.operator.diffusion
    if diffusion is None or problem.operator.langevin is not None:
        return "constant"
    if isinstance(diffusion, list):
        return "matrix"
    expr = problem.space_expr("diffusion", diffusion)
    coordinates = set(problem.coordinates)
    if not _names(expr) & coordinates:
        return "constant"
    return "jump" if may_jump(expr, coordinates) else "scalar"


def may_jump(expr: sp.Expr, coordinates: set[str]) -> bool:
    """Whether ``expr`` calls a :data:`JUMPING` function of the named coordinates."""
    return any(_names(part) & coordinates for part in expr.atoms(*JUMPING))


def _names(expr: sp.Basic) -> set[str]:
    return {str(s) for s in expr.free_symbols}


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
    """grad k of a scalar diffusion field (the strong form's first-order term), else None
    (also for one that may jump: it has no strong form here)."""
    k = diffusion_expr(problem)
    if k is None or isinstance(k, list) or diffusion_kind(problem) == "jump":
        return None
    return [sp.diff(k, s) for s in problem.symbols()]


def weight_expr(problem: Problem) -> sp.Expr | None:
    """rho(x), or None for no weight (absent, or 1)."""
    weight = problem.operator.weight
    if weight is None or problem.operator.langevin is not None:
        return None
    expr = problem.space_expr("weight", weight)
    return None if sp.simplify(expr - 1) == 0 else expr



def jump_points(problem: Problem) -> tuple[float, ...]:
    """Where a 1-D problem's diffusion, potential or weight may jump, in ascending order: the
    real roots of its Piecewise conditions and of its Heaviside and sign arguments, where
    these are polynomials in the coordinate (a read-out's quadrature splits its panels
    there: one Gauss rule across a jump is exact only to about 1e-4). Empty in more
    dimensions, for integral operators, and where no root is known."""
    if problem.is_singular or len(problem.coordinates) != 1:
        return ()
    diffusion = diffusion_expr(problem)
    scalar = None if isinstance(diffusion, list) else diffusion
    return _jumps(problem, [problem.potential_expr(), weight_expr(problem), scalar])


def has_switches(problem: Problem) -> bool:
    """Whether the diffusion, potential or weight calls a :data:`JUMPING` function of the
    coordinates (it may jump somewhere)."""
    if problem.is_singular:
        return False
    coordinates = set(problem.coordinates)
    diffusion = diffusion_expr(problem)
    parts = diffusion if isinstance(diffusion, list) else [[diffusion]]
    exprs = [problem.potential_expr(), weight_expr(problem), *(e for row in parts for e in row)]
    return any(e is not None and may_jump(e, coordinates) for e in exprs)


def kink_points(problem: Problem) -> tuple[float, ...]:
    """Where a 1-D problem's eigenfunctions have kinks: the jumps of its diffusion (u and
    the flux k u' are continuous there, so u' jumps). A jump of V or rho leaves u' whole."""
    if problem.is_singular or len(problem.coordinates) != 1:
        return ()
    if diffusion_kind(problem) != "jump":
        return ()
    return _jumps(problem, [cast(sp.Expr, diffusion_expr(problem))])


def _jumps(problem: Problem, exprs: list[sp.Expr | None]) -> tuple[float, ...]:
    x = problem.symbols()[0]
    values = problem.parameter_values()
    roots: set[float] = set()
    for expr in exprs:
        if expr is None:
            continue
        bound = expr.subs({s: values[str(s)] for s in expr.free_symbols if str(s) in values})
        for switch in _switches(bound):
            roots |= _real_roots(switch, x)
    return tuple(sorted(roots))


def _switches(expr: sp.Expr) -> list[sp.Expr]:
    """The expressions whose sign decides a jump: each Piecewise condition's lhs - rhs, each
    Heaviside or sign argument."""
    found: list[sp.Expr] = []
    for part in expr.atoms(sp.Piecewise):
        for _, condition in part.args:
            found += [r.lhs - r.rhs for r in condition.atoms(sp.core.relational.Relational)]
    found += [part.args[0] for part in expr.atoms(sp.Heaviside, sp.sign)]
    return found


def _real_roots(expr: sp.Expr, x: sp.Symbol) -> set[float]:
    if expr.free_symbols - {x} or not expr.free_symbols or not expr.is_polynomial(x):
        return set()
    coefficients = [float(c) for c in sp.Poly(expr, x).all_coeffs()]
    return {float(r.real) for r in np.roots(coefficients) if abs(r.imag) < 1e-12}
