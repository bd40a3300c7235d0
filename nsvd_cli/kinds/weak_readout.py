"""The weak (energy-form) read-out: Rayleigh-Ritz from first derivatives only, for the
problems whose strong form nsvd does not build (a region with free walls, a matrix
diffusion). Its standard errors do not vanish at eigenfunctions, as the strong form's do.
"""

from __future__ import annotations

import copy
import math
from typing import cast

import numpy as np
import torch

from nsvd_cli.kinds import differential
from nsvd_cli.kinds.base import EVAL_SEED_OFFSET
from nsvd_cli.kinds.differential import no_strong_form
from nsvd_cli.kinds.robin import robin_flux, wall_alpha, wall_points
from nsvd_cli.kinds.schrodinger import CompiledProblem
from nsvd_cli.numerics.media import NO_MEDIUM, MediumValues, joined
from nsvd_cli.numerics.networks import ModeNetwork
from nsvd_cli.numerics.sampling import Sampler, UniformBox
from nsvd_cli.objectives.batch import (
    batch_fields,
    medium_values,
    quadrature_scale,
    readout_rule,
    surface_rule,
    with_boundary,
)
from nsvd_cli.objectives.intervals import Intervals, unavailable
from nsvd_cli.objectives.readout import Ritz, ritz_from_moments, without_stderr
from nsvd_cli.training.settings import Settings

NO_INTERVALS = (
    "residual bounds with Neumann or Robin walls need a bound for functions that miss the "
    "wall condition, which nsvd does not have yet"
)
CHUNK = 8192


def weak_readout(
    compiled: CompiledProblem, network: torch.nn.Module, settings: Settings, shift: float
) -> tuple[Ritz, np.ndarray, Intervals | None]:
    """Rayleigh-Ritz in float64 on fresh samples with the energy form: per point
    kappa grad psi_l . A grad psi_m + V psi_l psi_m over rho psi_l psi_m (in the sampler's
    frame, ``Schrodinger.weak_energy``). Where no strong form applies (a region's free walls,
    a matrix diffusion): its standard errors do not vanish at eigenfunctions. On a 1-D box
    or a planar region the points are a quadrature rule instead (``batch.readout_rule``):
    no Monte-Carlo error, no standard error."""
    net64, device, generator = float64_copy(network, settings)
    sampler = compiled.sampler.to(device, torch.float64)
    rule = readout_rule(compiled, torch.float64, device)
    n = settings.readout.eval_samples if rule is None else rule[0].shape[0]
    values, gradients, potentials, media = [], [], [], []
    for start in range(0, n, CHUNK):
        size = min(CHUNK, n - start)
        x = sampler.sample(size, generator) if rule is None else rule[0][start:start + size]
        envelope, v, b = batch_fields(compiled, sampler, x)
        with torch.no_grad():
            jet = with_boundary(b, cast(ModeNetwork, net64).jet(x, order=1))
        values.append(jet.value)
        gradients.append(jet.grad + jet.value.unsqueeze(1) * envelope.grad.unsqueeze(-1))
        potentials.append(v)
        media.append(medium_values(compiled, x))
    h, grad, v = torch.cat(values), torch.cat(gradients), torch.cat(potentials)
    if rule is not None:
        scale = quadrature_scale(rule[1])
        h, grad = h * scale, grad * scale.unsqueeze(1)
    surface = robin_edge_energy(compiled, net64, sampler, h, generator)
    r, energy = weak_ritz(h, grad, v, compiled.operator.kinetic, joined(media), surface)
    r = r if rule is None else without_stderr(r)
    native = differential.native_energies(
        settings.method, shift, settings.transform.scale, r.gram, energy
    )
    modes = compiled.problem.modes
    medium = compiled.operator.medium
    why = no_strong_form(medium) if medium.weak_only else NO_INTERVALS
    return r.first(modes), native[:modes].cpu().numpy(), unavailable(modes, why)


