"""Two-sided NeuralSVD on an operator with a known SVD: a non-symmetric matrix.

Functions on n points with the uniform measure are vectors, <u, v> = mean(u v), and
T g = A g has the singular triplets of A. Minimising the nested LoRA loss over left and
right tables must recover the top singular pairs in order with ||f_l|| ||g_l|| = s_l.
"""

from __future__ import annotations

import pytest
import torch

from nsvd_cli.objectives.methods.svd import SVD_LOSSES
from nsvd_cli.objectives.readout import singular_ritz


def _operator(n: int = 20, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    s = torch.cat([torch.tensor([3.0, 2.0, 1.5, 1.0]), torch.linspace(0.6, 0.05, n - 4)])
    return (u * s.double()) @ v.T, u, s.double(), v


def _mean_norm(x: torch.Tensor) -> torch.Tensor:
    return (x * x).mean(0).sqrt()


@pytest.mark.parametrize("method", sorted(SVD_LOSSES))
def test_nested_svd_recovers_ordered_singular_pairs(method: str) -> None:
    a, u, s, v = _operator()
    n, modes = a.shape[0], 4
    gen = torch.Generator().manual_seed(1)
    f = (0.1 * torch.randn(n, modes, generator=gen, dtype=torch.float64)).requires_grad_(True)
    g = (0.1 * torch.randn(n, modes, generator=gen, dtype=torch.float64)).requires_grad_(True)
    opt = torch.optim.SGD([f, g], lr=0.3)
    for _ in range(4000):
        cross = f.T @ (a @ g) / n  # <f_l, T g_m>, gradient into both sides
        out = SVD_LOSSES[method](f, g, cross)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    fd, gd = f.detach(), g.detach()
    for k in range(modes):
        assert (fd[:, k] @ u[:, k]).abs() / fd[:, k].norm() > 0.999, (method, "left", k)
        assert (gd[:, k] @ v[:, k]).abs() / gd[:, k].norm() > 0.999, (method, "right", k)
    # The native read-out: the product of the two norms.
    assert torch.allclose(_mean_norm(fd) * _mean_norm(gd), s[:modes], rtol=1e-3)


def test_singular_ritz_recovers_the_svd_of_a_span_in_any_basis() -> None:
    """Learned spans that are exact but mixed and scaled: Rayleigh-Ritz unmixes them."""
    a, u, s, v = _operator(seed=3)
    n, modes = a.shape[0], 3
    gen = torch.Generator().manual_seed(2)
    mix_f = torch.randn(modes, modes, generator=gen, dtype=torch.float64)
    mix_g = torch.randn(modes, modes, generator=gen, dtype=torch.float64)
    f = u[:, :modes] @ mix_f
    g = v[:, :modes] @ mix_g
    r = singular_ritz(f.T @ f / n, g.T @ g / n, f.T @ (a @ g) / n)
    assert torch.allclose(r.values, s[:modes], rtol=1e-10)
    left, right = f @ r.left, g @ r.right
    for k in range(modes):
        assert torch.allclose(
            (left[:, k] @ u[:, k]).abs() / left[:, k].norm(), torch.ones((), dtype=torch.float64)
        )
        # Signs are paired: T right_k = s_k left_k.
        assert torch.allclose(a @ right[:, k], s[k] * left[:, k], atol=1e-9)
