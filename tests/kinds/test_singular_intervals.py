"""Residual intervals of singular values (integral operators) against a kernel whose
residuals are known in closed form."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from helpers import RANK2
from torch import nn

from nsvd_cli.kinds.integral_model import (
    SingularPair,
    build_singular,
    derive_singular_settings,
    next_singular_bound,
    singular_readout,
)
from nsvd_cli.numerics.integral import image_moments
from nsvd_cli.objectives.intervals import (
    KATO_TEMPLE,
    Z_VALUE,
    BlockResiduals,
    intervals_from,
)
from nsvd_cli.spec.load import load_problem


class _Functions(nn.Module):
    """Fixed functions of the first coordinate, as a 'network'."""

    def __init__(self, columns) -> None:  # noqa: ANN001
        super().__init__()
        self.columns = columns
        self.unused = nn.Parameter(torch.zeros(1), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([c(x[:, 0]) for c in self.columns], 1)


def _pair(theta: float) -> SingularPair:
    """f_1 = cos(theta) u_1 + sin(theta) u_5 with u_k = sqrt(2) sin(k pi x) (u_5 is in the
    kernel of T*), f_2 = u_2, g_k = v_k = cos(k pi y). The Ritz pairs are (f_1, g_1) with
    s_1 = cos(theta) and (f_2, g_2) with s_2 = 1/2; T v_1 - s_1 f_1 has norm sin(theta) and
    T* f_1 - s_1 g_1 = 0, so the Jordan-Wielandt residual of the first pair is
    sin(theta) / sqrt(2) and of the second 0."""
    c, s, r2 = math.cos(theta), math.sin(theta), math.sqrt(2.0)
    left = _Functions([
        lambda x: r2 * (c * torch.sin(math.pi * x) + s * torch.sin(5 * math.pi * x)),
        lambda x: r2 * torch.sin(2 * math.pi * x),
    ])  # fmt: skip
    right = _Functions([lambda y: torch.cos(math.pi * y), lambda y: torch.cos(2 * math.pi * y)])
    return SingularPair(left, right)


def _readout(tmp_path: Path, theta: float, seed: int = 0):  # noqa: ANN202
    path = tmp_path / "p.yaml"
    path.write_text(RANK2)
    problem = load_problem(path)
    compiled = build_singular(problem, derive_singular_settings(problem))
    ro = singular_readout(compiled, _pair(theta), seed, blocks=256, block_points=128)
    return ro, intervals_from(BlockResiduals(ro.residual_grams), -ro.values, ro.stderr)


def test_image_moments_are_unbiased_for_a_known_kernel() -> None:
    # k(x, y) = x + y on [0, 1]^2 (uniform points, unit masses), g = 1, f = 1:
    # (T g)(x) = x + 1/2, so <T g, T g> = 1/3 + 1/2 + 1/4 = 13/12, and T* f likewise.
    gen = torch.Generator().manual_seed(0)
    estimates = []
    for _ in range(400):
        x, y = torch.rand(16, 1, generator=gen), torch.rand(16, 1, generator=gen)
        k = x + y.T
        image_g, image_f = image_moments(torch.ones(16, 1), torch.ones(16, 1), k)
        estimates.append(torch.cat([image_g.flatten(), image_f.flatten()]))
    stack = torch.stack(estimates).double()
    mean, se = stack.mean(0), stack.std(0) / math.sqrt(len(estimates))
    # Squaring one mean of 16 points would overshoot by var/16 = (1/12)/16 = 5e-3 (~5 se).
    assert torch.all((mean - 13 / 12).abs() < 3 * se), (mean, se)


def test_the_residual_matches_its_closed_form_and_the_interval_holds(tmp_path: Path) -> None:
    theta = 0.15
    ro, iv = _readout(tmp_path, theta)
    assert abs(float(ro.values[0]) - math.cos(theta)) < 5 * float(ro.stderr[0])
    exact = [math.sin(theta) / math.sqrt(2.0), 0.0]
    for i, eps in enumerate(exact):
        assert abs(float(iv.residual[i]) - eps) < 4 * float(iv.residual_stderr[i]) + 5e-3
    assert float(iv.residual_stderr[0]) < 0.1 * exact[0]
    # In -s space; the singular values 1 and 1/2 lie in the flipped intervals.
    for i, truth in enumerate([1.0, 0.5]):
        assert float(-iv.high[i]) <= truth <= float(-iv.low[i]), (i, iv)
    assert iv.methods[0] == KATO_TEMPLE


def test_a_worse_function_gets_a_wider_interval(tmp_path: Path) -> None:
    _, close = _readout(tmp_path, 0.02)
    _, far = _readout(tmp_path, 0.4)
    assert float(far.residual[0]) > 10 * float(close.residual[0])
    # Kato-Temple: second order in the residual, over a floor set by the read-out's noise
    width = lambda iv: float(iv.high[0] - iv.low[0])  # noqa: E731
    assert width(far) > 5 * width(close)


def test_the_hilbert_schmidt_remainder_bounds_the_next_singular_value(tmp_path: Path) -> None:
    # Only the first pair learned: ||k||_HS^2 - s_1^2 = 1/4 leaves s_2 = 1/2 as the bound.
    path = tmp_path / "p.yaml"
    path.write_text(RANK2)
    problem = load_problem(path)
    compiled = build_singular(problem, derive_singular_settings(problem))
    first = _Functions([lambda x: math.sqrt(2.0) * torch.sin(math.pi * x)])
    pair = SingularPair(first, _Functions([lambda y: torch.cos(math.pi * y)]))
    ro = singular_readout(compiled, pair, 0, blocks=256, block_points=128)
    bound = next_singular_bound(ro, Z_VALUE)
    assert 0.5 <= bound <= 0.6, bound
    # Both learned: nothing is left, and the last pair gets Kato-Temple from the bound.
    ro, iv = _readout(tmp_path, 0.0)
    assert next_singular_bound(ro, Z_VALUE) < 0.2
    ceiling = -next_singular_bound(ro, Z_VALUE)
    iv = intervals_from(BlockResiduals(ro.residual_grams), -ro.values, ro.stderr, ceiling=ceiling)
    assert iv.methods[1] == KATO_TEMPLE
    assert float(-iv.high[1]) <= 0.5 <= float(-iv.low[1])
