"""A finite-element reference spectrum: -div(kinetic A grad u) + V u = lambda rho u for d <= 3.

Quadratic Lagrange elements on the meshes of ``numerics/meshes.py`` (Q2 on a box's tensor cells,
isoparametric P2 triangles on planar regions), assembled with scikit-fem in the energy form

    K = <grad u, kinetic A grad v> + <V u, v> + (sum over free walls of kinetic k alpha <u, v>)
    M = <rho u, v>,

so Neumann walls need nothing (the condition is natural), Robin walls add their surface
term (``alpha`` per wall point and outward normal, as the network's Robin term), and
Dirichlet walls remove their nodes. The lowest eigenvalues of K u = lambda M u come from
ARPACK in shift-invert mode about a point under the spectrum, on three nested meshes; the
error estimate is ``grid.richardson``'s (observed order, clamped, and Richardson's formula),
which for quadratic elements on smooth problems sees order 4 (eigenvalues converge at
twice the order of the energy norm).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse as sps
from scipy.sparse.linalg import eigsh
from skfem import (
    Basis,
    BilinearForm,
    ElementHex2,
    ElementLineP2,
    ElementQuad2,
    ElementTriP2,
    FacetBasis,
    Mesh,
    MeshHex1,
    MeshLine1,
    MeshQuad1,
    MeshTri1,
    MeshTri2,
    asm,
    condense,
)
from skfem.helpers import dot, grad

from nsvd_cli.numerics.meshes import LevelSet, PointField, box_ladder, region_ladder
from nsvd_cli.references.grid import GridSpectrum, richardson

# (M, d) wall points, (M, d) outward normals -> (M,) alpha of du/dn + alpha u = 0.
WallField = Callable[[np.ndarray, np.ndarray], np.ndarray]
# (M, d) points -> (M,) scalar k or (M, d, d) matrix A.
DiffusionField = Callable[[np.ndarray], np.ndarray]

# Quadratic Lagrange elements per mesh: P2 on simplices, Q2 on a box's tensor cells.
ELEMENTS = {
    MeshLine1: ElementLineP2,
    MeshTri1: ElementTriP2,
    MeshTri2: ElementTriP2,
    MeshQuad1: ElementQuad2,
    MeshHex1: ElementHex2,
}
# Products of P2 functions with smooth coefficients: the rule must not limit the order.
QUADRATURE_ORDER = 6
ROUNDOFF = 1e-10


@dataclass(frozen=True)
class FemProblem:
    kinetic: float
    potential: PointField
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    diffusion: DiffusionField | None = None
    weight: PointField | None = None
    region: LevelSet | None = None  # None: the box lo..hi
    # Per axis of a box, whether its (low, high) faces are Dirichlet; a region's one
    # condition is region_dirichlet. Every other wall is free, with alpha from ``alpha``
    # (None: 0 everywhere, Neumann).
    dirichlet_faces: tuple[tuple[bool, bool], ...] = ()
    region_dirichlet: bool = True
    alpha: WallField | None = None
    # 1-D: where a coefficient jumps; every mesh has a node there (an element across a jump
    # loses the order, and with it the Richardson estimate's footing).
    breaks: tuple[float, ...] = ()


def meshes(problem: FemProblem, cells: int) -> list[Mesh]:
    if problem.region is not None:
        return region_ladder(problem.region, problem.lo, problem.hi, cells)
    return box_ladder(problem.lo, problem.hi, cells, problem.breaks)


def _points(x: np.ndarray) -> np.ndarray:
    """skfem's (d, elements, quadrature points) coordinates as (M, d) rows."""
    return x.reshape(x.shape[0], -1).T


def _at(field: PointField, x: np.ndarray) -> np.ndarray:
    return np.asarray(field(_points(x)), dtype=np.float64).reshape(x.shape[1:])


