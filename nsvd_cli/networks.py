"""Networks that map points (B, d) to L mode values (B, L), with an exact jet pass.

Every network here implements ``forward(x) -> (B, L)`` and ``jet(x, tangents, order) -> Jet``
(values, derivatives and Laplacians of all L outputs in one forward pass, see ``jets.py``;
``order=1`` skips the Laplacian, ``tangents`` selects Hutchinson probe directions). New
architectures are one class plus one line in ``NETWORKS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from .jets import ACTIVATIONS, Jet, Tangents, radius


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


class SharedMLP(nn.Module):
    """One MLP trunk with L outputs: the default network (cheap, modes share features)."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        self.modes = config.modes
        d = config.dim
        center = config.center or (0.0,) * d
        scale = config.scale or (1.0,) * d
        self.register_buffer("center", torch.tensor(center, dtype=torch.float64))
        self.register_buffer("inv_scale", 1.0 / torch.tensor(scale, dtype=torch.float64))
        self.register_buffer(
            "radial_inv_scale",
            torch.tensor(1.0 / (sum(s * s for s in scale) / d) ** 0.5, dtype=torch.float64),
        )
        width_in = d + (1 if config.radial_feature else 0)
        sizes = [width_in] + [config.hidden] * config.depth + [config.modes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self._activation = ACTIVATIONS[config.activation]

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        u = (x - self.center) * self.inv_scale
        if self.config.radial_feature:
            r = torch.sqrt((x * x).sum(-1, keepdim=True) + 1e-24) * self.radial_inv_scale
            u = torch.cat([u, r], dim=-1)
        return u

    def _feature_jet(self, x: torch.Tensor, tangents: Tangents | None, order: int) -> Jet:
        coords = Jet.variable(x, tangents, order)
        inv = self.inv_scale.to(x.dtype)
        u = Jet((x - self.center.to(x.dtype)) * inv, coords.grad * inv, coords.lap, coords.tangents)
        if self.config.radial_feature:
            r = radius(coords).scale(self.radial_inv_scale.to(x.dtype))
            u = u.cat(r.unsqueeze_features())
        return u

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self._features(x)
        for layer in self.layers[:-1]:
            u = self._activation(layer(u))[0]
        return self.layers[-1](u)

    def jet(self, x: torch.Tensor, tangents: Tangents | None = None, order: int = 2) -> Jet:
        u = self._feature_jet(x, tangents, order)
        for layer in self.layers[:-1]:
            u = u.linear(layer.weight, layer.bias).apply(self._activation)
        last = self.layers[-1]
        return u.linear(last.weight, last.bias)


NETWORKS: dict[str, Callable[[NetworkConfig], nn.Module]] = {"shared-mlp": SharedMLP}


def build_network(kind: str, config: NetworkConfig) -> nn.Module:
    try:
        factory = NETWORKS[kind]
    except KeyError:
        raise ValueError(f"unknown network {kind!r} (known: {', '.join(NETWORKS)})") from None
    return factory(config)
