"""The a-priori estimates that drive the defaults, against closed-form Weyl counts."""

from __future__ import annotations

import math

import pytest
import torch

from nsvd_cli.numerics import weyl as analysis


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.mark.parametrize("dim,modes", [(1, 4), (2, 9), (3, 10)])
def test_weyl_count_of_isotropic_oscillator(dim: int, modes: int) -> None:
    # V = |x|^2/2, kappa = 1/2: N(E) = E^d / d!  exactly in the semiclassical count.
    x, log_w = analysis.log_radial_points(dim, 50_000, _gen())
    est = analysis.weyl_estimate(lambda y: 0.5 * (y * y).sum(-1), 0.5, dim, modes, x, log_w)
    fact = math.factorial(dim)
    assert est.lowest == pytest.approx(fact ** (1 / dim), rel=0.03)
    assert est.highest == pytest.approx((modes * fact) ** (1 / dim), rel=0.03)
    # rho_E ~ (E - r^2/2)^{d/2}: per-coordinate variance E / (d + 1).
    for r in est.rms_highest:
        assert r == pytest.approx(math.sqrt(est.highest / (dim + 1)), rel=0.08)
    assert all(c == 0.0 for c in est.center)


def test_weyl_count_of_2d_coulomb() -> None:
    # V = -1/r, kappa = 1/2 in 2D: N(E) = 1 / (2 |E|).
    x, log_w = analysis.log_radial_points(2, 50_000, _gen())
    est = analysis.weyl_estimate(lambda y: -1 / y.norm(dim=1), 0.5, 2, 16, x, log_w)
    assert est.lowest == pytest.approx(-0.5, rel=0.03)
    assert est.highest == pytest.approx(-1 / 32, rel=0.03)


def test_weyl_count_in_a_box() -> None:
    lo = torch.tensor([0.0, 0.0], dtype=torch.float64)
    hi = torch.tensor([1.0, 2.0], dtype=torch.float64)
    x, log_w = analysis.uniform_points(lo, hi, 20_000, _gen())
    # N(E) = area * pi * (E / kappa) / (2 pi)^2 = E / pi for area 2, kappa 1/2.
    est = analysis.weyl_estimate(lambda y: 0 * y[:, 0], 0.5, 2, 6, x, log_w)
    assert est.highest == pytest.approx(6 * math.pi, rel=0.01)


def test_limit_at_infinity_and_singularity() -> None:
    coulomb = lambda y: -1 / y.norm(dim=1)  # noqa: E731
    oscillator = lambda y: (y * y).sum(-1)  # noqa: E731
    shifted = lambda y: 3.0 - torch.exp(-(y * y).sum(-1))  # noqa: E731
    assert abs(analysis.limit_at_infinity(coulomb, 2, _gen())) < 1e-6
    assert analysis.limit_at_infinity(oscillator, 2, _gen()) is None
    assert analysis.limit_at_infinity(shifted, 3, _gen()) == pytest.approx(3.0)
    assert analysis.singular_at_origin(coulomb, 3, _gen())
    assert not analysis.singular_at_origin(oscillator, 3, _gen())
    assert not analysis.singular_at_origin(shifted, 2, _gen())


def test_the_continuum_threshold_is_the_lowest_limit_along_rays_that_do_not_confine() -> None:
    """A Morse well: the dissociation limit D on one side, a wall (capped or not) on the
    other; the threshold is D. A potential falling without bound has none."""
    d = 12.5

    def morse(y: torch.Tensor) -> torch.Tensor:
        return d * (1 - torch.exp(-(y[:, 0] - 1))) ** 2

    def capped(y: torch.Tensor) -> torch.Tensor:
        return torch.clamp(morse(y), max=100 * d)

    def half_well(y: torch.Tensor) -> torch.Tensor:
        return torch.where(y[:, 0] > 0, y[:, 0] ** 2, torch.full_like(y[:, 0], 5.0))

    assert analysis.limit_at_infinity(morse, 1, _gen()) == pytest.approx(d)
    assert analysis.limit_at_infinity(capped, 1, _gen()) == pytest.approx(d)
    assert analysis.limit_at_infinity(half_well, 1, _gen()) == pytest.approx(5.0)
    assert analysis.limit_at_infinity(lambda y: -y[:, 0], 1, _gen()) is None
    assert analysis.limit_at_infinity(lambda y: torch.sin(y[:, 0]), 1, _gen()) is None