def robin_edge_energy(
    compiled: CompiledProblem, network: torch.nn.Module, sampler: Sampler, h: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor | None:
    """The Robin term kappa k alpha <u_l, u_m> over the walls, per volume as the interior
    means are: a region's meshed edge (``robin.wall_points``), a box's faces as a product
    Gauss rule (``batch.surface_rule``; fresh surface samples where the inside is sampled
    too, a weak-only medium that may jump in 2-D or 3-D); None without Robin walls."""
    alpha_of = wall_alpha(compiled.problem)
    if alpha_of is None:
        return None
    faces = surface_rule(compiled, h.dtype, h.device)
    if faces is not None:
        xs, normals, w, surface = faces
        scale: torch.Tensor | None = (w * w.shape[0]).sqrt()
        volume = math.exp(cast(UniformBox, sampler).log_volume)
    else:
        xs, normals, scale, surface, volume = wall_points(sampler, h, generator)
    with torch.no_grad():
        if isinstance(sampler, UniformBox):  # mixed walls: the Dirichlet faces' factor
            hs = robin_flux(network, xs, normals, None, compiled.boundary)[0]
        else:
            hs = cast(ModeNetwork, network).jet(xs, order=0).value
    hs = hs if scale is None else hs * scale.unsqueeze(-1)
    alpha = alpha_of(xs, normals)
    k = compiled.operator.medium.values(xs).diffusion
    alpha = alpha if k is None else alpha * k
    weight = compiled.operator.kinetic / volume * surface
    return weight * (hs * alpha.unsqueeze(-1)).T @ hs / hs.shape[0]


def weak_ritz(
    h: torch.Tensor, grad: torch.Tensor, v: torch.Tensor, kappa: float,
    medium: MediumValues = NO_MEDIUM, surface: torch.Tensor | None = None,
) -> tuple[Ritz, torch.Tensor]:
    """Rayleigh-Ritz from values h (n, L), gradients (n, d, L), V (n,) and the medium: the
    Ritz pairs with standard errors, and the energy matrix
    E[kappa grad h . A grad h^T + V h h^T] (the Gram matrix E[rho h h^T]), plus
    ``surface`` (L, L), a Robin wall's term from exact edge points (no variance)."""
    n = h.shape[0]
    g = medium.weighted(h)
    gram = g.T @ g / n
    flux = medium.flux(grad)
    energy = kappa * torch.einsum("ndl,ndm->lm", grad, flux) / n + (h * v[:, None]).T @ h / n
    if surface is not None:
        energy = energy + surface
    _, c = ritz_from_moments(gram, energy)
    u, wu = h @ c, g @ c
    gu, fu = (torch.einsum("ndl,lm->ndm", t, c) for t in (grad, flux))
    per_point = kappa * (gu * fu).sum(1) + v[:, None] * u * u
    norm = (wu * wu).mean(0)
    eigenvalues = per_point.mean(0) / norm
    if surface is not None:
        eigenvalues = eigenvalues + torch.diagonal(c.T @ surface @ c) / norm
    stderr = (per_point - eigenvalues * wu * wu).std(0) / (n**0.5 * norm)
    ritz_result = ascending(eigenvalues, stderr, c, gram, energy)
    return ritz_result, energy


def float64_copy(
    network: torch.nn.Module, settings: Settings
) -> tuple[torch.nn.Module, torch.device, torch.Generator]:
    """The read-out's float64 copy of the network, its device and the read-out's stream."""
    net64 = copy.deepcopy(network).double()
    device = next(net64.parameters()).device
    generator = torch.Generator(device=device).manual_seed(settings.seed + EVAL_SEED_OFFSET)
    return net64, device, generator


def ascending(
    eigenvalues: torch.Tensor, stderr: torch.Tensor, c: torch.Tensor, gram: torch.Tensor,
    energy: torch.Tensor,
) -> Ritz:
    """The Ritz pairs in ascending order, with each learned function's own quotient."""
    order = torch.argsort(eigenvalues)
    quotients = torch.diagonal(energy) / torch.diagonal(gram)
    return Ritz(eigenvalues[order], stderr[order], c[:, order], gram, quotients)
