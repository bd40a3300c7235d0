"""A quadrature (Nystrom) reference for the singular values of integral operators, d <= 3.

(T g)(x) = integral k(x, y) g(y) dnu(y) from L2(nu) to L2(mu) is replaced by the matrix
sqrt(w_i) k(x_i, y_j) sqrt(v_j) on tensor-product Gauss rules (x_i, w_i) for mu and
(y_j, v_j) for nu: Gauss-Legendre on a box (Lebesgue measure), Gauss-Hermite for a Gaussian
measure N(0, s^2 I). Its singular values converge to T's: exponentially for smooth kernels,
slowly where the kernel jumps (the Volterra kernel along x = y, about first order). The
error is estimated as for the finite-difference reference, from rules of N/4, N/2 and N
points per axis (``grid_reference.richardson``, spacing ratio 2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from numpy.polynomial.legendre import leggauss

from nsvd_cli.references.grid import MAX_DIM, GridSpectrum, richardson

PairField = Callable[[np.ndarray], np.ndarray]  # (M, d_x + d_y) -> (M,)
# numpy's Gauss-Hermite weights overflow beyond about 150 nodes; smooth kernels under a
# Gaussian measure converge exponentially long before that.
MAX_HERMITE = 128


@dataclass(frozen=True)
class QuadratureMeasure:
    """A box [lo, hi] (Lebesgue) or, with ``gaussian_scale``, N(0, s^2 I) in ``dim`` axes."""

    dim: int
    lo: tuple[float, ...] = ()
    hi: tuple[float, ...] = ()
    gaussian_scale: float | None = None

    def rule(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Tensor-product nodes (n^d, d) and weights (n^d,)."""
        if self.gaussian_scale is not None:
            t, w = hermegauss(min(n, MAX_HERMITE))
            axes = [(self.gaussian_scale * t, w / np.sqrt(2.0 * np.pi))] * self.dim
        else:
            t, w = leggauss(n)
            axes = [
                (lo + (t + 1.0) * (hi - lo) / 2.0, w * (hi - lo) / 2.0)
                for lo, hi in zip(self.lo, self.hi)
            ]
        nodes = np.meshgrid(*[a for a, _ in axes], indexing="ij")
        weights = np.meshgrid(*[b for _, b in axes], indexing="ij")
        points = np.stack([m.ravel() for m in nodes], axis=1)
        return points, np.prod(np.stack([m.ravel() for m in weights], axis=1), axis=1)


def largest_singular(
    kernel: PairField, left: QuadratureMeasure, right: QuadratureMeasure, k: int, n: int
) -> np.ndarray:
    x, wx = left.rule(n)
    y, wy = right.rule(n)
    pairs = np.concatenate([np.repeat(x, len(y), axis=0), np.tile(y, (len(x), 1))], axis=1)
    matrix = kernel(pairs).reshape(len(x), len(y))
    bad = ~np.isfinite(matrix)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(
            f"operator.kernel is not finite at quadrature nodes x = {x[i].tolist()}, "
            f"y = {y[j].tolist()}: a kernel singular where the rules' nodes meet has no "
            "quadrature reference"
        )
    matrix = np.sqrt(wx)[:, None] * matrix * np.sqrt(wy)[None, :]
    return np.linalg.svd(matrix, compute_uv=False)[:k]


def solve(
    kernel: PairField, left: QuadratureMeasure, right: QuadratureMeasure, k: int, points: int
) -> GridSpectrum:
    """The k largest singular values on rules of points/4, points/2 and points per axis."""
    dim = max(left.dim, right.dim)
    if dim > MAX_DIM:
        raise ValueError(f"{dim} coordinates: quadrature references are limited to d <= {MAX_DIM}")
    if left.gaussian_scale is not None or right.gaussian_scale is not None:
        points = min(points, MAX_HERMITE)
    sizes = tuple(max(4, points // 4) * m for m in (1, 2, 4))
    values = [largest_singular(kernel, left, right, k, n) for n in sizes]
    return richardson(values, sizes, 2.0)
