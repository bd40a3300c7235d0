"""Networks that map points (B, d) to L mode values (B, L), with an exact jet pass.

Every network here implements ``forward(x) -> (B, L)`` and ``jet(x, tangents, order) -> Jet``
(values, derivatives and Laplacians of all L outputs in one forward pass, see ``jets.py``;
``order=1`` skips the Laplacian, ``tangents`` selects Hutchinson probe directions). New
architectures are one class plus one line in ``NETWORKS``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

import torch
from torch import nn

from nsvd_cli.numerics.jets import ACTIVATIONS, Derivatives, Jet, Tangents, radius


class ModeNetwork(Protocol):
    modes: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def jet(self, x: torch.Tensor, tangents: Tangents | None = None, order: int = 2) -> Jet: ...


@dataclass(frozen=True)
class NetworkConfig:
    dim: int
    modes: int
    hidden: int = 128
    depth: int = 3
    activation: str = "silu"
    # Inputs are (x - center) / scale per coordinate, so one default width fits any length unit.
    center: tuple[float, ...] = ()
    scale: tuple[float, ...] = ()
    # |x| as an extra input lets a smooth network represent the cusp of a Coulomb state.
    radial_feature: bool = False
    # With a softening c > 0 the input is sqrt(|x|^2 + c^2) instead: smooth at the origin,
    # so it adds no cusp of its own to functions that carry the exact one as a factor.
    radial_softening: float = 0.0
    # Gaussian Fourier features sin/cos(2 pi B u), B ~ N(0, fourier_scale^2), fixed at init.
    fourier_features: int = 0
    fourier_scale: float = 1.0
    fourier_seed: int = 0
    # Each output times a learnable exp(-|x - center| / s_l) (decaying bound states).
    envelope: bool = False
    # 1-D: |x - c| per c as extra inputs, so a smooth network can carry the kink of a
    # function whose flux k u' is continuous across a jump of k at c (a layered medium).
    kinks: tuple[float, ...] = ()


def _sin(u: torch.Tensor, second: bool = True) -> Derivatives:
    s, c = torch.sin(u), torch.cos(u)
    return s, c, -s


def _cos(u: torch.Tensor, second: bool = True) -> Derivatives:
    s, c = torch.sin(u), torch.cos(u)
    return c, -s, -c


def _exp(u: torch.Tensor, second: bool = True) -> Derivatives:
    e = torch.exp(u)
    return e, e, e


def _abs(u: torch.Tensor, second: bool = True) -> Derivatives:
    # The second derivative's delta at 0 is left out: the kink features serve the weak
    # form, which takes first derivatives only.
    return u.abs(), torch.sign(u), torch.zeros_like(u)


class _ModeMLP(nn.Module):
    """Input features and the optional envelope; subclasses provide the trunk.

    The trunk maps features (B, n) to (B, L) in ``_trunk`` and does the same to a jet in
    ``_trunk_jet``; everything else (scaling, |x|, Fourier features, envelope) is here, once.
    """

    # Buffers (registered in __init__), declared for the type checker.
    center: torch.Tensor
    inv_scale: torch.Tensor
    radial_inv_scale: torch.Tensor
    fourier_matrix: torch.Tensor
    kink_offsets: torch.Tensor

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        self.modes = config.modes
        d = config.dim
        center = config.center or (0.0,) * d
        scale = config.scale or (1.0,) * d
        self.register_buffer("center", torch.tensor(center, dtype=torch.float64))
        self.register_buffer("inv_scale", 1.0 / torch.tensor(scale, dtype=torch.float64))
        rms_scale = (sum(s * s for s in scale) / d) ** 0.5
        self.register_buffer("radial_inv_scale", torch.tensor(1.0 / rms_scale, dtype=torch.float64))
        if config.fourier_features:
            g = torch.Generator().manual_seed(config.fourier_seed)
            b = torch.randn(config.fourier_features, d, generator=g, dtype=torch.float64)
            self.register_buffer("fourier_matrix", 2 * math.pi * config.fourier_scale * b)
        if config.envelope:
            # Starts wide (twice the input scale): a gentle prior the modes can sharpen.
            start = math.log(2.0 * rms_scale)
            self.envelope_log_scale = nn.Parameter(torch.full((config.modes,), start))
        self._activation = ACTIVATIONS[config.activation]
        self._radial_eps = config.radial_softening or 1e-12
        if config.kinks:
            if d != 1:
                raise ValueError(f"kink inputs are 1-D only (this network has {d} inputs)")
            offsets = [(c - center[0]) / scale[0] for c in config.kinks]
            self.register_buffer("kink_offsets", torch.tensor(offsets, dtype=torch.float64))

    @property
    def feature_width(self) -> int:
        c = self.config
        return c.dim + (1 if c.radial_feature else 0) + 2 * c.fourier_features + len(c.kinks)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        u = (x - self.center.to(x.dtype)) * self.inv_scale.to(x.dtype)
        parts = [u]
        if self.config.radial_feature:
            r = torch.sqrt((x * x).sum(-1, keepdim=True) + self._radial_eps**2)
            parts.append(r * self.radial_inv_scale.to(x.dtype))
        if self.config.fourier_features:
            z = u @ self.fourier_matrix.to(x.dtype).T
            parts += [torch.sin(z), torch.cos(z)]
        if self.config.kinks:
            parts.append((u - self.kink_offsets.to(x.dtype)).abs())
        return torch.cat(parts, dim=-1) if len(parts) > 1 else u

    def _feature_jet(self, x: torch.Tensor, tangents: Tangents | None, order: int) -> Jet:
        coords = Jet.variable(x, tangents, order)
        inv = self.inv_scale.to(x.dtype)
        u = Jet((x - self.center.to(x.dtype)) * inv, coords.grad * inv, coords.lap, coords.tangents)
        out = u
        if self.config.radial_feature:
            r = radius(coords, self._radial_eps).scale(self.radial_inv_scale.to(x.dtype))
            out = out.cat(r.unsqueeze_features())
        if self.config.fourier_features:
            z = u.linear(self.fourier_matrix.to(x.dtype))
            out = out.cat(z.apply(_sin)).cat(z.apply(_cos))
        if self.config.kinks:
            offsets = self.kink_offsets.to(x.dtype)
            ones = torch.ones(len(offsets), 1, dtype=x.dtype, device=x.device)
            out = out.cat(u.linear(ones, -offsets).apply(_abs))
        return out

    def _envelope_exponent(self, x: torch.Tensor) -> torch.Tensor:
        return -torch.exp(-self.envelope_log_scale).to(x.dtype)  # -1 / s_l, (L,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._trunk(self._features(x))
        if self.config.envelope:
            y = x - self.center.to(x.dtype)
            r = torch.sqrt((y * y).sum(-1, keepdim=True) + 1e-24)
            out = out * torch.exp(r * self._envelope_exponent(x))
        return out

    def jet(self, x: torch.Tensor, tangents: Tangents | None = None, order: int = 2) -> Jet:
        out = self._trunk_jet(self._feature_jet(x, tangents, order))
        if self.config.envelope:
            shifted = Jet.variable(x - self.center.to(x.dtype), tangents, order)
            r = radius(shifted).unsqueeze_features()
            out = r.scale(self._envelope_exponent(x)).apply(_exp) * out
        return out

    def _trunk(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _trunk_jet(self, u: Jet) -> Jet:
        raise NotImplementedError


class SharedMLP(_ModeMLP):
    """One MLP trunk with L outputs: the default network (cheap, modes share features)."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__(config)
        sizes = [self.feature_width] + [config.hidden] * config.depth + [config.modes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def _trunk(self, u: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            u = self._activation(layer(u), second=False)[0]
        return self.layers[-1](u)

    def _trunk_jet(self, u: Jet) -> Jet:
        layers = [cast(nn.Linear, layer) for layer in self.layers]
        for layer in layers[:-1]:
            u = u.linear(layer.weight, layer.bias).apply(self._activation)
        return u.linear(layers[-1].weight, layers[-1].bias)


class DisjointMLP(_ModeMLP):
    """One MLP per mode, all L evaluated together by batched einsums (no Python loop).

    Weights carry a leading mode axis: layer k maps (..., L, n) -> (..., L, m) with
    ``W_k`` of shape (L, m, n). No parameter is shared, so mode l's output depends on its
    own weights only (the paper's "disjoint" parametrisation).
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__(config)
        sizes = [self.feature_width] + [config.hidden] * config.depth + [1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / math.sqrt(fan_in)  # nn.Linear's default, per mode
            w = torch.empty(config.modes, fan_out, fan_in).uniform_(-bound, bound)
            b = torch.empty(config.modes, fan_out).uniform_(-bound, bound)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))

    @staticmethod
    def _first(w: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda t: torch.einsum("...i,lhi->...lh", t, w)

    @staticmethod
    def _next(w: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda t: torch.einsum("...li,lhi->...lh", t, w)

    def _trunk(self, u: torch.Tensor) -> torch.Tensor:
        n = len(self.weights)
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            u = (self._first(w) if k == 0 else self._next(w))(u) + b
            if k < n - 1:
                u = self._activation(u, second=False)[0]
        return u[..., 0]

    def _trunk_jet(self, u: Jet) -> Jet:
        n = len(self.weights)
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            u = u.map_linear(self._first(w) if k == 0 else self._next(w), b)
            if k < n - 1:
                u = u.apply(self._activation)
        return u.squeeze_last()


NETWORKS: dict[str, Callable[[NetworkConfig], nn.Module]] = {
    "shared-mlp": SharedMLP,
    "disjoint-mlp": DisjointMLP,
}


def build_network(kind: str, config: NetworkConfig) -> nn.Module:
    try:
        factory = NETWORKS[kind]
    except KeyError:
        raise ValueError(f"unknown network {kind!r} (known: {', '.join(NETWORKS)})") from None
    return factory(config)