def _stiffness(problem: FemProblem) -> BilinearForm:
    kinetic, diffusion, potential = problem.kinetic, problem.diffusion, problem.potential

    def form(u: Any, v: Any, w: Any) -> Any:
        x = w.x
        values = _at(potential, x)
        if diffusion is None:
            energy = kinetic * dot(grad(u), grad(v))
        else:
            a = np.asarray(diffusion(_points(x)), dtype=np.float64)
            if a.ndim == 1:
                energy = kinetic * a.reshape(x.shape[1:]) * dot(grad(u), grad(v))
            else:
                dim = x.shape[0]
                matrix = np.moveaxis(a, 0, -1).reshape((dim, dim, *x.shape[1:]))
                flux = np.einsum("ij...,j...->i...", matrix, grad(u))
                energy = kinetic * np.einsum("i...,i...->...", flux, grad(v))
        return energy + values * u * v

    return BilinearForm(form)


def _mass(problem: FemProblem) -> BilinearForm:
    weight = problem.weight

    def form(u: Any, v: Any, w: Any) -> Any:
        return u * v if weight is None else _at(weight, w.x) * u * v

    return BilinearForm(form)


def _wall_term(problem: FemProblem, alpha: WallField) -> BilinearForm:
    kinetic, diffusion = problem.kinetic, problem.diffusion

    def form(u: Any, v: Any, w: Any) -> Any:
        x = w.x
        values = np.asarray(alpha(_points(x), _points(w.n)), dtype=np.float64)
        factor = kinetic * values.reshape(x.shape[1:])
        if diffusion is not None:
            factor = factor * _at(diffusion, x)
        return factor * u * v

    return BilinearForm(form)


def _box_facets(mesh: Mesh, problem: FemProblem, dirichlet: bool) -> np.ndarray:
    """The boundary facets of a box on its Dirichlet faces (or on its free ones)."""
    facets = mesh.boundary_facets()
    centres = mesh.p[:, mesh.facets[:, facets]].mean(axis=1)
    keep = np.zeros(len(facets), dtype=bool)
    for axis, (low, high) in enumerate(problem.dirichlet_faces or [(True, True)] * len(problem.lo)):
        span = problem.hi[axis] - problem.lo[axis]
        for side, bound in ((low, problem.lo[axis]), (high, problem.hi[axis])):
            on = np.abs(centres[axis] - bound) <= 1e-9 * span
            keep |= on & (side == dirichlet)
    return np.asarray(facets[keep])


def _wall_facets(mesh: Mesh, problem: FemProblem, dirichlet: bool) -> np.ndarray:
    if problem.region is None:
        return _box_facets(mesh, problem, dirichlet)
    everything = np.asarray(mesh.boundary_facets())
    return everything if problem.region_dirichlet == dirichlet else everything[:0]


def assemble(
    problem: FemProblem, mesh: Mesh
) -> tuple[sps.csr_matrix, sps.csr_matrix, float]:
    """K and M on a mesh, Dirichlet nodes removed, and the least V / rho at the quadrature
    points: K >= that * M for the assembled pencil (its gradient part is >= 0 and the rules'
    weights are positive), apart from negative Robin terms."""
    element = ELEMENTS[type(mesh)]()
    basis = Basis(mesh, element, intorder=QUADRATURE_ORDER)
    points = np.asarray(basis.global_coordinates()).reshape(len(problem.lo), -1).T
    ratio = problem.potential(points) / (1.0 if problem.weight is None else problem.weight(points))
    floor = float(np.min(np.where(np.isfinite(ratio), ratio, np.inf)))
    stiffness = asm(_stiffness(problem), basis)
    mass = asm(_mass(problem), basis)
    free_walls = _wall_facets(mesh, problem, dirichlet=False)
    if problem.alpha is not None and len(free_walls):
        walls = FacetBasis(mesh, element, facets=free_walls, intorder=QUADRATURE_ORDER)
        stiffness = stiffness + asm(_wall_term(problem, problem.alpha), walls)
    fixed = basis.get_dofs(_wall_facets(mesh, problem, dirichlet=True)).all()
    if len(fixed) == 0:
        return stiffness.tocsr(), mass.tocsr(), floor
    k_free, m_free = condense(stiffness, mass, D=fixed, expand=False)
    return k_free.tocsr(), m_free.tocsr(), floor


