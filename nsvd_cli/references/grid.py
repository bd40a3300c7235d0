"""A finite-difference reference spectrum for problems in up to three dimensions.

``H = -kappa Laplacian + V`` on a regular grid of interior points (zero values one step
outside: the box's faces, or the edge of a window large enough that the wanted states have
decayed), the second derivative by the fourth-order central stencil

    u'' ~ (-u_{i-2} + 16 u_{i-1} - 30 u_i + 16 u_{i+1} - u_{i+2}) / (12 h^2),

with the point beyond the wall taken as the odd reflection of the one inside (consistent
with a zero boundary value). Neumann walls (a box only) put the points at cell centres,
the walls half a spacing outside, and take the even reflection instead (zero normal
derivative). Region domains keep the grid points inside the region only (a
staircase boundary, first order). The lowest eigenvalues come from ARPACK in shift-invert
mode. Its own error is estimated from three grids (N/4, N/2, N points per axis): with the
observed order p = log(|E_{N/2} - E_{N/4}| / |E_N - E_{N/2}|) / log(r) (r the ratio of
spacings, p clamped to [0.5, 4]) the Richardson estimate is |E_N - E_{N/2}| / (r^p - 1).
That estimate covers discretisation only; truncating whole space to a window is checked
by the window's size (the caller's choice). Where the observed order is below 1 the grids
are not in the asymptotic regime (a Coulomb cusp converges as about h^0.7) and the value is
flagged unreliable rather than given a confident error bar; so is every value when the
potential's minimum on the grid keeps falling with refinement (a singular potential).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sps
from scipy.sparse.linalg import eigsh

from nsvd_cli.numerics.meshes import PointField, VectorField

MAX_DIM = 3



@dataclass(frozen=True)
class GridProblem:
    kinetic: float
    potential: PointField
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    inside: PointField | None = None  # > 0 inside a region domain
    # A = H + b . grad (not self-adjoint).
    drift: VectorField | None = None
    # The smallest singular values of A instead of the lowest eigenvalues (always wanted
    # with a drift; without one they are the |E| of H nearest 0).
    singular: bool = False
    # Per axis: Neumann walls (du/dn = 0) on both of its faces: cell-centred points, even
    # reflection (empty: Dirichlet everywhere).
    neumann: tuple[bool, ...] = ()


@dataclass(frozen=True)
class GridSpectrum:
    eigenvalues: np.ndarray  # (k,) ascending, on the finest grid
    error: np.ndarray  # (k,) Richardson estimate of |E_grid - E_exact|
    order: np.ndarray  # (k,) observed convergence order (clamped to [0.5, 4])
    # (k,) whether the three grids are in the asymptotic regime (observed order >= 1);
    # where not (a Coulomb cusp), the error estimate is not to be trusted.
    reliable: np.ndarray
    points: tuple[int, ...]  # points per axis of the three grids
    # The values on each of the three grids, coarse to fine (the finest is ``eigenvalues``).
    levels: tuple[np.ndarray, ...] = ()


def second_derivative(n: int, h: float) -> sps.csr_matrix:
    """Fourth-order d^2/dx^2 on n interior points with zero values beyond both ends."""
    main = np.full(n, -30.0)
    one = np.full(n - 1, 16.0)
    two = np.full(n - 2, -1.0)
    d2 = sps.diags([two, one, main, one, two], [-2, -1, 0, 1, 2], format="lil")
    # Points x_1..x_n, walls at x_0 and x_{n+1} (zero). The first row reaches x_{-1}, the odd
    # reflection of x_1: its -u_{-1} term becomes +u_1. Likewise at the other end.
    d2[0, 0] += 1.0
    d2[n - 1, n - 1] += 1.0
    return (d2 / (12.0 * h * h)).tocsr()


def second_derivative_even(n: int, h: float) -> sps.csr_matrix:
    """The same stencil on n cell-centred points, walls half a spacing beyond the first
    and last, with zero normal derivative: the points beyond a wall are the even
    reflection of those inside (u_{-1} = u_0, u_{-2} = u_1), which keeps the matrix
    symmetric."""
    main = np.full(n, -30.0)
    one = np.full(n - 1, 16.0)
    two = np.full(n - 2, -1.0)
    d2 = sps.diags([two, one, main, one, two], [-2, -1, 0, 1, 2], format="lil")
    for first, second in ((0, 1), (n - 1, n - 2)):
        d2[first, first] += 16.0  # u_{-1} = u_0, weight 16
        d2[first, second] += -1.0  # u_{-2} = u_1, weight -1
        d2[second, first] += -1.0  # the second row's u_{-1} = u_0, weight -1
    return (d2 / (12.0 * h * h)).tocsr()


def first_derivative(n: int, h: float) -> sps.csr_matrix:
    """Fourth-order d/dx on n interior points with zero values beyond both ends,

        u' ~ (u_{i-2} - 8 u_{i-1} + 8 u_{i+1} - u_{i+2}) / (12 h),

    the point beyond each wall again the odd reflection of the one inside it."""
    one = np.full(n - 1, 8.0)
    two = np.full(n - 2, 1.0)
    d1 = sps.diags([two, -one, one, -two], [-2, -1, 1, 2], format="lil")
    # Row of x_1 reaches x_{-1} = -x_1 with weight +1; row of x_n reaches x_{n+2} = -x_n
    # with weight -1.
    d1[0, 0] -= 1.0
    d1[n - 1, n - 1] += 1.0
    return (d1 / (12.0 * h)).tocsr()


def _neumann(problem: GridProblem, axis: int) -> bool:
    return bool(problem.neumann) and problem.neumann[axis]


def _axes(problem: GridProblem, points: int) -> list[np.ndarray]:
    return [
        lo + (np.arange(points) + 0.5) * (hi - lo) / points  # cell centres: walls half out
        if _neumann(problem, k)
        else np.linspace(lo, hi, points + 2)[1:-1]
        for k, (lo, hi) in enumerate(zip(problem.lo, problem.hi))
    ]


def hamiltonian(problem: GridProblem, points: int) -> tuple[sps.csr_matrix, np.ndarray, np.ndarray]:
    """The sparse H on the grid (restricted to the region), the kept points (M, d) and the
    potential there (non-finite values, a Coulomb centre hit exactly, as 0)."""
    axes = _axes(problem, points)
    dim = len(axes)

    def along(k: int, derivative: Callable[[int, float], sps.csr_matrix]) -> sps.csr_matrix:
        factors = [sps.identity(len(a), format="csr") for a in axes]
        factors[k] = derivative(len(axes[k]), axes[k][1] - axes[k][0])
        term = factors[0]
        for f in factors[1:]:
            term = sps.kron(term, f, format="csr")
        return term

    def second(k: int) -> Callable[[int, float], sps.csr_matrix]:
        return second_derivative_even if _neumann(problem, k) else second_derivative

    laplacian = along(0, second(0))
    for k in range(1, dim):
        laplacian = laplacian + along(k, second(k))
    mesh = np.meshgrid(*axes, indexing="ij")
    pts = np.stack([m.ravel() for m in mesh], axis=1).reshape(-1, dim)
    v = problem.potential(pts)
    v = np.where(np.isfinite(v), v, 0.0)
    h_mat = (-problem.kinetic * laplacian + sps.diags(v)).tocsr()
    if problem.drift is not None:
        b = problem.drift(pts)
        for k in range(dim):
            h_mat = h_mat + sps.diags(b[:, k]) @ along(k, first_derivative)
        h_mat = h_mat.tocsr()
    if problem.inside is not None:
        keep = np.flatnonzero(problem.inside(pts) > 0)
        h_mat = h_mat[keep][:, keep]
        pts, v = pts[keep], v[keep]
    return h_mat, pts, v


def _start_vector(n: int) -> np.ndarray:
    """ARPACK's starting vector: random (no symmetry class is missed) but seeded, so that a
    reference is the same to the last bit on every run (ARPACK's own draws are not)."""
    return np.random.default_rng(0).standard_normal(n)


def lowest(h_mat: sps.csr_matrix, k: int, below: float) -> np.ndarray:
    """The k lowest eigenvalues (shift-invert about ``below``, under the spectrum)."""
    k = min(k, h_mat.shape[0] - 2)
    v0 = _start_vector(h_mat.shape[0])
    vals = eigsh(h_mat, k=k, sigma=below, which="LM", return_eigenvectors=False, v0=v0)
    return np.sort(vals)


def smallest_singular(a_mat: sps.csr_matrix, k: int) -> np.ndarray:
    """The k smallest singular values of A, ascending: the eigenvalues of [[0, A], [A^T, 0]]
    (which are +-s) closest to 0, by shift-invert at 0. Unlike A^T A this keeps A's own
    condition number: on a fine grid A^T A's roundoff (about 1e-16 * cond(A)^2) would
    swamp the differences between grids that the error estimate is made of. (The grid's
    adjoint is the L2 adjoint: the spacing is uniform.)"""
    k = min(k, a_mat.shape[0] - 2)
    augmented = sps.bmat([[None, a_mat], [a_mat.T, None]], format="csc")
    v0 = _start_vector(augmented.shape[0])
    vals = eigsh(augmented, k=2 * k, sigma=0.0, which="LM", return_eigenvectors=False, v0=v0)
    return np.sort(vals[vals > 0])[:k]


def check_dimension(dim: int) -> None:
    if dim > MAX_DIM:
        raise ValueError(
            f"{dim} coordinates: grid references are limited to d <= {MAX_DIM} (N^d grid "
            "points); compare with a closed form instead"
        )


def solve(problem: GridProblem, k: int, points: int) -> GridSpectrum:
    """The k lowest eigenvalues (with a drift: the k smallest singular values) on grids of
    points/4, points/2 and points per axis."""
    check_dimension(len(problem.lo))
    sizes = tuple(max(8, points // 4) * m for m in (1, 2, 4))
    # Even counts keep a grid point off the centre of a symmetric window (a Coulomb centre).
    sizes = tuple(s + s % 2 for s in sizes)
    values: list[np.ndarray] = []
    lowest_potential: list[float] = []
    below: float | None = None
    for n in sizes:
        h_mat, _, v = hamiltonian(problem, n)
        lowest_potential.append(float(v.min()))
        if below is None:
            # Gershgorin: no eigenvalue lies below min_i (H_ii - sum_j |H_ij|).
            diag = h_mat.diagonal()
            off = abs(h_mat).sum(axis=1).A1 - np.abs(diag)
            below = float((diag - off).min()) - 1.0
        if problem.singular or problem.drift is not None:
            values.append(smallest_singular(h_mat, k))
            continue
        vals = lowest(h_mat, k, below)
        values.append(vals)
        spread = float(vals[-1] - vals[0]) if len(vals) > 1 else abs(float(vals[0]))
        below = float(vals[0]) - max(0.5 * spread, 1e-3 * abs(float(vals[0])), 1e-6)
    # h_mid / h_fine: nodes at spacing L / (n + 1), cell centres (Neumann) at L / n (2 to
    # within 1% at these sizes where the axes mix).
    cells = bool(problem.neumann) and all(problem.neumann)
    ratio = sizes[2] / sizes[1] if cells else (sizes[2] + 1) / (sizes[1] + 1)
    spectrum = richardson(values, sizes, ratio)
    # A potential whose minimum on the grid keeps falling as the grid refines is singular
    # (a Coulomb centre): no value converges at the stencil's order there, and an observed
    # order from three coarse grids is not to be trusted for any of them.
    v_mid, v_fine = lowest_potential[1], lowest_potential[2]
    if abs(v_fine - v_mid) > 0.1 * max(1.0, abs(v_mid)):
        spectrum.reliable[:] = False
    return spectrum


def richardson(values: list[np.ndarray], sizes: tuple[int, ...], r: float) -> GridSpectrum:
    """Error estimates from values on three grids (coarse to fine, spacing ratio ``r``
    between the last two): observed order p, clamped to [0.5, 4], and |e3 - e2| / (r^p - 1);
    values converging slower than first order are flagged unreliable."""
    e1, e2, e3 = values
    d_coarse = np.abs(e2 - e1)
    d_fine = np.abs(e3 - e2)
    with np.errstate(divide="ignore", invalid="ignore"):
        order = np.log(d_coarse / d_fine) / math.log(r)
    order = np.nan_to_num(order, nan=4.0, posinf=4.0, neginf=0.0)
    # First order up to the noise of three grids; and values that agree to roundoff on all
    # three (an exact rule, a kernel of finite rank) have converged whatever their "order".
    roundoff = 1e-12 * np.maximum(np.abs(e3), np.abs(e3).max())
    converged = (d_coarse <= roundoff) & (d_fine <= roundoff)
    reliable = (order >= 0.95) | converged
    order = np.where(converged, 4.0, np.clip(order, 0.5, 4.0))
    error = np.maximum(d_fine / (r**order - 1.0), np.where(converged, roundoff, 0.0))
    return GridSpectrum(e3, error, order, reliable, sizes, (e1, e2, e3))
