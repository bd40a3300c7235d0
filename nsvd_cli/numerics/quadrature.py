"""Deterministic read-out points: Gauss-Legendre nodes and weights for a 1-D box, their
products for a 2-D or 3-D box and its faces, and a curved-mesh rule for a planar region.

A read-out is Rayleigh-Ritz from plain means over its points. Scaling each point's values
by ``sqrt(n w_i)`` (``w`` summing to 1) turns those means into the quadrature sums
sum_i w_i f(x_i) = integral f / length, the frame trick of a weight (``media.py``). With
``NODES`` nodes the rule integrates polynomials of degree 2 NODES - 1 exactly; the smooth
networks here and their products are integrated to rounding, so the Ritz values, residuals
and intervals carry no Monte-Carlo error. A coefficient that jumps (a layered medium)
would leave one rule 1e-4 off; the rule is then composite, split at the jumps. The
surface (the two ends) is exact in ``sampling.box_surface``.

A planar region gets the quadrature points of an isoparametric P2 mesh of it
(``meshes.region_ladder``'s finest, edge nodes and edge midpoints on the level set) with a
degree-6 rule per triangle: about 65000 points on the unit disk, whose area and a smooth
integral it reproduces to 3e-9 (the quadratic edge's h^4 is all that is left). The
region's expression gives the level set and, by autograd, its gradient. A region the
mesher cannot resolve (fewer than 3 lattice points, a non-finite projection, a degenerate
triangle, an area that disagrees with the sampler's estimate by over 1%: a missed
component) keeps Monte-Carlo points.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from scipy.special import roots_legendre
from skfem import Basis, ElementTriP2, FacetBasis

from nsvd_cli.numerics.meshes import LevelSet, region_ladder

NODES = 4096  # well past the 40 or so oscillations a 1-D problem's modes have
MIN_PANEL_NODES = 256  # a panel of a composite rule, however short
# Elements across the longest side of a region's bounds, and the rule's degree.
REGION_CELLS = 64
REGION_ORDER = 6
# The sampler's area comes from 50000 points (0.3% standard error on the disk): a mesh that
# missed a component of the region over 1% of its area is refused.
REGION_AREA_TOLERANCE = 0.01


@lru_cache(maxsize=4)
def _unit_rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = roots_legendre(n)
    return nodes, weights / weights.sum()


def gauss_legendre(
    lo: float, hi: float, n: int = NODES, dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu", breaks: tuple[float, ...] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes (n, 1) in [lo, hi] and weights (n,) summing to 1; with ``breaks`` (where the
    integrand may jump) a composite rule, one panel between consecutive breaks, its nodes
    in proportion to its length (at least ``MIN_PANEL_NODES``)."""
    ends = [lo, *sorted(b for b in breaks if lo < b < hi), hi]
    xs, ws = [], []
    for a, b in zip(ends[:-1], ends[1:]):
        share = max(MIN_PANEL_NODES, round(n * (b - a) / (hi - lo)))
        nodes, weights = _unit_rule(share)
        xs.append(0.5 * (a + b) + 0.5 * (b - a) * nodes)
        ws.append(weights * (b - a) / (hi - lo))
    nodes_t = torch.as_tensor(np.concatenate(xs), dtype=dtype, device=device).unsqueeze(-1)
    return nodes_t, torch.as_tensor(np.concatenate(ws), dtype=dtype, device=device)



Field = Callable[[torch.Tensor], torch.Tensor]


