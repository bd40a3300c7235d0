"""The overdamped Langevin generator as a Schrödinger operator (the ground-state transform).

``L = T Laplacian - grad U . grad`` is self-adjoint in L^2(pi), pi = exp(-U / T), and
``-L >= 0`` with the stationary density as its null state. With ``psi = phi exp(-U / 2T)``
(an isometry from L^2(pi) onto L^2(dx)),

    exp(-U / 2T) (-L) exp(U / 2T) = -T Laplacian + V,   V = |grad U|^2 / (4 T) - Laplacian(U) / 2,

so the relaxation rates of L (the eigenvalues of -L, ascending from 0) are the lowest
eigenvalues of a Schrödinger operator with kinetic coefficient T, whose ground state is
``exp(-U / 2T)`` exactly, and an eigenfunction ``phi`` of L is ``psi exp(U / 2T)``.
Everything downstream (sampler, shift, read-out, intervals, grid reference) then sees an
ordinary whole-space Schrödinger problem. Pure SymPy: no files, no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sympy as sp

if TYPE_CHECKING:
    from nsvd_cli.spec.models import Problem


def ground_state_potential(u: sp.Expr, temperature: float, coordinates: list[sp.Symbol]) -> sp.Expr:
    """V = |grad U|^2 / (4 T) - Laplacian(U) / 2."""
    t = sp.nsimplify(temperature)
    grad = [sp.diff(u, x) for x in coordinates]
    laplacian = sum((sp.diff(u, x, 2) for x in coordinates), sp.Integer(0))
    return sum((g * g for g in grad), sp.Integer(0)) / (4 * t) - laplacian / 2


def symmetrised(phi: sp.Expr, u: sp.Expr, temperature: float) -> sp.Expr:
    """An eigenfunction phi of L as the Schrödinger operator's: phi exp(-U / 2T)."""
    return phi * sp.exp(-u / (2 * sp.nsimplify(temperature)))


def reflecting_alpha(problem: Problem) -> list[sp.Expr] | None:
    """grad U / 2T for a Langevin generator with reflecting walls (``boundary: neumann``):
    d phi / dn = 0 on phi is d psi / dn + (dU/dn / 2T) psi = 0 on psi = phi exp(-U / 2T), a
    Robin condition whose alpha at a wall point with outward normal n is this . n. None
    for any other problem."""
    langevin = problem.operator.langevin
    if langevin is None or problem.walls() != "neumann":
        return None
    u = problem.space_expr("langevin-potential", langevin.potential)
    t = sp.nsimplify(problem.kinetic_value())
    return [sp.diff(u, x) / (2 * t) for x in problem.symbols()]
