"""Meshes of planar regions and the quadrature read-out built on them: the edge on the
level set, well-shaped triangles, nested refinements, and integrals against a polar
Gauss-Legendre rule computed here."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from scipy.special import roots_legendre

from nsvd_cli.kinds import kind_of
from nsvd_cli.numerics.meshes import LevelSet, force_balance_mesh, region_ladder
from nsvd_cli.numerics.quadrature import box_faces, region_rule, tensor_gauss
from nsvd_cli.objectives.batch import evaluate_batch, exact_points, quadrature_modes
from nsvd_cli.spec.load import load_problem

ROOT = Path(__file__).resolve().parents[2]


def _disk_field(x: torch.Tensor) -> torch.Tensor:
    return 1.0 - (x * x).sum(1)


def _polar_rule(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Points of the unit disk and weights summing to pi: Gauss-Legendre in r, the
    trapezoid rule (spectral for periodic integrands) in the angle."""
    nodes, weights = roots_legendre(n)
    r, wr = 0.5 * (nodes + 1), 0.5 * weights
    theta = np.linspace(0.0, 2 * np.pi, 2 * n, endpoint=False)
    rr, tt = np.meshgrid(r, theta, indexing="ij")
    points = np.stack([(rr * np.cos(tt)).ravel(), (rr * np.sin(tt)).ravel()], 1)
    w = (wr[:, None] * rr * (2 * np.pi / (2 * n))).ravel()
    return points, w


def test_the_mesher_puts_the_edge_on_the_level_set_with_well_shaped_triangles() -> None:
    """An ellipse: every edge node on the level set, no sliver (smallest angle > 20 deg),
    the area within the mesher's polygonal error of pi a b."""
    a, b = 1.5, 0.75
    ellipse = LevelSet(
        lambda x: 1.0 - (x[:, 0] / a) ** 2 - (x[:, 1] / b) ** 2,
        lambda x: np.stack([-2 * x[:, 0] / a**2, -2 * x[:, 1] / b**2], 1),
    )
    mesh = force_balance_mesh(ellipse, (-a, -b), (a, b), 0.2)
    edge = mesh.p[:, mesh.boundary_nodes()].T
    assert np.abs(ellipse.level(edge)).max() < 1e-10
    corners = mesh.p[:, mesh.t].T  # (triangles, 3, 2)
    angles = []
    for i in range(3):
        u = corners[:, (i + 1) % 3] - corners[:, i]
        v = corners[:, (i + 2) % 3] - corners[:, i]
        cos = (u * v).sum(1) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1)
        angles.append(np.degrees(np.arccos(cos)))
    assert np.min(angles) > 20.0, np.min(angles)
    u = corners[:, 1] - corners[:, 0]
    v = corners[:, 2] - corners[:, 0]
    area = 0.5 * np.abs(u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]).sum()
    assert abs(area - math.pi * a * b) < 0.03 * math.pi * a * b
    # The ladder's meshes are nested refinements: 4x the triangles each time.
    ladder = region_ladder(ellipse, (-a, -b), (a, b), 64)
    counts = [m.t.shape[1] for m in ladder]
    assert counts[1] == 4 * counts[0] and counts[2] == 4 * counts[1]


def test_the_region_rule_integrates_a_smooth_function_on_the_disk() -> None:
    rule = region_rule(_disk_field, (-1.0, -1.0), (1.0, 1.0), math.pi)
    assert rule is not None
    x, w = rule
    assert abs(float(w.sum()) - 1.0) < 1e-12 and torch.all(_disk_field(x) > 0)
    points, weights = _polar_rule()
    exact = float((weights * np.exp(np.cos(5 * points[:, 0]) + points[:, 1])).sum()) / math.pi
    found = float((w * torch.exp(torch.cos(5 * x[:, 0]) + x[:, 1])).sum())
    assert abs(found - exact) < 1e-7 * abs(exact)
    # An area far from the sampler's estimate means the mesh missed the region: no rule.
    assert region_rule(_disk_field, (-1.0, -1.0), (1.0, 1.0), 2 * math.pi) is None


def test_a_region_read_out_integrates_the_learned_functions_by_quadrature() -> None:
    """disk-2d with an untrained network: the read-out's Gram matrix (quadrature points,
    values scaled by sqrt(n w_i)) equals the polar rule's integral of the same functions."""
    problem = load_problem(ROOT / "problems" / "disk-2d.yaml")
    kind = kind_of(problem)
    compiled = kind.build(problem, kind.derive_settings(problem))
    torch.manual_seed(0)
    network = compiled.make_network().double()
    assert exact_points(compiled)
    batch = quadrature_modes(compiled, network)
    gram = batch.h.T @ batch.h / batch.h.shape[0]
    points, weights = _polar_rule()
    polar = evaluate_batch(compiled, compiled.sampler, network, torch.from_numpy(points))
    wt = torch.from_numpy(weights / math.pi).unsqueeze(-1)
    expected = (polar.h * wt).T @ polar.h
    assert torch.allclose(gram, expected, rtol=1e-6, atol=1e-9 * float(expected.abs().max()))
    energy = batch.h.T @ batch.hh / batch.h.shape[0]
    expected_energy = (polar.h * wt).T @ polar.hh
    scale = float(expected_energy.abs().max())
    assert torch.allclose(energy, expected_energy, rtol=1e-5, atol=1e-8 * scale)


def test_a_product_rule_and_a_face_rule_integrate_a_brick_exactly() -> None:
    """The 2-D and 3-D box read-out: the volume rule integrates cos^2 products (a cavity's
    modes) to rounding; the face rule's area, outward normals and the flux of the field
    (x, y, z) through the walls (3 V, Gauss's theorem) come out exact."""
    lo, hi = (0.0, 0.0, 0.0), (1.0, 1.3, 1.7)
    x, w = tensor_gauss(lo, hi, 40)
    assert x.shape == (40**3, 3) and abs(float(w.sum()) - 1.0) < 1e-14
    mode = torch.cos(2 * math.pi * x[:, 0]) * torch.cos(3 * math.pi * x[:, 2] / 1.7)
    assert abs(float((w * mode * mode).sum()) - 0.25) < 1e-13
    points, normals, weights, area = box_faces(lo, hi, 40)
    assert abs(area - 2 * (1.3 * 1.7 + 1.7 + 1.3)) < 1e-12
    assert abs(float(weights.sum()) - 1.0) < 1e-14
    flux = area * float((weights * (points * normals).sum(1)).sum())
    assert abs(flux - 3 * 1.0 * 1.3 * 1.7) < 1e-12
    inside = (points - torch.tensor([0.5, 0.65, 0.85], dtype=points.dtype)) * normals
    assert bool((inside.sum(1) > 0).all())  # every normal points out
