"""Schrödinger operators H = -kappa * Laplacian + V in the sampler's frame.

The network's output ``h`` (already multiplied by the boundary factor) is related to the
physical function by ``psi = e^a h`` (``a`` from the sampler, see ``sampling.py``). The
operator that acts on ``h`` is the similarity transform ``H~ = e^{-a} H e^{a}``::

    H~ h = -kappa * (lap h + 2 grad a . grad h + (lap a + |grad a|^2) h) + V h

so that ``psi H psi / p = h H~ h`` pointwise. Everything here is exact (jets, no finite
differences) and batched over all modes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .jets import Jet

Field = Callable[[torch.Tensor], torch.Tensor]
JetField = Callable[[torch.Tensor], Jet]


def finite_potential(potential: Field, x: torch.Tensor) -> torch.Tensor:
    """V(x) with non-finite values (a Coulomb centre hit exactly) replaced by 0.

    Such points have probability zero under any sampler here; zeroing keeps one unlucky
    point from turning a whole batch into NaN.
    """
    v = potential(x)
    return torch.where(torch.isfinite(v), v, torch.zeros_like(v))


@dataclass(frozen=True)
class Schrodinger:
    kinetic: float
    potential: Field

    def apply(self, h: Jet, envelope: Jet, v: torch.Tensor) -> torch.Tensor:
        """H~ h for h of value shape (B, L), envelope a of value shape (B,), V of shape (B,)."""
        ga = envelope.grad.unsqueeze(-1)  # (B, d, 1)
        drift = 2.0 * (h.grad * ga).sum(1)
        mult = envelope.lap + (envelope.grad * envelope.grad).sum(1)
        kin = h.lap + drift + mult.unsqueeze(-1) * h.value
        return -self.kinetic * kin + v.unsqueeze(-1) * h.value


def box_factor(lo: torch.Tensor, hi: torch.Tensor) -> JetField:
    """b(x) = prod_i (x_i - lo_i)(hi_i - x_i) / w_i^2, w_i the half width: 1 at the centre.

    It vanishes on every face, so b * network satisfies the Dirichlet condition exactly.
    """

    def factor(x: torch.Tensor) -> Jet:
        low, up = lo.to(x), hi.to(x)
        w2 = ((up - low) / 2) ** 2
        q = (x - low) * (up - x) / w2  # (B, d)
        dq = (up + low - 2 * x) / w2
        d2q = -2.0 / w2
        b, d = x.shape
        jet = Jet.constant(x.new_ones(b), d)
        for i in range(d):
            grad = x.new_zeros(b, d)
            grad[:, i] = dq[:, i]  # (B, d): scalar jets keep the coordinate axis last
            jet = jet * Jet(q[:, i], grad, d2q[i].expand(b))
        return jet

    return factor
