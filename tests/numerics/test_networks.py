"""Every architecture's jet pass against the autograd reference, and what 'disjoint' means."""

from __future__ import annotations

import pytest
import torch

from nsvd_cli.numerics.derivatives import reference_jet
from nsvd_cli.numerics.jets import Tangents
from nsvd_cli.numerics.networks import NetworkConfig, build_network

F64 = torch.float64

VARIANTS = {
    "disjoint": ("disjoint-mlp", {}),
    "shared+fourier": ("shared-mlp", {"fourier_features": 5, "fourier_scale": 0.7}),
    "shared+envelope": ("shared-mlp", {"envelope": True, "radial_feature": True}),
    "disjoint+all": (
        "disjoint-mlp",
        {"fourier_features": 3, "envelope": True, "radial_feature": True},
    ),
}


def _net(variant: str, dim: int = 3, modes: int = 4) -> torch.nn.Module:
    kind, extra = VARIANTS[variant]
    torch.manual_seed(0)
    config = NetworkConfig(
        dim=dim,
        modes=modes,
        hidden=10,
        depth=2,
        activation="tanh",
        center=tuple(0.1 * i for i in range(dim)),
        scale=tuple(1.0 + 0.3 * i for i in range(dim)),
        **extra,
    )
    return build_network(kind, config).double()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_jet_matches_autograd_and_forward(variant: str) -> None:
    net = _net(variant)
    x = torch.randn(9, 3, dtype=F64)
    fast, slow = net.jet(x), reference_jet(net, x)
    assert fast.value.shape == (9, 4)
    assert torch.allclose(fast.value, net(x), atol=1e-13)
    assert torch.allclose(fast.value, slow.value, atol=1e-12)
    assert torch.allclose(fast.grad, slow.grad, atol=1e-10)
    assert fast.lap is not None and slow.lap is not None
    assert torch.allclose(fast.lap, slow.lap, atol=1e-10)
    q, _ = torch.linalg.qr(torch.randn(9, 3, 3, dtype=F64))
    frame = net.jet(x, Tangents(q.transpose(1, 2), torch.ones(3, dtype=F64)))
    assert frame.lap is not None
    assert torch.allclose(frame.lap, slow.lap, atol=1e-10)


def test_disjoint_modes_share_no_parameter() -> None:
    net = _net("disjoint")
    x = torch.randn(6, 3, dtype=F64)
    out = net(x)
    for mode in range(4):
        grads = torch.autograd.grad(out[:, mode].sum(), list(net.parameters()), retain_graph=True)
        for g in grads:  # every parameter has the mode axis first
            others = torch.cat([g[:mode], g[mode + 1 :]])
            assert float(others.abs().max()) == 0.0
            assert float(g[mode].abs().max()) > 0.0


def test_envelope_decays_and_is_learnable() -> None:
    net = _net("shared+envelope")
    far = torch.full((1, 3), 60.0, dtype=F64)
    with torch.no_grad():
        ratio = net(far).abs().max() / net(torch.zeros(1, 3, dtype=F64)).abs().max()
    assert float(ratio) < 1e-6
    names = [name for name, _ in net.named_parameters()]
    assert "envelope_log_scale" in names


@pytest.mark.parametrize("kind", ["shared-mlp", "disjoint-mlp"])
def test_kink_inputs_give_a_continuous_function_with_a_jump_in_its_slope(kind: str) -> None:
    """|x - c| inputs (a layered medium's interfaces): away from c the jet is autograd's;
    across c the function is continuous while its slope jumps, which no smooth input can
    give; the Laplacian leaves the delta out (the weak form never asks for it)."""
    torch.manual_seed(0)
    config = NetworkConfig(dim=1, modes=3, hidden=10, depth=2, activation="tanh",
                           center=(0.2,), scale=(1.5,), kinks=(0.3, -0.5))
    net = build_network(kind, config).double()
    x = torch.linspace(-1.0, 1.0, 11, dtype=F64).unsqueeze(-1) + 0.013
    fast, slow = net.jet(x), reference_jet(net, x)
    assert torch.allclose(fast.value, net(x), atol=1e-13)
    assert torch.allclose(fast.grad, slow.grad, atol=1e-10)
    assert fast.lap is not None and slow.lap is not None
    assert torch.allclose(fast.lap, slow.lap, atol=1e-10)
    eps = 1e-7
    side = net.jet(torch.tensor([[0.3 - eps], [0.3 + eps]], dtype=F64))
    assert torch.allclose(side.value[0], side.value[1], atol=1e-5)
    assert (side.grad[0, 0] - side.grad[1, 0]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="1-D only"):
        build_network(kind, NetworkConfig(dim=2, modes=1, kinks=(0.3,)))
