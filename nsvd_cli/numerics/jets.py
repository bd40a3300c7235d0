"""Second-order jets: a function's value, derivatives and Laplacian carried together.

A ``Jet`` holds, for a batch of points ``x`` of shape ``(B, d)``, the values ``u`` of some
functions (shape ``(B, *F)``), their derivatives along ``k`` tangent directions ``s_j``
(shape ``(B, k, *F)``: the tangent axis second, so a linear layer is one matmul over all of
it) and the weighted second-derivative trace ``sum_j w_j s_j^T (Hess u) s_j`` (shape
``(B, *F)``). With the ``d`` coordinate axes as tangents and unit weights (``tangents=None``,
the exact case) the derivatives are the gradient and the trace is the Laplacian.

Propagating jets forward through a network is the "forward Laplacian": one pass costs about
``k + 2`` plain forward passes and gives the Laplacian of every output at once, with no
nested autograd. With ``k < d`` random directions of ``E[sum_j w_j s_j s_j^T] = I`` (see
``Tangents.rademacher``) the same pass is Hutchinson's stochastic trace estimator: the trace
and every product of derivatives ``grad u . grad v`` become unbiased estimates. The rules
(``<a, b>_w = sum_j w_j a_j b_j``) are

    linear:       z = u W^T + b      Du_j -> Du_j W^T             lap z = lap u W^T
    elementwise:  s = sigma(u)       Ds_j = sigma'(u) Du_j
                                     lap s  = sigma'(u) lap u + sigma''(u) <Du, Du>_w
    product:      D(uv) = u Dv + v Du,   lap(uv) = u lap v + v lap u + 2 <Du, Dv>_w

A first-order jet (``lap=None``) carries values and derivatives only (the weak form).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch


class Activation(Protocol):
    """An elementwise function with its first two derivatives. ``second=False`` may leave
    the second out (None): a jet without a Laplacian (the weak form, first derivatives
    only) has no use for it, and in 1-D its forward ops were a fifth of a step."""

    def __call__(
        self, u: torch.Tensor, /, second: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]: ...


@dataclass(frozen=True)
class Tangents:
    """k directions per point, ``directions[b, j] = s_j`` (shape (B, k, d)), and weights w_j."""

    directions: torch.Tensor
    weights: torch.Tensor

    @staticmethod
    def rademacher(n: int, d: int, probes: int, generator: torch.Generator) -> Tangents:
        """Independent +-1 directions with weights 1/k: E[sum_j w_j s_j s_j^T] = I.

        Rademacher probes give the smallest variance among i.i.d. probe distributions:
        Var(s^T A s) = 2 sum_{i != j} A_ij^2, with no diagonal contribution.
        """
        device = generator.device
        signs = torch.randint(0, 2, (n, probes, d), generator=generator, device=device)
        directions = 2.0 * signs - 1.0
        weights = torch.full((probes,), 1.0 / probes, device=device)
        return Tangents(directions, weights)

    def to(self, dtype: torch.dtype) -> Tangents:
        return Tangents(self.directions.to(dtype), self.weights.to(dtype))

    def project(self, jet: Jet) -> Jet:
        """An exact (coordinate-axis) jet's derivatives along these directions.

        The Laplacian stays exact: an exact value is an unbiased estimate of itself, with
        less variance than a re-estimated one.
        """
        grad = torch.einsum("bkd,bd...->bk...", self.directions.to(jet.grad), jet.grad)
        return Jet(jet.value, grad, jet.lap, self)


def _weighted(t: torch.Tensor, tangents: Tangents | None) -> torch.Tensor:
    """sum_j w_j t[:, j]: the tangent axis contracted with the weights."""
    if tangents is None:
        return t.sum(1)
    w = tangents.weights.to(t).reshape(1, -1, *([1] * (t.dim() - 2)))
    return (t * w).sum(1)


@dataclass(frozen=True)
class Jet:
    value: torch.Tensor
    grad: torch.Tensor
    lap: torch.Tensor | None
    tangents: Tangents | None = None  # None: the d coordinate axes, unit weights

    @staticmethod
    def constant(value: torch.Tensor, dim: int) -> Jet:
        return Jet(
            value,
            value.new_zeros((value.shape[0], dim, *value.shape[1:])),
            torch.zeros_like(value),
        )

    @staticmethod
    def variable(x: torch.Tensor, tangents: Tangents | None = None, order: int = 2) -> Jet:
        """The coordinates themselves: D x_i along s_j is s_j[i]; second derivatives vanish."""
        b, d = x.shape
        if tangents is None:
            grad = torch.eye(d, dtype=x.dtype, device=x.device).expand(b, d, d)
        else:
            grad = tangents.directions.to(x)
        lap = torch.zeros_like(x) if order == 2 else None
        return Jet(x, grad, lap, tangents)

    def dot(self, other: Jet) -> torch.Tensor:
        """<Du, Dv>_w: the (estimated) gradient inner product, contracted over tangents."""
        return _weighted(self.grad * other.grad, self.tangents)

    def at(self, index: slice) -> Jet:
        """The jet at a subset of the batch's points (coordinate-axis tangents only)."""
        assert self.tangents is None, "per-point tangents would need slicing too"
        lap = None if self.lap is None else self.lap[index]
        return Jet(self.value[index], self.grad[index], lap, self.tangents)

    def first_order(self) -> Jet:
        return Jet(self.value, self.grad, None, self.tangents)

    def linear(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> Jet:
        """z = u W^T + b over the last feature axis (value (B, n) -> (B, m))."""
        value = torch.nn.functional.linear(self.value, weight, bias)
        grad = torch.nn.functional.linear(self.grad, weight)
        lap = None if self.lap is None else torch.nn.functional.linear(self.lap, weight)
        return Jet(value, grad, lap, self.tangents)

    def map_linear(
        self, fn: Callable[[torch.Tensor], torch.Tensor], bias: torch.Tensor | None = None
    ) -> Jet:
        """Any linear map of the trailing feature axes (the same for value, derivatives and
        Laplacian), plus a bias on the value: batched per-mode layers use it."""
        value = fn(self.value) if bias is None else fn(self.value) + bias
        lap = None if self.lap is None else fn(self.lap)
        return Jet(value, fn(self.grad), lap, self.tangents)

    def squeeze_last(self) -> Jet:
        """(..., 1) -> (...): drop a trailing feature axis of size one."""
        lap = None if self.lap is None else self.lap[..., 0]
        return Jet(self.value[..., 0], self.grad[..., 0], lap, self.tangents)

    def scale(self, factor: torch.Tensor | float) -> Jet:
        """Multiplication by a constant (a number or one per feature)."""
        lap = None if self.lap is None else self.lap * factor
        return Jet(self.value * factor, self.grad * factor, lap, self.tangents)

    def apply(self, activation: Activation) -> Jet:
        s, ds, d2s = activation(self.value, second=self.lap is not None)
        grad = ds.unsqueeze(1) * self.grad
        lap = None
        if self.lap is not None:
            if d2s is None:
                raise TypeError("an activation asked for its second derivative gave none")
            lap = ds * self.lap + d2s * self.dot(self)
        return Jet(s, grad, lap, self.tangents)

    def __mul__(self, other: Jet) -> Jet:
        value = self.value * other.value
        grad = self.value.unsqueeze(1) * other.grad + other.value.unsqueeze(1) * self.grad
        lap = None
        if self.lap is not None and other.lap is not None:
            lap = self.value * other.lap + other.value * self.lap + 2.0 * self.dot(other)
        return Jet(value, grad, lap, self.tangents)

    def sum_features(self) -> Jet:
        """(B, n) -> (B,): the sum over the last feature axis."""
        lap = None if self.lap is None else self.lap.sum(-1)
        return Jet(self.value.sum(-1), self.grad.sum(-1), lap, self.tangents)

    def unsqueeze_features(self) -> Jet:
        """(B,) -> (B, 1) so a scalar jet broadcasts against a (B, L) jet."""
        lap = None if self.lap is None else self.lap.unsqueeze(-1)
        return Jet(self.value.unsqueeze(-1), self.grad.unsqueeze(-1), lap, self.tangents)

    def cat(self, other: Jet) -> Jet:
        lap = None
        if self.lap is not None and other.lap is not None:
            lap = torch.cat([self.lap, other.lap], dim=-1)
        return Jet(
            torch.cat([self.value, other.value], dim=-1),
            torch.cat([self.grad, other.grad], dim=-1),
            lap,
            self.tangents,
        )

    def in_frame_of(self, other: Jet) -> Jet:
        """This exact jet expressed along ``other``'s tangents (unchanged when both are exact)."""
        if other.tangents is None or self.tangents is other.tangents:
            return self
        assert self.tangents is None, "only exact jets can be projected"
        return other.tangents.project(self)


Derivatives = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


def silu(u: torch.Tensor, second: bool = True) -> Derivatives:
    """SiLU u*sigmoid(u) and its first two derivatives."""
    s = torch.sigmoid(u)
    ds = s * (1.0 + u * (1.0 - s))
    d2s = s * (1.0 - s) * (2.0 + u * (1.0 - 2.0 * s)) if second else None
    return u * s, ds, d2s


def tanh(u: torch.Tensor, second: bool = True) -> Derivatives:
    t = torch.tanh(u)
    dt = 1.0 - t * t
    return t, dt, -2.0 * t * dt if second else None


def softplus(u: torch.Tensor, second: bool = True) -> Derivatives:
    s = torch.sigmoid(u)
    return torch.nn.functional.softplus(u), s, s * (1.0 - s) if second else None


ACTIVATIONS: dict[str, Activation] = {"silu": silu, "tanh": tanh, "softplus": softplus}


def smooth_sqrt(eps: float) -> Activation:
    """sqrt(u + eps^2) and its derivatives; eps keeps the origin finite (measure zero)."""

    def fn(u: torch.Tensor, second: bool = True) -> Derivatives:
        r = torch.sqrt(u + eps * eps)
        ds = 0.5 / r
        return r, ds, -0.5 * ds / (r * r)

    return fn


def radius(x: Jet, eps: float = 1e-12) -> Jet:
    """r = sqrt(|x|^2 + eps^2) of a coordinate jet (B, d) -> (B,).

    For exact tangents this is d_i r = x_i / r and lap r = d / r - |x|^2 / r^3.
    """
    return (x * x).sum_features().apply(smooth_sqrt(eps))