def lowest(stiffness: sps.csr_matrix, mass: sps.csr_matrix, k: int, below: float) -> np.ndarray:
    """The k lowest eigenvalues of K u = lambda M u (shift-invert about ``below``, which
    must lie under the spectrum), from a seeded start vector."""
    k = min(k, stiffness.shape[0] - 2)
    start = np.random.default_rng(0).standard_normal(stiffness.shape[0])
    values = eigsh(stiffness, k=k, M=mass, sigma=below, which="LM",
                   return_eigenvectors=False, v0=start)
    return np.sort(values)


def lower_bound(problem: FemProblem, mesh: Mesh, floor: float) -> float:
    """A point under the spectrum of one mesh's pencil: ``floor`` (``assemble``), less a
    margin for walls with negative alpha (a bound state at a Robin wall reaches about
    -kinetic k alpha^2 / rho per face meeting at a corner)."""
    margin = 1.0 + 0.1 * abs(floor)
    if problem.alpha is not None:
        facets = _wall_facets(mesh, problem, dirichlet=False)
        if len(facets):
            centres = mesh.p[:, mesh.facets[:, facets]].mean(axis=1).T
            normals = _outward_normals(mesh, problem, centres)
            negative = max(0.0, -float(np.min(problem.alpha(centres, normals))))
            scale = 1.0
            if problem.diffusion is not None:
                scale = float(np.max(np.abs(problem.diffusion(centres))))
            if problem.weight is not None:
                scale /= float(np.min(problem.weight(centres)))
            margin += 2 * len(problem.lo) * problem.kinetic * scale * negative**2
    return floor - margin


def _outward_normals(mesh: Mesh, problem: FemProblem, centres: np.ndarray) -> np.ndarray:
    """Outward unit normals at wall points (a box's face normals; a region's level-set
    gradient, reversed: the expression grows inward)."""
    if problem.region is not None:
        g = -problem.region.gradient(centres)
        return g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-300)
    lo, hi = np.asarray(problem.lo), np.asarray(problem.hi)
    gaps = np.concatenate([centres - lo, hi - centres], axis=1)
    nearest = gaps.argmin(axis=1)
    normals = np.zeros_like(centres)
    dim = centres.shape[1]
    normals[np.arange(len(centres)), nearest % dim] = np.where(nearest >= dim, 1.0, -1.0)
    return normals


def solve(problem: FemProblem, k: int, cells: int) -> GridSpectrum:
    """The k lowest eigenvalues on three nested meshes (cells / 4, / 2, cells elements
    across the longest side), with the three-mesh error estimate."""
    values: list[np.ndarray] = []
    sizes: list[int] = []
    # Each mesh its own bound: a coarse mesh's eigenvalues do not bound a finer one's (a
    # narrow well that only the finer mesh resolves).
    for mesh in meshes(problem, cells):
        stiffness, mass, floor = assemble(problem, mesh)
        sizes.append(stiffness.shape[0])
        values.append(lowest(stiffness, mass, k, lower_bound(problem, mesh, floor)))
    shortest = min(len(v) for v in values)  # a coarse mesh with fewer than k + 2 unknowns
    spectrum = richardson([v[:shortest] for v in values], tuple(sizes), 2.0)
    # Below this the assembly's and ARPACK's roundoff (and a closed form's root finder)
    # decide, not the mesh: no estimate claims less.
    floor = ROUNDOFF * np.maximum(np.abs(spectrum.eigenvalues), np.abs(spectrum.eigenvalues).max())
    return replace(spectrum, error=np.maximum(spectrum.error, floor))
