"""Residual intervals on operators whose residuals are known in closed form."""

from __future__ import annotations

import math

import pytest
import torch

from nsvd_cli.objectives.intervals import (
    BLOCK,
    BLOCK_KATO_TEMPLE,
    KATO_TEMPLE,
    UNAVAILABLE,
    WEINSTEIN,
    Intervals,
    gap_above,
    largest_share,
    residual_intervals,
)
from nsvd_cli.objectives.readout import ritz

# The operator: H sin(j pi x) = lambda_j sin(j pi x) on L2(0, 1), sampled uniformly. Its
# eigenfunctions sqrt(2) sin(j pi x) are orthonormal, so every residual has a closed form.


def _levels(levels: list[float]) -> torch.Tensor:
    return torch.tensor(levels + [levels[-1] + 5.0 + j for j in range(len(levels))]).double()


def _sampled(levels: list[float], theta: float, n: int, seed: int):
    """u_l = cos(theta) e_l + sin(theta) e_{L+l} and H u_l at n uniform points: Ritz
    functions of their own span, with Ritz value lam_l cos^2 + lam_{L+l} sin^2 and residual
    cos sin (lam_{L+l} - lam_l)."""
    lam, modes = _levels(levels), len(levels)
    x = torch.rand(n, 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    e = math.sqrt(2.0) * torch.sin(torch.arange(1, 2 * modes + 1) * math.pi * x)  # (n, 2L)
    c, s = math.cos(theta), math.sin(theta)
    u = c * e[:, :modes] + s * e[:, modes:]
    hu = c * lam[:modes] * e[:, :modes] + s * lam[modes:] * e[:, modes:]
    return lam, u, hu


def _intervals(levels: list[float], theta: float, n: int = 200_000, seed: int = 1):
    lam, u, hu = _sampled(levels, theta, n, seed)
    r = ritz(u, hu)
    return lam, r, residual_intervals(u @ r.rotation, hu @ r.rotation, r.eigenvalues, r.stderr)


def test_the_residual_matches_its_closed_form_within_its_standard_error() -> None:
    levels, theta = [1.0, 2.0, 3.5, 5.0], 0.02
    lam, _, iv = _intervals(levels, theta)
    exact = [math.cos(theta) * math.sin(theta) * (lam[4 + i] - lam[i]) for i in range(4)]
    for i, eps in enumerate(exact):
        assert abs(float(iv.residual[i]) - float(eps)) < 4 * float(iv.residual_stderr[i]) + 1e-9
        assert float(iv.residual_stderr[i]) < 0.05 * float(eps)


def test_every_interval_holds_its_eigenvalue_and_kato_temple_is_tighter() -> None:
    levels = [1.0, 2.0, 3.5, 5.0]
    lam, r, iv = _intervals(levels, 0.02)
    for i in range(4):
        assert iv.low[i] <= lam[i] <= iv.high[i], (i, iv.low[i], iv.high[i])
    # Well separated levels: Kato-Temple applies below the top, whose gap is unknown.
    assert iv.methods == (KATO_TEMPLE, KATO_TEMPLE, KATO_TEMPLE, WEINSTEIN)
    weinstein_width = 2 * iv.residual[:3]
    assert bool(((iv.high - iv.low)[:3] < 0.2 * weinstein_width).all())
    # The upper end of a Kato-Temple interval is the Ritz value (at its confidence limit).
    assert bool((iv.high[:3] >= r.eigenvalues[:3]).all())


def test_a_worse_function_gets_a_wider_interval() -> None:
    widths = []
    for theta in (0.005, 0.02, 0.08):
        _, _, iv = _intervals([1.0, 2.0, 3.5, 5.0], theta)
        widths.append(float((iv.high - iv.low)[0]))
    assert widths[0] < widths[1] < widths[2]


def test_kato_temple_against_a_known_gap() -> None:
    """One Ritz pair with exactly known eta, eps and gap: the bound is eta - eps^2/(beta-eta)
    up to the confidence margins, and it holds lambda."""
    levels, theta = [1.0, 3.0], 0.05
    lam, r, iv = _intervals(levels, theta, n=400_000)
    eta = float(lam[0] * math.cos(theta) ** 2 + lam[2] * math.sin(theta) ** 2)
    eps = math.cos(theta) * math.sin(theta) * float(lam[2] - lam[0])
    assert abs(float(r.eigenvalues[0]) - eta) < 5 * float(r.stderr[0])
    assert iv.methods[0] == KATO_TEMPLE
    assert iv.low[0] <= lam[0] <= iv.high[0]
    # The next level's lower end is beta; the bound is close to the exact formula.
    beta = float(iv.low[1])
    assert float(iv.low[0]) == pytest.approx(eta - eps**2 / (beta - eta), abs=0.02)


def test_a_degenerate_level_shares_one_interval() -> None:
    levels = [1.0, 2.0, 2.0, 3.5]
    lam, _, iv = _intervals(levels, 0.02)
    assert iv.level[1] == iv.level[2] and iv.level[0] != iv.level[1] != iv.level[3]
    assert iv.methods[1] == iv.methods[2] and iv.methods[1] in (BLOCK, BLOCK_KATO_TEMPLE)
    assert iv.low[1] == iv.low[2] and iv.high[1] == iv.high[2]
    assert iv.low[1] <= 2.0 <= iv.high[1]
    for i in range(4):
        assert iv.low[i] <= lam[i] <= iv.high[i]


def test_a_residual_with_infinite_variance_is_unavailable() -> None:
    """A power-law residual whose square has an infinite mean (as 1/r^2 next to a 2-D Coulomb
    point) gives no interval; the same function with a light-tailed residual does."""
    gen = torch.Generator().manual_seed(4)
    n = 100_000
    u = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    values = torch.tensor([1.0, 2.0], dtype=torch.float64)
    light = 0.01 * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    uniform = torch.rand(n, 2, generator=gen, dtype=torch.float64)
    heavy = 0.01 * uniform.pow(-0.75) * torch.sign(torch.randn(n, 2, generator=gen))
    stderr = torch.full((2,), 1e-3, dtype=torch.float64)
    good = residual_intervals(u, u * values + light, values, stderr)
    bad = residual_intervals(u, u * values + heavy, values, stderr)
    assert good.methods[0] != UNAVAILABLE and bool(good.available.all())
    assert bad.methods == (UNAVAILABLE, UNAVAILABLE)
    assert bool(torch.isnan(bad.low).all()) and bool(torch.isnan(bad.high).all())


def test_largest_share_is_the_largest_point_over_the_sum() -> None:
    x = torch.tensor([[1.0, 0.0], [3.0, 0.0], [6.0, 0.0]], dtype=torch.float64)
    assert largest_share(x).tolist() == [0.6, 0.0]


def test_a_missing_direction_is_unavailable_with_its_reason() -> None:
    """A Ritz value of +inf (a direction the Gram matrix lacks) gets no interval, and the
    reason says why instead of quoting a share."""
    gen = torch.Generator().manual_seed(8)
    u = torch.randn(10_000, 2, generator=gen, dtype=torch.float64)
    values = torch.tensor([1.0, float("inf")], dtype=torch.float64)
    stderr = torch.tensor([1e-3, float("nan")], dtype=torch.float64)
    iv = residual_intervals(u, u * torch.tensor([1.0, 2.0]).double(), values, stderr)
    assert iv.methods[1] == UNAVAILABLE and iv.methods[0] != UNAVAILABLE
    assert iv.reason is not None and "not finite" in iv.reason


def test_a_ceiling_gives_the_top_level_kato_temple() -> None:
    """With an estimate of the spectrum above every mode (buffer functions), the highest
    level gets the Kato-Temple interval too, and it holds its eigenvalue."""
    levels = [1.0, 2.0, 3.5, 5.0]
    lam, u, hu = _sampled(levels, 0.02, 200_000, 1)
    r = ritz(u, hu)
    args = (u @ r.rotation, hu @ r.rotation, r.eigenvalues, r.stderr)
    plain, capped = residual_intervals(*args), residual_intervals(*args, ceiling=9.9)
    assert plain.methods[3] == WEINSTEIN and capped.methods[3] == KATO_TEMPLE
    assert capped.low[3] <= lam[3] <= capped.high[3]
    assert float(capped.high[3] - capped.low[3]) < 0.2 * float(plain.high[3] - plain.low[3])
    # a ceiling under the level's own Ritz value is no gap: Weinstein stays
    assert residual_intervals(*args, ceiling=4.0).methods[3] == WEINSTEIN


def _buffer(lows: list[float], methods: list[str]) -> Intervals:
    low = torch.tensor(lows, dtype=torch.float64)
    zeros = torch.zeros_like(low)
    return Intervals(low, low + 1, zeros, zeros, zeros, zeros.long(), tuple(methods))


def test_the_gap_above_the_wanted_modes() -> None:
    values = torch.tensor([-0.2], dtype=torch.float64)
    usable, unknown = _buffer([-0.3], [WEINSTEIN]), _buffer([math.nan], [UNAVAILABLE])
    # a buffer state below the threshold: its interval's low end, or the threshold if lower
    assert gap_above(usable, values, 0.0) == pytest.approx(-0.3)
    assert gap_above(usable, values, -0.5) == -0.5  # -0.2 is above it: in the continuum
    assert gap_above(usable, values, None) == pytest.approx(-0.3)
    # a buffer function in the continuum (or absent) found nothing below the threshold
    assert gap_above(unknown, torch.tensor([0.4], dtype=torch.float64), 0.0) == 0.0
    assert gap_above(unknown, torch.tensor([math.nan], dtype=torch.float64), 0.0) == 0.0
    # a state below the threshold without an interval: the gap is unknown
    assert gap_above(unknown, values, 0.0) is None
    assert gap_above(unknown, torch.tensor([math.nan], dtype=torch.float64), None) is None
