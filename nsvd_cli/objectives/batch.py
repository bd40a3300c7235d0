"""One Monte-Carlo batch: the learned functions and the operator applied to them.

Shared by training and read-out so both see exactly the same definitions:
``h`` are the mode values in the sampler frame (boundary factor included) and ``Hh`` is
``H~ h`` (see ``operators.py``); batch means of ``h h^T`` and ``h Hh^T`` estimate the Gram
and energy matrices of the physical functions ``psi = e^a h``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, cast

import torch

from nsvd_cli.numerics.jets import Jet
from nsvd_cli.numerics.media import MediumValues
from nsvd_cli.numerics.networks import ModeNetwork
from nsvd_cli.numerics.operators import Schrodinger, finite_potential
from nsvd_cli.numerics.quadrature import (
    MIN_PANEL_NODES,
    NODES,
    box_faces,
    gauss_legendre,
    region_rule,
    tensor_gauss,
)
from nsvd_cli.numerics.sampling import Sampler, UniformBox, UniformRegion


class CompiledOperator(Protocol):
    """What a batch needs of a compiled differential problem (built in ``kinds``)."""

    operator: Schrodinger
    sampler: Sampler

    def boundary_jet(self, x: torch.Tensor) -> Jet | None: ...


@dataclass(frozen=True)
class Batch:
    x: torch.Tensor
    # With a weight rho, in its frame (sqrt(rho) h, H~h / sqrt(rho)): plain means are the
    # weighted inner products (``media.py``).
    h: torch.Tensor  # (B, L), detached
    hh: torch.Tensor  # (B, L): H~ h, detached
    boundary: torch.Tensor | None  # (B,) boundary factor values, or None


def with_boundary(b: Jet | None, f: Jet) -> Jet:
    """h = b * f: the network's jet times the boundary factor's (projected onto f's tangents)."""
    if b is None:
        return f
    if f.lap is None:
        b = b.first_order()
    return b.in_frame_of(f).unsqueeze_features() * f


def batch_fields(
    compiled: CompiledOperator, sampler: Sampler, x: torch.Tensor
) -> tuple[Jet, torch.Tensor, Jet | None]:
    """The envelope a, the potential V and the boundary factor b at x (no graph)."""
    with torch.no_grad():
        envelope = sampler.envelope(x)
        v = finite_potential(compiled.operator.potential, x)
        return envelope, v, compiled.boundary_jet(x)


def medium_values(compiled: CompiledOperator, x: torch.Tensor) -> MediumValues:
    """The diffusion, its gradient and the weight at x (None where constant), no graph."""
    return compiled.operator.medium.values(x)


def drift_values(compiled: CompiledOperator, x: torch.Tensor) -> torch.Tensor | None:
    """The drift b(x) (B, d), or None without one."""
    drift = compiled.operator.drift
    if drift is None:
        return None
    with torch.no_grad():
        return drift(x)


def evaluate_batch(
    compiled: CompiledOperator, sampler: Sampler, network: torch.nn.Module, x: torch.Tensor
) -> Batch:
    """h and H~ h (with a drift: A~ h) at the points x (exact derivatives), no autograd graph."""
    envelope, v, b = batch_fields(compiled, sampler, x)
    m = medium_values(compiled, x)
    with torch.no_grad():
        h = with_boundary(b, cast(ModeNetwork, network).jet(x))
        hh = compiled.operator.apply(h, envelope, v, drift_values(compiled, x), m)
    values, applied = m.frame(h.value, hh)
    return Batch(x, values, applied, None if b is None else b.value)


def mode_values(
    network: torch.nn.Module, x: torch.Tensor, boundary: torch.Tensor | None
) -> torch.Tensor:
    """h at x with the autograd graph (the part that training differentiates)."""
    f = network(x)
    return f if boundary is None else boundary.unsqueeze(-1) * f


def sample_modes(
    compiled: CompiledOperator,
    network: torch.nn.Module,
    n: int,
    generator: torch.Generator,
    chunk: int = 8192,
) -> Batch:
    """h and H~h on n fresh points, in the network's dtype and device, chunked for memory."""
    p = next(network.parameters())
    sampler = compiled.sampler.to(p.device, p.dtype)
    parts: list[Batch] = []
    for start in range(0, n, chunk):
        x = sampler.sample(min(chunk, n - start), generator)
        parts.append(evaluate_batch(compiled, sampler, network, x))
    return Batch(
        torch.cat([b.x for b in parts]),
        torch.cat([b.h for b in parts]),
        torch.cat([b.hh for b in parts]),
        None if parts[0].boundary is None else torch.cat([b.boundary for b in parts if b.boundary is not None]),  # noqa: E501
    )


# Gauss nodes per axis of a 2-D or 3-D box's read-out: about 65000 points, as many as a
# planar region's rule; smooth functions with ten half-waves per axis integrate to rounding.
TENSOR_NODES = {2: 256, 3: 40}


def readout_rule(
    compiled: CompiledOperator, dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Quadrature points and weights (summing to 1) for the read-out, or None to sample:
    Gauss-Legendre on a box (split at a 1-D problem's jumps; a product rule in 2-D and
    3-D, unless a coefficient may jump), exact to rounding for these smooth functions, and
    a curved-mesh rule on a planar region, exact to about 1e-8 (``quadrature.py``)."""
    sampler, plan = compiled.sampler, planned_rule(compiled)
    if plan == "gauss-legendre":
        assert isinstance(sampler, UniformBox)
        return gauss_legendre(float(sampler.lo[0]), float(sampler.hi[0]), dtype=dtype,
                              device=device, breaks=compiled.operator.jumps_at)
    if plan == "product-gauss":
        assert isinstance(sampler, UniformBox)
        lo, hi = (tuple(float(v) for v in t) for t in (sampler.lo, sampler.hi))
        return tensor_gauss(lo, hi, TENSOR_NODES[sampler.dim], dtype, device)
    if plan == "region-mesh":
        assert isinstance(sampler, UniformRegion)
        box = sampler.box
        bounds = (tuple(float(v) for v in box.lo), tuple(float(v) for v in box.hi))
        area = math.exp(sampler.log_volume)
        return region_rule(sampler.inside, *bounds, area, dtype=dtype, device=device)
    return None


# How check, errors and the memory check name each planned rule.
RULE_NAMES = {
    "gauss-legendre": "Gauss-Legendre nodes, split at jumps",
    "product-gauss": "product Gauss rule of the box and its faces",
    "region-mesh": "rule of a curved mesh of the region; sampled if the mesher fails",
}


def planned_points(plan: str, dim: int, breaks: int = 0) -> int | None:
    """How many points the planned rule reads (None: a region's mesh, known once built)."""
    if plan == "gauss-legendre":
        return NODES + (MIN_PANEL_NODES + 1) * (breaks + 1)  # at most: short panels get more
    if plan == "product-gauss":
        return int(TENSOR_NODES[dim] ** dim)
    return None


def planned_rule(compiled: CompiledOperator) -> str:
    """Which rule ``readout_rule`` builds, decided without building it (a region's mesh
    takes half a second): "gauss-legendre" (a 1-D box), "product-gauss" (a 2-D or 3-D box
    whose coefficients cannot jump: jumps are located in 1-D only), "region-mesh" (a planar
    region; the mesher may still fail, and the read-out then samples), or "" (it samples)."""
    sampler = compiled.sampler
    if isinstance(sampler, UniformBox) and sampler.dim == 1:
        return "gauss-legendre"
    if isinstance(sampler, UniformBox) and sampler.dim in TENSOR_NODES:
        return "" if compiled.operator.may_jump else "product-gauss"
    if isinstance(sampler, UniformRegion) and sampler.dim == 2:
        return "region-mesh"
    return ""


def surface_rule(
    compiled: CompiledOperator, dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float] | None:
    """The walls of a box whose read-out is a quadrature rule, as a rule too (points,
    outward normals, weights summing to 1, area: ``quadrature.box_faces``); else None."""
    sampler = compiled.sampler
    if not isinstance(sampler, UniformBox) or readout_rule(compiled) is None:
        return None
    lo, hi = (tuple(float(v) for v in t) for t in (sampler.lo, sampler.hi))
    return box_faces(lo, hi, TENSOR_NODES.get(sampler.dim, 1), dtype, device)


def exact_points(compiled: CompiledOperator) -> bool:
    """Whether the read-out integrates by quadrature instead of sampling."""
    return readout_rule(compiled) is not None


def quadrature_scale(weights: torch.Tensor) -> torch.Tensor:
    """sqrt(n w_i) per point (n, 1): values scaled by it make plain means over the points
    the quadrature's integrals (over the domain's length, area or volume)."""
    return (weights * weights.shape[0]).sqrt().unsqueeze(-1)


def quadrature_modes(
    compiled: CompiledOperator, network: torch.nn.Module, chunk: int = 8192
) -> Batch:
    """h and H~h on the read-out's quadrature points (``readout_rule``), scaled by
    ``quadrature_scale``."""
    p = next(network.parameters())
    rule = readout_rule(compiled, p.dtype, p.device)
    assert rule is not None, "quadrature_modes needs a quadrature rule (exact_points)"
    x, w = rule
    sampler = compiled.sampler.to(p.device, p.dtype)
    parts = [evaluate_batch(compiled, sampler, network, x[s:s + chunk])
             for s in range(0, x.shape[0], chunk)]
    scale = quadrature_scale(w)
    boundary = None if parts[0].boundary is None else torch.cat(
        [b.boundary for b in parts if b.boundary is not None])
    return Batch(x, torch.cat([b.h for b in parts]) * scale,
                 torch.cat([b.hh for b in parts]) * scale, boundary)
