"""Robin walls on a box or a planar region (du/dn + alpha u = 0): the surface term of the
energy form.

The energy form with Robin faces is <grad u, kappa grad v> + <V u, v> plus
kappa * alpha * (surface integral of u v) over them; its minimisers meet the Robin
condition on those faces without any constraint (it is natural, like Neumann's). Training
adds the surface term to each half batch's rows from its own sample of the box's surface;
the read-out's wall term becomes kappa * (surface integral of u (du/dn + alpha u)), which
vanishes pointwise at an eigenfunction as Neumann's does.

On a planar region the surface is the curved edge of the read-out's mesh
(``quadrature.region_edge``: Gauss points on the isoparametric edge, arc-length weights),
the same points every step: the term is linear in each function pair, so exact points keep
it unbiased, and they make it exact; the area it is divided by is the mesh's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import torch

from nsvd_cli.expr import compile_torch
from nsvd_cli.numerics.networks import ModeNetwork
from nsvd_cli.numerics.operators import JetField
from nsvd_cli.numerics.quadrature import region_edge
from nsvd_cli.numerics.sampling import Sampler, UniformBox, UniformRegion, box_surface
from nsvd_cli.objectives.batch import CompiledOperator, mode_values, with_boundary
from nsvd_cli.objectives.formulations import Formulation, StepTerms, row_products
from nsvd_cli.spec import Problem, RegionDomain
from nsvd_cli.spec.langevin import reflecting_alpha


def face_alphas(problem: Problem) -> torch.Tensor | None:
    """(d, 2): alpha of each box face (low, high) that is a Robin wall, 0 elsewhere; None
    when no face is (Dirichlet faces carry the wall factor, Neumann ones alpha = 0)."""
    faces = problem.box_faces()
    if faces is None:
        return None
    alphas = torch.zeros(len(faces), 2, dtype=torch.float64)
    robin = False
    for axis, pair in enumerate(faces):
        for side, face in enumerate(pair):
            if isinstance(face, dict):
                alphas[axis, side] = problem.constant_value(face["robin"])
                robin = True
    return alphas if robin else None


def alpha_at(alphas: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    """Per surface point, the alpha of the face it lies on (from its outward normal)."""
    axis = normals.abs().argmax(dim=1)
    high = (normals.gather(1, axis[:, None])[:, 0] > 0).long()
    return alphas.to(normals)[axis, high]


AlphaAt = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (points, normals) -> (m,)


def wall_alpha(problem: Problem) -> AlphaAt | None:
    """alpha per surface point: the Robin faces' constants (a region's one constant), plus,
    for a Langevin generator with reflecting walls, (grad U . n) / 2T (``spec/langevin.py``,
    ``reflecting_alpha``); None where every free wall has alpha 0 (Neumann)."""
    if isinstance(problem.domain, RegionDomain):
        boundary = problem.domain.boundary
        if not isinstance(boundary, dict):
            return None
        constant = problem.constant_value(boundary["robin"])
        return lambda x, normals: x.new_full((x.shape[0],), constant)
    faces = face_alphas(problem)
    drift = reflecting_field(problem)
    if faces is None and drift is None:
        return None

    def alpha(x: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
        found = x.new_zeros(x.shape[0])
        if faces is not None:
            found = found + alpha_at(faces, normals)
        if drift is not None:
            found = found + (drift(x) * normals).sum(1)
        return found

    return alpha


def reflecting_field(problem: Problem) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """grad U / 2T of a Langevin generator with reflecting (neumann) walls, else None."""
    terms = reflecting_alpha(problem)
    if terms is None:
        return None
    parts = [compile_torch(t, problem.symbols(), problem.parameter_values()) for t in terms]
    return lambda x: torch.stack([p(x) for p in parts], -1)


def with_robin(
    formulation: Formulation, alpha_of: AlphaAt, compiled: CompiledOperator
) -> Formulation:
    """``formulation`` (the weak form) plus kappa * alpha * <u_l, u_m> on the Robin faces
    (kappa * k(x) * alpha with a scalar diffusion k), each half batch's rows from its own
    surface sample of the same size (gradient into the row's function only, as every
    formulation)."""
    kappa, boundary = compiled.operator.kinetic, compiled.boundary_jet
    diffusion = compiled.operator.medium.diffusion

    def terms(
        compiled: CompiledOperator,
        sampler: Sampler,
        network: torch.nn.Module,
        x: torch.Tensor,
        generator: torch.Generator,
    ) -> StepTerms:
        inner = formulation(compiled, sampler, network, x, generator)
        rows = []
        for row in inner.rows:
            xs, normals, scale, surface, volume = wall_points(sampler, x, generator)
            b = boundary(xs)
            hs = mode_values(network, xs, None if b is None else b.value)
            hs = hs if scale is None else hs * scale.unsqueeze(-1)
            alpha = alpha_of(xs, normals)
            if diffusion is not None:
                with torch.no_grad():
                    alpha = alpha * diffusion(xs)
            scaled = hs * alpha.unsqueeze(-1)
            rows.append(row + kappa / volume * surface * row_products(scaled, hs))
        return StepTerms(inner.f, (rows[0], rows[1]))

    return terms


def wall_points(
    sampler: Sampler, x: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, float, float]:
    """Points of the walls for a half batch of ``x``: (points, outward normals, per-point
    scale or None, surface measure, volume), so that surface / volume * the mean of
    scale^2 f over the points is the surface integral of f over the volume. A box: fresh
    samples of its surface; a planar region: its meshed edge, scaled by sqrt(m w_j)."""
    if isinstance(sampler, UniformBox):
        xs, normals, area = box_surface(sampler, x.shape[0] // 2, generator)
        return xs, normals, None, area, math.exp(sampler.log_volume)
    region = cast(UniformRegion, sampler)
    box = region.box
    edge = region_edge(region.inside, tuple(float(v) for v in box.lo),
                       tuple(float(v) for v in box.hi), math.exp(region.log_volume),
                       dtype=x.dtype, device=x.device)
    if edge is None:
        raise ValueError(
            "a Robin wall on a region needs the region meshed (its edge's surface term), "
            "and this region could not be: the mesher missed part of it or failed"
        )
    points, normals, weights, area = edge
    scale = (weights * weights.shape[0] / weights.sum()).sqrt()
    return points, normals, scale, float(weights.sum()), area


def robin_flux(
    network: torch.nn.Module, x: torch.Tensor, normals: torch.Tensor, alpha_of: AlphaAt | None,
    boundary: JetField | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Values u and du/dn + alpha u at surface points (alpha 0 off Robin faces)."""
    b = None if boundary is None else boundary(x)
    jet = with_boundary(b, cast(ModeNetwork, network).jet(x, order=1))
    flux = (jet.grad * normals.unsqueeze(-1)).sum(1)
    if alpha_of is not None:
        flux = flux + alpha_of(x, normals).unsqueeze(-1) * jet.value
    return jet.value, flux
