"""H applied to known eigenfunctions gives E times them, in every sampler frame."""

from __future__ import annotations

import math

import pytest
import torch

from nsvd_cli.numerics.derivatives import reference_jet
from nsvd_cli.numerics.jets import Jet
from nsvd_cli.numerics.operators import (
    Schrodinger,
    box_factor,
    cusp_factor,
    finite_potential,
)
from nsvd_cli.numerics.sampling import GaussianMixture, UniformBox


def _exp_jet(j: Jet) -> Jet:
    e = torch.exp(j.value)
    return Jet(e, e.unsqueeze(1) * j.grad, e * (j.lap + (j.grad * j.grad).sum(1)))


def _oscillator_first_excited(x: torch.Tensor) -> Jet:
    """psi = x0 exp(-|x|^2/2), E = 1 + d/2 for H = -1/2 lap + |x|^2/2."""
    d = x.shape[1]
    g = _exp_jet(Jet(-0.5 * (x * x).sum(-1), -x, torch.full_like(x[:, 0], -float(d))))
    e0 = torch.zeros_like(x)
    e0[:, 0] = 1.0
    return Jet(x[:, 0], e0, torch.zeros_like(x[:, 0])) * g


def test_oscillator_eigenfunction_in_whole_space_frame() -> None:
    d = 3
    op = Schrodinger(0.5, lambda x: 0.5 * (x * x).sum(-1))
    sampler = GaussianMixture(
        torch.tensor([0.1, 0.0, -0.2], dtype=torch.float64),
        torch.tensor([[0.7, 0.8, 0.9], [2.0, 2.5, 3.0]], dtype=torch.float64),
    )
    x = sampler.sample(64, torch.Generator().manual_seed(0))
    psi = _oscillator_first_excited(x)
    a = sampler.envelope(x)
    # h = psi e^{-a}: the operator must act as H on psi, seen through the envelope.
    minus_a = Jet(-a.value, -a.grad, -a.lap)
    h = (psi * _exp_jet(minus_a)).unsqueeze_features()
    hh = op.apply(h, a, op.potential(x))
    energy = 1.0 + d / 2
    assert torch.allclose(hh, energy * h.value, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("rotated", [False, True])
def test_envelope_closed_form_matches_autograd(rotated: bool) -> None:
    angle = 0.7
    c, s = math.cos(angle), math.sin(angle)
    axes = torch.tensor([[c, -s], [s, c]], dtype=torch.float64) if rotated else None
    sampler = GaussianMixture(
        torch.tensor([0.3, -0.2], dtype=torch.float64),
        torch.tensor([[0.5, 0.7], [2.0, 3.0], [6.0, 5.0]], dtype=torch.float64),
        axes,
    )
    x = sampler.sample(50, torch.Generator().manual_seed(1))
    exact = sampler.envelope(x)
    slow = reference_jet(sampler.log_amplitude, x)
    assert torch.allclose(exact.grad, slow.grad, atol=1e-12)
    assert torch.allclose(exact.lap, slow.lap, atol=1e-11)
    # The samples follow the density the envelope describes: covariance R diag(s^2) R^T.
    many = sampler.sample(400_000, torch.Generator().manual_seed(2)) - sampler.center
    cov = many.T @ many / many.shape[0]
    r = torch.eye(2, dtype=torch.float64) if axes is None else axes
    expected = r @ torch.diag((sampler.scales**2).mean(0)) @ r.T
    assert torch.allclose(cov, expected, rtol=0.02, atol=0.05)
    density = torch.exp(sampler.log_density(x))
    slow_density = torch.stack(
        [
            torch.exp(
                torch.distributions.MultivariateNormal(
                    sampler.center, r @ torch.diag(s_k**2) @ r.T
                ).log_prob(x)
            )
            for s_k in sampler.scales
        ]
    ).mean(0)
    assert torch.allclose(density, slow_density, rtol=1e-12)


def test_box_eigenfunction_and_boundary_factor() -> None:
    lo = torch.tensor([0.0, -1.0], dtype=torch.float64)
    hi = torch.tensor([1.0, 2.0], dtype=torch.float64)
    box = UniformBox(lo, hi)
    x = box.sample(40, torch.Generator().manual_seed(2))
    # psi = sin(pi x) sin(pi (y+1)/3), E = pi^2/2 (1 + 1/9)
    k = torch.tensor([math.pi, math.pi / 3], dtype=torch.float64)
    s = torch.sin(k * (x - lo))
    c = torch.cos(k * (x - lo))
    value = s[:, 0] * s[:, 1]
    grad = torch.stack([k[0] * c[:, 0] * s[:, 1], k[1] * s[:, 0] * c[:, 1]], 1)
    lap = -(k * k).sum() * value
    op = Schrodinger(0.5, lambda y: torch.zeros_like(y[:, 0]))
    h = Jet(value, grad, lap).unsqueeze_features()
    hh = op.apply(h, box.envelope(x), op.potential(x))
    assert torch.allclose(hh, 0.5 * (k * k).sum() * h.value, atol=1e-12)
    # The boundary factor vanishes on the faces and is 1 at the centre.
    factor = box_factor(lo, hi)
    faces = torch.tensor([[0.0, 0.5], [1.0, 0.5], [0.5, -1.0], [0.5, 2.0]], dtype=torch.float64)
    assert torch.allclose(factor(faces).value, torch.zeros(4, dtype=torch.float64))
    assert float(factor(torch.tensor([[0.5, 0.5]], dtype=torch.float64)).value) == 1.0
    slow = reference_jet(lambda y: factor(y).value, x)
    assert torch.allclose(factor(x).lap, slow.lap, atol=1e-12)
    assert torch.allclose(factor(x).grad, slow.grad, atol=1e-12)


def test_coulomb_centre_gives_finite_potential() -> None:
    x = torch.zeros(3, 2, dtype=torch.float64)
    x[1, 0] = 0.5
    v = finite_potential(lambda y: -1.0 / y.norm(dim=1), x)
    assert torch.isfinite(v).all()
    assert float(v[1]) == -2.0


@pytest.mark.parametrize("rate", [2.0, -0.7])
def test_the_cusp_factor_jet_is_exact(rate: float) -> None:
    x = torch.randn(32, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    factor = cusp_factor(rate)
    slow = reference_jet(lambda y: factor(y).value, x)
    r = x.norm(dim=1)
    assert torch.allclose(factor(x).value, torch.exp(-rate * r / (1 + abs(rate) * r)))
    assert torch.allclose(factor(x).grad, slow.grad, atol=1e-12)
    assert torch.allclose(factor(x).lap, slow.lap, atol=1e-10)


@pytest.mark.parametrize("d", [2, 3])
def test_the_cusp_factor_keeps_h_psi_bounded_at_a_coulomb_centre(d: int) -> None:
    """H (J f) for a smooth f that does not vanish at the centre: bounded with the factor of
    rate Z / (kappa (d - 1)), growing like 1/r without it (so ||H psi|| would be infinite)."""
    kappa, charge = 0.5, 1.3
    op = Schrodinger(kappa, lambda y: -charge / y.norm(dim=1))
    factor = cusp_factor(charge / (kappa * (d - 1)))
    shift = torch.linspace(0.3, 0.6, d, dtype=torch.float64)

    def smooth(x: torch.Tensor) -> Jet:  # f = exp(-|x - c|^2 / 2) * (1 + x_0)
        y = x - shift
        g = _exp_jet(Jet(-0.5 * (y * y).sum(-1), -y, torch.full_like(x[:, 0], -float(d))))
        e0 = torch.zeros_like(x)
        e0[:, 0] = 1.0
        return Jet(1 + x[:, 0], e0, torch.zeros_like(x[:, 0])) * g

    def h_psi_over_psi(r: float, with_factor: bool) -> float:
        u = torch.randn(64, d, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        x = r * u / u.norm(dim=1, keepdim=True)
        psi = factor(x) * smooth(x) if with_factor else smooth(x)
        hh = op.apply(psi.unsqueeze_features(), Jet.constant(torch.zeros_like(x[:, 0]), d),
                      op.potential(x))
        return float((hh[:, 0] / psi.value).abs().max())

    with_cusp = [h_psi_over_psi(r, True) for r in (1e-2, 1e-4, 1e-6)]
    assert max(with_cusp) < 1.5 * min(with_cusp) < 100.0
    without = [h_psi_over_psi(r, False) for r in (1e-2, 1e-4, 1e-6)]
    assert without[2] > 1e3 * without[0]
