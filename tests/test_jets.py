"""The forward-Laplacian pass against autograd and against hand-derived values (float64)."""

from __future__ import annotations

import pytest
import torch

from nsvd_cli.jets import Jet, radius
from nsvd_cli.networks import NetworkConfig, SharedMLP


def _autograd_derivatives(fn, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Slow, obviously correct reference: nested autograd per output and coordinate."""
    x = x.clone().requires_grad_(True)
    y = fn(x)
    outs = y.shape[1]
    grad = torch.zeros(x.shape[0], x.shape[1], outs, dtype=x.dtype)
    lap = torch.zeros_like(y)
    for k in range(outs):
        (g,) = torch.autograd.grad(y[:, k].sum(), x, create_graph=True)
        grad[:, :, k] = g.detach()
        for i in range(x.shape[1]):
            (g2,) = torch.autograd.grad(g[:, i].sum(), x, retain_graph=True)
            lap[:, k] += g2[:, i].detach()
    return y.detach(), grad, lap


@pytest.mark.parametrize("dim,radial", [(1, False), (2, True), (3, False), (5, True)])
@pytest.mark.parametrize("activation", ["silu", "tanh", "softplus"])
def test_network_jet_matches_autograd(dim: int, radial: bool, activation: str) -> None:
    torch.manual_seed(0)
    config = NetworkConfig(
        dim=dim,
        modes=3,
        hidden=16,
        depth=2,
        activation=activation,
        scale=tuple(1.0 + 0.5 * i for i in range(dim)),
        radial_feature=radial,
    )
    net = SharedMLP(config).double()
    x = torch.randn(7, dim, dtype=torch.float64) + 0.1
    jet = net.jet(x)
    value, grad, lap = _autograd_derivatives(net, x)
    assert torch.allclose(jet.value, value, atol=1e-12)
    assert torch.allclose(jet.grad, grad, atol=1e-10)
    assert torch.allclose(jet.lap, lap, atol=1e-10)


def test_laplacian_of_gaussian_by_hand() -> None:
    # u = exp(-|x|^2 / 2): grad u = -x u, lap u = (|x|^2 - d) u.
    x = torch.randn(11, 4, dtype=torch.float64)

    def gaussian(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        e = torch.exp(u)
        return e, e, e

    half_sq = Jet(
        -0.5 * (x * x).sum(-1, keepdim=True),
        -x.unsqueeze(-1),
        torch.full((11, 1), -4.0, dtype=torch.float64),
    )
    jet = half_sq.apply(gaussian)
    u = torch.exp(-0.5 * (x * x).sum(-1, keepdim=True))
    r2 = (x * x).sum(-1, keepdim=True)
    assert torch.allclose(jet.grad, -x.unsqueeze(-1) * u.unsqueeze(1), atol=1e-14)
    assert torch.allclose(jet.lap, (r2 - 4.0) * u, atol=1e-12)


def test_radius_jet_by_hand() -> None:
    x = torch.randn(9, 3, dtype=torch.float64)
    r = radius(x)
    norm = x.norm(dim=1)
    assert torch.allclose(r.value, norm, atol=1e-12)
    assert torch.allclose(r.grad, x / norm.unsqueeze(-1), atol=1e-12)
    assert torch.allclose(r.lap, 2.0 / norm, atol=1e-10)  # (d - 1) / r in 3D


def test_product_rule() -> None:
    x = torch.randn(5, 2, dtype=torch.float64)
    # u = x0^2, v = x1^3: lap(uv) = 2 x1^3 + 6 x0^2 x1
    u = Jet(x[:, 0] ** 2, torch.stack([2 * x[:, 0], 0 * x[:, 0]], 1), 2 + 0 * x[:, 0])
    v = Jet(x[:, 1] ** 3, torch.stack([0 * x[:, 1], 3 * x[:, 1] ** 2], 1), 6 * x[:, 1])
    w = u * v
    assert torch.allclose(w.lap, 2 * x[:, 1] ** 3 + 6 * x[:, 0] ** 2 * x[:, 1])