def tensor_gauss(
    lo: tuple[float, ...], hi: tuple[float, ...], per_axis: int,
    dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The product Gauss-Legendre rule on a box: nodes (per_axis^d, d) and weights summing
    to 1."""
    nodes, weights = _unit_rule(per_axis)
    axes = [0.5 * (a + b) + 0.5 * (b - a) * nodes for a, b in zip(lo, hi)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(lo))
    w = np.prod(np.stack(np.meshgrid(*[weights] * len(lo), indexing="ij"), -1), -1).ravel()
    return (torch.as_tensor(grid, dtype=dtype, device=device),
            torch.as_tensor(w, dtype=dtype, device=device))


def box_faces(
    lo: tuple[float, ...], hi: tuple[float, ...], per_axis: int,
    dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """The surface of a box as a rule: points (m, d), outward normals (m, d), weights
    summing to 1 (each face's in proportion to its area) and the area. In 1-D the two ends,
    with the counting measure 2, as ``sampling.box_surface`` has them."""
    d = len(lo)
    side = np.asarray(hi) - np.asarray(lo)
    face_area = np.prod(side) / side  # (d,): the area of each face of an axis
    points, normals, weights = [], [], []
    for axis in range(d):
        others = [i for i in range(d) if i != axis]
        x: np.ndarray = np.zeros((1, 0))
        w: np.ndarray = np.ones(1)
        if others:
            xt, wt = tensor_gauss(tuple(lo[i] for i in others), tuple(hi[i] for i in others),
                                  per_axis, torch.float64)
            x, w = xt.numpy(), wt.numpy()
        for end, sign in ((lo[axis], -1.0), (hi[axis], 1.0)):
            full = np.insert(x, axis, end, axis=1)
            normal = np.zeros_like(full)
            normal[:, axis] = sign
            points.append(full)
            normals.append(normal)
            weights.append(w * face_area[axis])
    area = float(2 * face_area.sum())
    as_t = [torch.as_tensor(np.concatenate(a), dtype=dtype, device=device)
            for a in (points, normals, weights)]
    return as_t[0], as_t[1], as_t[2] / as_t[2].sum(), area


def level_set(inside: Field) -> LevelSet:
    """A torch region field (> 0 inside) as numpy functions, its gradient by autograd."""

    def level(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return inside(torch.from_numpy(np.ascontiguousarray(x))).numpy()

    def gradient(x: np.ndarray) -> np.ndarray:
        points = torch.from_numpy(np.ascontiguousarray(x)).requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(inside(points).sum(), points)
        return grad.numpy()

    return LevelSet(level, gradient)


@dataclass(frozen=True)
class RegionRule:
    """A planar region's quadrature: interior points with weights summing to 1 (means over
    them are integrals over the area), the area, and the curved edge's points, outward
    normals and arc-length weights (summing to the perimeter)."""

    points: np.ndarray
    weights: np.ndarray
    area: float
    edge_points: np.ndarray
    edge_normals: np.ndarray
    edge_weights: np.ndarray


@lru_cache(maxsize=4)
def _region_rule(
    inside: Field, lo: tuple[float, ...], hi: tuple[float, ...], area: float
) -> RegionRule | None:
    try:  # any failure of the mesher (Qhull, a zero Jacobian) means: sample instead
        mesh = region_ladder(level_set(inside), lo, hi, REGION_CELLS)[-1]
        basis = Basis(mesh, ElementTriP2(), intorder=REGION_ORDER)
        edge = FacetBasis(mesh, ElementTriP2(), facets=mesh.boundary_facets(),
                          intorder=REGION_ORDER)
    except Exception:  # noqa: BLE001
        return None
    dim = len(lo)
    points = np.asarray(basis.global_coordinates()).reshape(dim, -1).T
    weights = basis.dx.reshape(-1)
    total = float(weights.sum())
    usable = np.all(np.isfinite(points)) and np.all(weights > 0)
    if not (usable and abs(total - area) <= REGION_AREA_TOLERANCE * area):
        return None
    return RegionRule(
        points, weights / total, total,
        np.asarray(edge.global_coordinates()).reshape(dim, -1).T,
        np.asarray(edge.normals).reshape(dim, -1).T,
        edge.dx.reshape(-1),
    )


def region_edge(
    inside: Field, lo: tuple[float, ...], hi: tuple[float, ...], area: float,
    dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float] | None:
    """The curved edge of a planar region: points (m, 2), outward normals (m, 2), arc-length
    weights (m,) summing to the perimeter, and the mesh's area; None where the region is
    not meshed."""
    rule = _region_rule(inside, lo, hi, area)
    if rule is None:
        return None
    points, normals, weights = (torch.as_tensor(a, dtype=dtype, device=device)
                                for a in (rule.edge_points, rule.edge_normals, rule.edge_weights))
    return points, normals, weights, rule.area


def region_rule(
    inside: Field, lo: tuple[float, ...], hi: tuple[float, ...], area: float,
    dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Points (n, 2) of a planar region and weights (n,) summing to 1, or None where the
    region is not meshed (module docstring); ``area`` is the sampler's estimate, the check
    on the mesh."""
    rule = _region_rule(inside, lo, hi, area)
    if rule is None:
        return None
    return (torch.as_tensor(rule.points, dtype=dtype, device=device),
            torch.as_tensor(rule.weights, dtype=dtype, device=device))
