"""Meshes for the finite-element reference and the quadrature read-out of planar regions:
boxes in 1 to 3 dimensions (tensor cells, on which Q2 elements converge about 10x faster
than P2 on the cells split into tetrahedra), and planar regions given by a level set (the
set where an expression is positive).

A refinement ladder is one coarse mesh refined uniformly (every element split in 2^d), so
the meshes of a ladder are nested and their spacings halve exactly: the three-mesh error
estimate (``grid.richardson``) then sees a clean ratio of 2.

A region's coarse mesh comes from the force-balance mesher of Persson and Strang ("A simple
mesh generator in MATLAB", SIAM Review 46, 2004), written here from the paper: points of a
hexagonal lattice inside the region move as if joined by springs that only push, the
Delaunay triangulation is redone as they move, and points that leave the region are
projected back onto its edge. Every refinement puts the new edge points back on the level
set, and the finest mesh is made quadratic (``MeshTri2``) with its edge midpoints on the
level set too: an isoparametric P2 mesh, whose curved edge keeps the eigenvalues' h^4
convergence where a polygonal edge would cap it at h^2.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy.spatial import Delaunay
from skfem import Mesh, MeshHex1, MeshLine1, MeshQuad1, MeshTri1, MeshTri2

PointField = Callable[[np.ndarray], np.ndarray]  # (M, d) points -> (M,) values
VectorField = Callable[[np.ndarray], np.ndarray]  # (M, d) points -> (M, d) vectors


@dataclass(frozen=True)
class LevelSet:
    """A region {x : level(x) > 0} with the gradient of its expression."""

    level: PointField
    gradient: VectorField

    def project(self, points: np.ndarray, steps: int = 8) -> np.ndarray:
        """Points moved onto level = 0 by Newton steps along the gradient (points near the
        edge: the mesher's and the refinements' edge points)."""
        x = points.copy()
        for _ in range(steps):
            f = self.level(x)
            g = self.gradient(x)
            norm2 = np.maximum((g * g).sum(1), 1e-300)
            x = x - (f / norm2)[:, None] * g
        return x

    def distance(self, points: np.ndarray) -> np.ndarray:
        """-level / |grad level|: the signed distance to the edge to first order (negative
        inside), which is all the mesher needs from it."""
        g = self.gradient(points)
        return -self.level(points) / np.maximum(np.sqrt((g * g).sum(1)), 1e-12)


def box_ladder(
    lo: tuple[float, ...], hi: tuple[float, ...], cells: int, breaks: tuple[float, ...] = ()
) -> list[Mesh]:
    """Tensor meshes (intervals, rectangles, bricks) of a box with cells / 4, cells / 2 and
    cells elements along its longest side (the others in proportion, at least 2); in 1-D
    with a node at each of ``breaks`` inside the interval."""
    longest = max(h - low for low, h in zip(lo, hi))
    coarse = max(2, cells // 4)
    axes = [
        np.linspace(low, h, max(2, round(coarse * (h - low) / longest)) + 1)
        for low, h in zip(lo, hi)
    ]
    if len(axes) == 1 and breaks:
        axes = [_axis_through(lo[0], hi[0], breaks, len(axes[0]) - 1)]
    first: Mesh
    if len(axes) == 1:
        first = MeshLine1(axes[0][None, :], np.array([np.arange(len(axes[0]) - 1),
                                                      np.arange(1, len(axes[0]))]))
    elif len(axes) == 2:
        first = MeshQuad1.init_tensor(*axes)
    elif len(axes) == 3:
        first = MeshHex1.init_tensor(*axes)
    else:
        raise ValueError(f"{len(axes)} coordinates: finite elements take d <= 3")
    middle = first.refined()
    return [first, middle, middle.refined()]


def _axis_through(lo: float, hi: float, breaks: tuple[float, ...], cells: int) -> np.ndarray:
    """About ``cells`` equal-ish cells on [lo, hi], each break inside a node."""
    ends = [lo, *sorted(b for b in breaks if lo < b < hi), hi]
    pieces = [
        np.linspace(a, b, max(1, round(cells * (b - a) / (hi - lo))) + 1)[:-1]
        for a, b in zip(ends[:-1], ends[1:])
    ]
    return np.append(np.concatenate(pieces), hi)


def region_ladder(
    region: LevelSet, lo: tuple[float, ...], hi: tuple[float, ...], cells: int
) -> list[Mesh]:
    """Isoparametric P2 meshes of a planar region with about cells / 4, cells / 2 and cells
    elements across the longest side of its bounds."""
    if len(lo) != 2:
        raise ValueError(
            f"the finite-element reference meshes regions in 2 dimensions only (this one has "
            f"{len(lo)}); a box or a closed form can serve instead"
        )
    longest = max(h - low for low, h in zip(lo, hi))
    # The mesher's spacing: a coarse mesh with 8 elements across, refined to reach cells / 4.
    refinements = region_refinements(cells)
    coarse = _refined_onto(force_balance_mesh(region, lo, hi, longest / 8), region, refinements)
    middle = _refined_onto(coarse, region, 1)
    finest = _refined_onto(middle, region, 1)
    return [_curved(m, region) for m in (coarse, middle, finest)]


def region_refinements(cells: int) -> int:
    """How often a region's 8-across mesher output is refined for its coarsest level: the
    ladder then has 8, 16 and 32 times 2^this elements across (the nearest to cells)."""
    return max(0, round(math.log2(max(cells, 32) / 32)))


def ladder_cells(cells: int, region: bool) -> list[int]:
    """Elements across the longest side of the three meshes a ladder builds."""
    coarse = 8 * 2 ** region_refinements(cells) if region else max(2, cells // 4)
    return [coarse, 2 * coarse, 4 * coarse]


def _refined_onto(mesh: MeshTri1, region: LevelSet, times: int) -> MeshTri1:
    for _ in range(times):
        mesh = mesh.refined()
        edge = mesh.boundary_nodes()
        points = mesh.p.copy()
        points[:, edge] = region.project(points[:, edge].T).T
        mesh = replace(mesh, doflocs=points)
    return mesh


def _curved(mesh: MeshTri1, region: LevelSet) -> MeshTri2:
    quadratic = MeshTri2.from_mesh(mesh)
    edge = quadratic.dofs.get_facet_dofs(quadratic.boundary_facets()).flatten()
    points = quadratic.doflocs.copy()
    points[:, edge] = region.project(points[:, edge].T).T
    return replace(quadratic, doflocs=points)


def _hexagonal_lattice(lo: tuple[float, ...], hi: tuple[float, ...], h: float) -> np.ndarray:
    rows = np.arange(lo[1], hi[1] + 0.5 * h, h * math.sqrt(3) / 2)
    columns = np.arange(lo[0], hi[0] + 0.5 * h, h)
    x, y = np.meshgrid(columns, rows)
    x[1::2] += h / 2
    return np.stack([x.ravel(), y.ravel()], 1)


def force_balance_mesh(
    region: LevelSet, lo: tuple[float, ...], hi: tuple[float, ...], h: float,
    iterations: int = 400,
) -> MeshTri1:
    """Persson and Strang's mesher with a uniform size h (module docstring)."""
    tolerance = 1e-3 * h
    points = _hexagonal_lattice(lo, hi, h)
    points = points[region.distance(points) < tolerance]
    if len(points) < 3:
        raise ValueError(
            "the region's bounds hold fewer than 3 lattice points inside it; is the region "
            "expression positive inside?"
        )
    last = np.full_like(points, np.inf)
    triangles = np.zeros((0, 3), dtype=np.int64)
    for _ in range(iterations):
        if np.sqrt(((points - last) ** 2).sum(1)).max() > 0.1 * h:
            last = points.copy()
            triangles = _inside_triangles(points, region, tolerance)
        move = 0.2 * _spring_forces(points, triangles)
        inside = region.distance(points) < -tolerance
        points = points + move
        outside = region.distance(points) > 0
        points[outside] = region.project(points[outside])
        if np.sqrt((move[inside] ** 2).sum(1)).max(initial=0.0) < 1e-3 * h:
            break
    triangles = _inside_triangles(points, region, tolerance)
    used, index = np.unique(triangles, return_inverse=True)
    return MeshTri1(points[used].T.copy(), index.reshape(-1, 3).T.copy())


def _inside_triangles(points: np.ndarray, region: LevelSet, tolerance: float) -> np.ndarray:
    triangles = Delaunay(points).simplices
    centroids = points[triangles].mean(1)
    return triangles[region.distance(centroids) < -tolerance]


def _spring_forces(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Per point, the sum of the repulsive spring forces of its edges (rest length 1.2x the
    rms edge length, so that the springs push the points out to fill the region)."""
    edges = np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]],
                                    triangles[:, [0, 2]]]), axis=1)
    edges = np.unique(edges, axis=0)
    vectors = points[edges[:, 0]] - points[edges[:, 1]]
    lengths = np.sqrt((vectors**2).sum(1))
    rest = 1.2 * np.sqrt((lengths**2).mean())
    push = np.maximum(rest - lengths, 0.0) / lengths
    forces = np.zeros_like(points)
    np.add.at(forces, edges[:, 0], push[:, None] * vectors)
    np.add.at(forces, edges[:, 1], -push[:, None] * vectors)
    return forces
