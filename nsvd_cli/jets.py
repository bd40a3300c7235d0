"""Second-order jets: a function's value, gradient and Laplacian carried together.

A ``Jet`` holds, for a batch of points ``x`` of shape ``(B, d)``, the values ``u`` of some
functions (shape ``(B, *F)``), their gradients ``grad u`` (shape ``(B, d, *F)``: the
coordinate axis second, so a linear layer is one matmul over all of it) and their
Laplacians ``lap u`` (shape ``(B, *F)``). Propagating jets forward through a network is the
"forward Laplacian": one pass costs about ``d + 2`` plain forward passes and gives the exact
Laplacian of every output at once, with no nested autograd. The rules used are

    linear:       z = u W^T + b      grad z = grad u W^T        lap z = lap u W^T
    elementwise:  s = sigma(u)       grad s = sigma'(u) grad u
                                     lap s  = sigma'(u) lap u + sigma''(u) |grad u|^2
    product:      grad(uv) = u grad v + v grad u,  lap(uv) = u lap v + v lap u + 2 grad u . grad v
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Activation = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Jet:
    value: torch.Tensor
    grad: torch.Tensor
    lap: torch.Tensor

    @staticmethod
    def constant(value: torch.Tensor, dim: int) -> Jet:
        return Jet(
            value,
            value.new_zeros((value.shape[0], dim, *value.shape[1:])),
            torch.zeros_like(value),
        )

    def linear(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> Jet:
        """z = u W^T + b over the last feature axis (value (B, n) -> (B, m))."""
        value = torch.nn.functional.linear(self.value, weight, bias)
        grad = torch.nn.functional.linear(self.grad, weight)
        lap = torch.nn.functional.linear(self.lap, weight)
        return Jet(value, grad, lap)

    def apply(self, activation: Activation) -> Jet:
        s, ds, d2s = activation(self.value)
        grad = ds.unsqueeze(1) * self.grad
        lap = ds * self.lap + d2s * (self.grad * self.grad).sum(1)
        return Jet(s, grad, lap)

    def __mul__(self, other: Jet) -> Jet:
        value = self.value * other.value
        grad = self.value.unsqueeze(1) * other.grad + other.value.unsqueeze(1) * self.grad
        lap = (
            self.value * other.lap + other.value * self.lap + 2.0 * (self.grad * other.grad).sum(1)
        )
        return Jet(value, grad, lap)

    def unsqueeze_features(self) -> Jet:
        """(B,) -> (B, 1) so a scalar jet broadcasts against a (B, L) jet."""
        return Jet(self.value.unsqueeze(-1), self.grad.unsqueeze(-1), self.lap.unsqueeze(-1))

    def cat(self, other: Jet) -> Jet:
        return Jet(
            torch.cat([self.value, other.value], dim=-1),
            torch.cat([self.grad, other.grad], dim=-1),
            torch.cat([self.lap, other.lap], dim=-1),
        )


def silu(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SiLU u*sigmoid(u) and its first two derivatives."""
    s = torch.sigmoid(u)
    ds = s * (1.0 + u * (1.0 - s))
    d2s = s * (1.0 - s) * (2.0 + u * (1.0 - 2.0 * s))
    return u * s, ds, d2s


def tanh(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    t = torch.tanh(u)
    dt = 1.0 - t * t
    return t, dt, -2.0 * t * dt


def softplus(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    s = torch.sigmoid(u)
    return torch.nn.functional.softplus(u), s, s * (1.0 - s)


ACTIVATIONS: dict[str, Activation] = {"silu": silu, "tanh": tanh, "softplus": softplus}


def radius(x: torch.Tensor, eps: float = 1e-12) -> Jet:
    """r = sqrt(|x|^2 + eps^2) as a jet; eps keeps the origin finite (measure zero anyway).

    d_i r = x_i / r,   lap r = d / r - |x|^2 / r^3.
    """
    d = x.shape[1]
    r2 = (x * x).sum(-1)
    r = torch.sqrt(r2 + eps * eps)
    grad = x / r.unsqueeze(-1)
    lap = d / r - r2 / r**3
    return Jet(r, grad, lap)
