"""Derivatives of networks: the engines that give values, gradients and Laplacians.

Three engines, all returning a ``Jet`` of the network's L outputs:

* ``forward-laplacian`` (exact): one forward pass carrying the gradient along the d
  coordinate axes and the Laplacian through every layer (``jets.py``); cost about
  ``d + 2`` plain forward passes, no autograd.
* ``hutchinson`` (stochastic, unbiased): the same pass along k random Rademacher directions
  with weights 1/k, cost about ``k + 2`` forward passes whatever d is. The Laplacian and the
  gradient products become unbiased estimates; ``hutchinson_variance`` measures how noisy.
* ``autograd`` (exact, slow, obviously correct): ``torch.autograd.grad`` called once per
  output for the gradient and once per output and coordinate for the Laplacian. The tests
  hold the other engines to it; it is selectable for debugging a new network.

Batch rows are independent, so the gradient of ``sum_b u(x_b)`` with respect to ``x`` is
the per-row gradient: that is what lets the reference use whole-batch autograd calls.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from nsvd_cli.numerics.jets import Jet, Tangents
from nsvd_cli.numerics.networks import ModeNetwork

JetEngine = Callable[[ModeNetwork, torch.Tensor, torch.Generator], Jet]


def reference_jet(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Jet:
    """Value, gradient and Laplacian of ``fn: (B, d) -> (B, L)`` or ``(B,)`` by nested autograd.

    O(L d) backward passes: slow on purpose, the yardstick for the fast engines (and cheap
    enough for scalar fields such as a region's boundary factor).
    """
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        y = fn(xg)
        scalar = y.dim() == 1
        columns = y.unsqueeze(-1) if scalar else y
        grads, laps = [], []
        for out in range(columns.shape[1]):
            g = _grad(columns[:, out].sum(), xg, create_graph=True)
            lap = torch.zeros_like(g[:, 0])
            for i in range(x.shape[1]):
                if g.requires_grad:
                    lap = lap + _grad(g[:, i].sum(), xg, retain_graph=True)[:, i]
            grads.append(g.detach())
            laps.append(lap.detach())
    if scalar:
        return Jet(y.detach(), grads[0], laps[0])
    return Jet(y.detach(), torch.stack(grads, -1), torch.stack(laps, -1))


def _grad(out: torch.Tensor, x: torch.Tensor, **kwargs: bool) -> torch.Tensor:
    """d out / d x, zeros where ``out`` does not depend on ``x`` at all."""
    if not out.requires_grad:
        return torch.zeros_like(x)
    (g,) = torch.autograd.grad(out, x, allow_unused=True, **kwargs)  # type: ignore[call-overload]
    return torch.zeros_like(x) if g is None else g


def forward_laplacian(network: ModeNetwork, x: torch.Tensor, generator: torch.Generator) -> Jet:
    return network.jet(x)


def hutchinson(probes: int) -> JetEngine:
    def engine(network: ModeNetwork, x: torch.Tensor, generator: torch.Generator) -> Jet:
        n, d = x.shape
        tangents = Tangents.rademacher(n, d, probes, generator).to(x.dtype)
        return network.jet(x, tangents)

    return engine


def autograd(network: ModeNetwork, x: torch.Tensor, generator: torch.Generator) -> Jet:
    return reference_jet(network, x)


def hutchinson_variance(
    network: ModeNetwork, x: torch.Tensor, probes: int, generator: torch.Generator
) -> float:
    """Relative variance of the Hutchinson Laplacian, E|est - exact|^2 / E|exact|^2.

    One probe draw per point, averaged over the batch and the outputs; divide by the
    number of independent draws to get the variance of a batch mean.
    """
    with torch.no_grad():
        exact = network.jet(x).lap
        estimate = hutchinson(probes)(network, x, generator).lap
    assert exact is not None and estimate is not None
    return float(((estimate - exact) ** 2).mean() / (exact**2).mean().clamp_min(1e-300))
