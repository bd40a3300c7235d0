"""Robin walls on a box (du/dn + alpha u = 0): the surface term of the energy form.

The energy form with Robin faces is <grad u, kappa grad v> + <V u, v> plus
kappa * alpha * (surface integral of u v) over them; its minimisers meet the Robin
condition on those faces without any constraint (it is natural, like Neumann's). Training
adds the surface term to each half batch's rows from its own sample of the box's surface;
the read-out's wall term becomes kappa * (surface integral of u (du/dn + alpha u)), which
vanishes pointwise at an eigenfunction as Neumann's does.
"""

from __future__ import annotations

import math
from typing import cast

import torch

from nsvd_cli.numerics.networks import ModeNetwork
from nsvd_cli.numerics.operators import JetField
from nsvd_cli.numerics.quadrature import end_points
from nsvd_cli.numerics.sampling import Sampler, UniformBox, box_surface
from nsvd_cli.objectives.batch import CompiledOperator, mode_values, with_boundary
from nsvd_cli.objectives.formulations import Formulation, StepTerms, row_products
from nsvd_cli.spec import Problem


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


def with_robin(
    formulation: Formulation, alphas: torch.Tensor, compiled: CompiledOperator
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
        box = cast(UniformBox, sampler)
        weight = kappa / math.exp(box.log_volume)
        rows = []
        for row in inner.rows:
            # A 1-D box's surface is its two ends: exact, not a noisy choice between them.
            xs, normals, area = (
                end_points(float(box.lo[0]), float(box.hi[0]), x.dtype, x.device)
                if box.dim == 1 else box_surface(box, x.shape[0] // 2, generator)
            )
            b = boundary(xs)
            hs = mode_values(network, xs, None if b is None else b.value)
            alpha = alpha_at(alphas, normals)
            if diffusion is not None:
                with torch.no_grad():
                    alpha = alpha * diffusion(xs)
            scaled = hs * alpha.unsqueeze(-1)
            rows.append(row + weight * area * row_products(scaled, hs))
        return StepTerms(inner.f, (rows[0], rows[1]))

    return terms


def robin_flux(
    network: torch.nn.Module, x: torch.Tensor, normals: torch.Tensor, alphas: torch.Tensor | None,
    boundary: JetField | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Values u and du/dn + alpha u at surface points (alpha 0 off Robin faces)."""
    b = None if boundary is None else boundary(x)
    jet = with_boundary(b, cast(ModeNetwork, network).jet(x, order=1))
    flux = (jet.grad * normals.unsqueeze(-1)).sum(1)
    if alphas is not None:
        flux = flux + alpha_at(alphas, normals).unsqueeze(-1) * jet.value
    return jet.value, flux
