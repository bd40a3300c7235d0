"""Every derivative engine against the slow autograd reference and hand-derived values.

All in float64: exact engines must agree to 1e-10; the stochastic one must be exact where
theory says it is (a diagonal Hessian, an orthonormal frame) and unbiased with the variance
theory predicts elsewhere.
"""

from __future__ import annotations

import math

import pytest
import torch

from nsvd_cli.numerics.derivatives import hutchinson, hutchinson_variance, reference_jet
from nsvd_cli.numerics.jets import Derivatives, Jet, Tangents, radius, silu
from nsvd_cli.numerics.networks import NetworkConfig, SharedMLP

F64 = torch.float64


def _net(dim: int, radial: bool, activation: str = "silu", modes: int = 3) -> SharedMLP:
    torch.manual_seed(0)
    config = NetworkConfig(
        dim=dim,
        modes=modes,
        hidden=16,
        depth=2,
        activation=activation,
        center=tuple(0.1 * i for i in range(dim)),
        scale=tuple(1.0 + 0.5 * i for i in range(dim)),
        radial_feature=radial,
    )
    return SharedMLP(config).double()


def _frame(n: int, d: int, seed: int) -> Tangents:
    """A random orthonormal frame per point, unit weights: sum_j s_j s_j^T = I exactly."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, d, d, generator=g, dtype=F64))
    return Tangents(q.transpose(1, 2), torch.ones(d, dtype=F64))


@pytest.mark.parametrize("dim,radial", [(1, False), (2, True), (3, False), (5, True), (8, False)])
@pytest.mark.parametrize("activation", ["silu", "tanh", "softplus"])
def test_forward_laplacian_matches_autograd(dim: int, radial: bool, activation: str) -> None:
    net = _net(dim, radial, activation)
    x = torch.randn(7, dim, dtype=F64) + 0.1
    fast, slow = net.jet(x), reference_jet(net, x)
    assert torch.allclose(fast.value, slow.value, atol=1e-12)
    assert torch.allclose(fast.grad, slow.grad, atol=1e-10)
    assert fast.lap is not None and slow.lap is not None
    assert torch.allclose(fast.lap, slow.lap, atol=1e-10)
    first = net.jet(x, order=1)
    assert first.lap is None
    assert torch.allclose(first.grad, slow.grad, atol=1e-10)


def test_reference_laplacian_of_gaussian_by_hand() -> None:
    # u = exp(-|x|^2 / 2): grad u = -x u, lap u = (|x|^2 - d) u.
    x = torch.randn(11, 4, dtype=F64)
    jet = reference_jet(lambda y: torch.exp(-0.5 * (y * y).sum(-1)), x)
    u = torch.exp(-0.5 * (x * x).sum(-1))
    assert torch.allclose(jet.grad, -x * u.unsqueeze(-1), atol=1e-14)
    assert jet.lap is not None
    assert torch.allclose(jet.lap, ((x * x).sum(-1) - 4.0) * u, atol=1e-12)


def test_jet_rules_give_gaussian_laplacian_by_hand() -> None:
    x = torch.randn(11, 4, dtype=F64)

    def exp(u: torch.Tensor, second: bool = True) -> Derivatives:
        e = torch.exp(u)
        return e, e, e

    jet = (Jet.variable(x) * Jet.variable(x)).sum_features().scale(-0.5).apply(exp)
    u = torch.exp(-0.5 * (x * x).sum(-1))
    assert torch.allclose(jet.grad, -x * u.unsqueeze(-1), atol=1e-14)
    assert jet.lap is not None
    assert torch.allclose(jet.lap, ((x * x).sum(-1) - 4.0) * u, atol=1e-12)


def test_radius_jet_by_hand() -> None:
    x = torch.randn(9, 3, dtype=F64)
    r = radius(Jet.variable(x))
    norm = x.norm(dim=1)
    assert torch.allclose(r.value, norm, atol=1e-12)
    assert torch.allclose(r.grad, x / norm.unsqueeze(-1), atol=1e-12)
    assert r.lap is not None
    assert torch.allclose(r.lap, 2.0 / norm, atol=1e-10)  # (d - 1) / r in 3D


def test_product_rule_by_hand() -> None:
    x = torch.randn(5, 2, dtype=F64)
    # u = x0^2, v = x1^3: lap(uv) = 2 x1^3 + 6 x0^2 x1
    c = Jet.variable(x)
    x0 = Jet(c.value[:, 0], c.grad[:, :, 0], c.lap[:, 0])  # type: ignore[index]
    x1 = Jet(c.value[:, 1], c.grad[:, :, 1], c.lap[:, 1])  # type: ignore[index]
    w = (x0 * x0) * (x1 * x1 * x1)
    assert w.lap is not None
    assert torch.allclose(w.lap, 2 * x[:, 1] ** 3 + 6 * x[:, 0] ** 2 * x[:, 1], atol=1e-12)


@pytest.mark.parametrize("radial", [False, True])
def test_orthonormal_frame_gives_exact_laplacian(radial: bool) -> None:
    # The tangent machinery (projected inputs, weighted contractions) is exact whenever
    # sum_j w_j s_j s_j^T = I, e.g. for any orthonormal frame with unit weights.
    d = 4
    net = _net(d, radial)
    x = torch.randn(6, d, dtype=F64)
    frame = _frame(6, d, seed=3)
    along, exact = net.jet(x, frame), reference_jet(net, x)
    assert along.lap is not None and exact.lap is not None
    assert torch.allclose(along.lap, exact.lap, atol=1e-10)
    directional = torch.einsum("bkd,bdl->bkl", frame.directions, exact.grad)
    assert torch.allclose(along.grad, directional, atol=1e-10)
    assert torch.allclose(frame.project(exact).grad, directional, atol=1e-12)


def test_hutchinson_exact_for_diagonal_hessian() -> None:
    # Rademacher probes have s_i^2 = 1: for a sum of one-dimensional functions (diagonal
    # Hessian) every single probe gives the exact Laplacian.
    d = 6
    x = torch.randn(10, d, dtype=F64)
    tangents = Tangents.rademacher(10, d, 2, torch.Generator().manual_seed(0)).to(F64)
    jet = Jet.variable(x, tangents).apply(_sin).sum_features()
    assert jet.lap is not None
    assert torch.allclose(jet.lap, -torch.sin(x).sum(-1), atol=1e-12)


def _sin(u: torch.Tensor, second: bool = True) -> Derivatives:
    return torch.sin(u), torch.cos(u), -torch.sin(u)


def test_hutchinson_quadratic_mean_and_variance_match_theory() -> None:
    # u = x^T A x / 2 has Hessian A: the k-probe estimate has mean tr A and variance
    # 2 sum_{i != j} A_ij^2 / k.
    d, k, n = 5, 3, 40_000
    g = torch.Generator().manual_seed(7)
    b = torch.randn(d, d, generator=g, dtype=F64)
    a = b + b.T
    x = torch.randn(n, d, generator=g, dtype=F64)
    tangents = Tangents.rademacher(n, d, k, g).to(F64)
    c = Jet.variable(x, tangents)
    jet = (c.linear(a) * c).sum_features().scale(0.5)
    assert jet.lap is not None
    off = a - torch.diag(torch.diagonal(a))
    var = 2.0 * float((off * off).sum()) / k
    mean = float(jet.lap.mean())
    assert abs(mean - float(torch.trace(a))) < 5.0 * math.sqrt(var / n)
    assert float(jet.lap.var()) == pytest.approx(var, rel=0.05)


def test_hutchinson_network_laplacian_is_unbiased() -> None:
    d = 8
    net = _net(d, radial=True)
    x = torch.randn(4, d, dtype=F64).repeat(5000, 1)  # many independent probes per point
    exact = reference_jet(net, x[:4])
    est = hutchinson(2)(net, x, torch.Generator().manual_seed(1))
    assert est.lap is not None and exact.lap is not None
    mean = est.lap.reshape(5000, 4, -1).mean(0)
    err = est.lap.reshape(5000, 4, -1).std(0) / math.sqrt(5000)
    assert ((mean - exact.lap).abs() < 5 * err + 1e-12).all()
    rel = hutchinson_variance(net, x[:400], 2, torch.Generator().manual_seed(2))
    assert 0.0 < rel < 10.0


def test_a_first_order_jet_never_asks_for_the_second_derivative() -> None:
    """The weak form's jets skip the activation's second derivative (a fifth of a 1-D
    step's forward ops); a Laplacian jet still gets it, and one without it is an error."""
    asked: list[bool] = []

    def silu_watched(u: torch.Tensor, second: bool = True) -> Derivatives:
        asked.append(second)
        return silu(u, second)

    x = torch.randn(7, 3, dtype=F64)
    full = Jet.variable(x).apply(silu_watched)
    first = Jet.variable(x, order=1).apply(silu_watched)
    assert asked == [True, False] and first.lap is None and full.lap is not None
    torch.testing.assert_close(first.value, full.value)
    torch.testing.assert_close(first.grad, full.grad)
    with pytest.raises(TypeError, match="second derivative"):
        Jet.variable(x).apply(lambda u, second=True: (u, u, None))