def test_a_residual_diverges_at_a_2d_coulomb_point_and_not_in_3d() -> None:
    """|V u|^2 ~ r^-2a near the origin: infinite in d dimensions when 2a >= d."""
    coulomb = lambda y: -1 / y.norm(dim=1)  # noqa: E731
    inverse_square = lambda y: 1 / (y * y).sum(-1)  # noqa: E731
    oscillator = lambda y: (y * y).sum(-1)  # noqa: E731
    assert analysis.singularity_exponent(coulomb, 2, _gen()) == pytest.approx(1.0, abs=1e-6)
    assert analysis.singularity_exponent(oscillator, 2, _gen()) == 0.0
    reason = analysis.residual_diverges(coulomb, 2, _gen())
    assert reason is not None and "r^-1 " in reason and "2-D" in reason
    assert analysis.residual_diverges(coulomb, 3, _gen()) is None
    assert analysis.residual_diverges(inverse_square, 3, _gen()) is not None
    assert analysis.residual_diverges(oscillator, 1, _gen()) is None


def test_the_coulomb_charge_is_read_from_the_potential_and_nothing_else_has_one() -> None:
    """V = -Z/r + (bounded) gives Z in any dimension; another power, an angular factor or a
    bounded potential gives None (no exact cusp factor for them)."""
    def r(y: torch.Tensor) -> torch.Tensor:
        return y.norm(dim=1)

    assert analysis.coulomb_charge(lambda y: -1 / r(y), 2, _gen()) == pytest.approx(1.0, rel=1e-9)
    screened = lambda y: -3 * torch.exp(-r(y)) / r(y) + (y * y).sum(-1)  # noqa: E731
    assert analysis.coulomb_charge(screened, 3, _gen()) == pytest.approx(3.0, rel=1e-5)
    assert analysis.coulomb_charge(lambda y: 2 / r(y), 3, _gen()) == pytest.approx(-2.0)
    angular = lambda y: -(1.5 + y[:, 0] / r(y)) / r(y)  # noqa: E731
    assert analysis.coulomb_charge(angular, 2, _gen()) is None
    assert analysis.coulomb_charge(lambda y: -1 / r(y) ** 1.5, 3, _gen()) is None
    assert analysis.coulomb_charge(lambda y: (y * y).sum(-1), 2, _gen()) is None
    soft = lambda y: -1 / torch.sqrt((y * y).sum(-1) + 0.01)  # noqa: E731
    assert analysis.coulomb_charge(soft, 2, _gen()) is None


def test_weyl_count_survives_a_wall_whose_values_overflow_a_variance() -> None:
    """The bare Morse wall D (1 - exp(-(x - 1)))^2 reaches 1e300 on the far sample: the
    bracket once came from the standard deviation, which overflowed to inf."""
    x, log_w = analysis.log_radial_points(1, 50_000, _gen())

    def morse(y: torch.Tensor) -> torch.Tensor:
        return 12.5 * (1 - torch.exp(-(y[:, 0].double() - 1))) ** 2

    v = morse(x)
    assert not math.isfinite(float(v[torch.isfinite(v)].std()))  # the trap is present
    est = analysis.weyl_estimate(morse, 0.5, 1, 4, x, log_w)
    # The phase-space count N(E) of the Morse well is k at E = 5 k - k^2 / 2 (its WKB
    # quantisation, exact for Morse, puts level n at N = n + 1/2): N = 1 and N = 4.
    assert est.lowest == pytest.approx(4.5, rel=0.1)
    assert est.highest == pytest.approx(12.0, rel=0.1)
