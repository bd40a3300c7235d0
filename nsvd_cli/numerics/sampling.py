"""Where the Monte-Carlo points come from, and the envelope that goes with them.

Every sampler draws points x ~ p and provides the log-amplitude ``a(x)`` of the envelope
``e^a`` that multiplies the network: the physical function is ``psi = e^a h`` with ``h`` the
(boundary-masked) network output. Choosing ``e^{2a} = p / vol`` makes plain batch means
unbiased estimates of L2(dx) inner products, up to the constant ``vol``::

    <psi_l, psi_m> = vol * E_p[h_l h_m],      <psi_l, H psi_m> = vol * E_p[h_l (H~ h_m)]

with ``H~ = e^{-a} H e^{a}`` (see ``operators.py``). The constant never changes eigenvalues.

* Whole space: a mixture of centred Gaussians, ``a = log p / 2`` (the network output is
  psi / sqrt(p); psi then decays wherever the network stays bounded).
* Box and region: uniform points (regions by rejection from their bounds), ``a = 0``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from nsvd_cli.numerics.jets import Jet


class Sampler(Protocol):
    @property
    def dim(self) -> int: ...

    @property
    def log_volume(self) -> float: ...

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor: ...

    def envelope(self, x: torch.Tensor) -> Jet: ...

    def log_amplitude(self, x: torch.Tensor) -> torch.Tensor: ...

    def to(self, device: torch.device | str, dtype: torch.dtype) -> Sampler: ...


@dataclass
class GaussianMixture:
    """p(x) = (1/K) sum_k N(x; center, R diag(scales[k]^2) R^T), K components of any scales.

    ``axes`` is the orthogonal R (columns are the principal axes; None: the coordinate axes),
    shared by all components, so ``z = R^T (x - center) / s_k`` is standard normal under
    component k and everything below is the axis-aligned formula in rotated coordinates.
    """

    center: torch.Tensor  # (d,)
    scales: torch.Tensor  # (K, d), along the axes
    axes: torch.Tensor | None = None  # (d, d)
    log_volume: float = 0.0

    @property
    def dim(self) -> int:
        return int(self.center.shape[0])

    def to(self, device: torch.device | str, dtype: torch.dtype) -> GaussianMixture:
        axes = None if self.axes is None else self.axes.to(device, dtype)
        return GaussianMixture(self.center.to(device, dtype), self.scales.to(device, dtype), axes)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        k = self.scales.shape[0]
        dev, dt = self.center.device, self.center.dtype
        idx = torch.randint(k, (n,), generator=generator, device=dev)
        z = torch.randn(n, self.dim, generator=generator, device=dev, dtype=dt)
        step = z * self.scales[idx]
        return self.center + (step if self.axes is None else step @ self.axes.T)

    def _components(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s = self.scales.to(x.dtype)
        y = x - self.center.to(x.dtype)
        if self.axes is not None:
            y = y @ self.axes.to(x.dtype)
        z = y.unsqueeze(1) / s  # (B, K, d)
        log_comp = (
            -0.5 * (z * z).sum(-1) - torch.log(s).sum(-1) - 0.5 * self.dim * math.log(2 * math.pi)
        )
        return z, s, log_comp

    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        _, s, log_comp = self._components(x)
        return torch.logsumexp(log_comp, dim=1) - math.log(s.shape[0])

    def log_amplitude(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.log_density(x)

    def envelope(self, x: torch.Tensor) -> Jet:
        """a = log p / 2 in closed form. With responsibilities r_k and g_k = -z_k / s_k:

        grad log p = sum_k r_k g_k,
        lap log p  = sum_k r_k (|g_k|^2 - sum_i 1/s_ki^2) - |grad log p|^2.
        """
        z, s, log_comp = self._components(x)
        log_p = torch.logsumexp(log_comp, dim=1)
        r = torch.exp(log_comp - log_p.unsqueeze(1))  # (B, K)
        g = -z / s  # (B, K, d)
        grad = (r.unsqueeze(-1) * g).sum(1)
        inner = (g * g).sum(-1) - (1.0 / (s * s)).sum(-1)
        lap = (r * inner).sum(1) - (grad * grad).sum(-1)  # rotation invariant
        if self.axes is not None:
            grad = grad @ self.axes.to(x.dtype).T
        return Jet(0.5 * (log_p - math.log(s.shape[0])), 0.5 * grad, 0.5 * lap)


@dataclass
class UniformBox:
    """Uniform points in [lo, hi]^d; the envelope is constant (a = 0)."""

    lo: torch.Tensor
    hi: torch.Tensor

    @property
    def dim(self) -> int:
        return int(self.lo.shape[0])

    @property
    def log_volume(self) -> float:
        return float(torch.log(self.hi - self.lo).sum())

    def to(self, device: torch.device | str, dtype: torch.dtype) -> UniformBox:
        return UniformBox(self.lo.to(device, dtype), self.hi.to(device, dtype))

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        u = torch.rand(n, self.dim, generator=generator, device=self.lo.device, dtype=self.lo.dtype)
        return self.lo + u * (self.hi - self.lo)

    def log_amplitude(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0])

    def envelope(self, x: torch.Tensor) -> Jet:
        return Jet.constant(x.new_zeros(x.shape[0]), x.shape[1])


@dataclass
class UniformRegion:
    """Uniform points in {inside(x) > 0}, by rejection from a bounding box."""

    box: UniformBox
    inside: Callable[[torch.Tensor], torch.Tensor]
    acceptance: float  # fraction of the bounding box inside the region (estimated once)

    @property
    def dim(self) -> int:
        return self.box.dim

    @property
    def log_volume(self) -> float:
        return self.box.log_volume + math.log(self.acceptance)

    def to(self, device: torch.device | str, dtype: torch.dtype) -> UniformRegion:
        return UniformRegion(self.box.to(device, dtype), self.inside, self.acceptance)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        chunks: list[torch.Tensor] = []
        have = 0
        # Oversample by the expected rejection rate so one or two rounds usually suffice.
        draw = int(n / max(self.acceptance, 1e-3) * 1.2) + 16
        for _ in range(10_000):
            x = self.box.sample(draw, generator)
            x = x[self.inside(x) > 0]
            chunks.append(x)
            have += x.shape[0]
            if have >= n:
                return torch.cat(chunks)[:n]
        raise RuntimeError("region sampling failed: the region is (almost) empty in its bounds")

    def log_amplitude(self, x: torch.Tensor) -> torch.Tensor:
        return self.box.log_amplitude(x)

    def envelope(self, x: torch.Tensor) -> Jet:
        return self.box.envelope(x)


def box_surface(
    box: UniformBox, n: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``n`` uniform points on the surface of ``box``, their outward unit normals (n, d),
    and the surface area: a face pair is drawn in proportion to its area, then a face of
    the pair and a point on it uniformly. A 1-D box's surface is its two ends: both of
    them, whatever ``n`` (their mean is then exact, not a noisy choice between them), with
    the counting measure 2."""
    if box.dim == 1:
        x = torch.stack([box.lo, box.hi])  # (2, 1)
        return x, torch.tensor([[-1.0], [1.0]], dtype=x.dtype, device=x.device), 2.0
    side = box.hi - box.lo
    pair_area = torch.prod(side) / side  # (d,): the area of each of the two faces of an axis
    axis = torch.multinomial(pair_area / pair_area.sum(), n, replacement=True, generator=generator)
    high = torch.rand(n, generator=generator, device=side.device, dtype=side.dtype) < 0.5
    x = box.sample(n, generator)
    rows = torch.arange(n, device=side.device)
    x[rows, axis] = torch.where(high, box.hi[axis], box.lo[axis])
    normals = torch.zeros_like(x)
    normals[rows, axis] = torch.where(high, 1.0, -1.0).to(x.dtype)
    return x, normals, float(2 * pair_area.sum())
