"""Both nestings on a problem with an exact answer: a symmetric matrix as the operator.

Functions on n points with the uniform measure are vectors, <u, v> = mean(u v), and
T u = A u is self-adjoint in that inner product with the eigenpairs of A. Minimising the
nested LoRA loss must recover the top eigenvectors in order, with ||f_l||^2 = lambda_l.
"""

from __future__ import annotations

import pytest
import torch

from nsvd_cli.formulations import held_matrix
from nsvd_cli.methods import METHODS


def _problem(n: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    lam = torch.cat([torch.tensor([3.0, 2.0, 1.5, 1.0]), torch.linspace(0.5, -1.0, n - 4)])
    a = (q * lam.double()) @ q.T
    return a, lam.double(), q


@pytest.mark.parametrize("method", ["neuralsvd-sequential", "neuralsvd-joint"])
def test_nested_lora_recovers_ordered_top_eigenvectors(method: str) -> None:
    a, lam, q = _problem()
    n, modes = a.shape[0], 4
    g = torch.Generator().manual_seed(1)
    # Functions sampled on all n points, duplicated so both half-batches see the same
    # points: the loss is then deterministic and its minimiser exact.
    f = (0.1 * torch.randn(n, modes, generator=g, dtype=torch.float64)).requires_grad_(True)
    opt = torch.optim.SGD([f], lr=0.5)
    loss_fn = METHODS[method]
    for _ in range(3000):
        tf = a @ f.detach()
        both = torch.cat([f, f])
        out = loss_fn(both, held_matrix(both, torch.cat([tf, tf])))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    fd = f.detach()
    # Each learned function is the corresponding eigenvector (up to sign), in order.
    for k in range(modes):
        v = q[:, k]
        cos = (fd[:, k] @ v).abs() / fd[:, k].norm()
        assert cos > 0.999, (method, k, float(cos))
    # At the optimum ||f_l||^2 = lambda_l.
    norms = (fd * fd).mean(0)
    assert torch.allclose(norms, lam[:modes], rtol=1e-3), norms


def test_unbiased_quadratic_term_uses_independent_halves() -> None:
    # With the halves holding different points, the quadratic term is G1 * G2, not G^2.
    f = torch.tensor([[1.0], [1.0], [3.0], [3.0]], dtype=torch.float64, requires_grad=True)
    t = torch.zeros(1, 1, dtype=torch.float64)
    for name in METHODS:
        out = METHODS[name](f, t)
        g1, g2 = 1.0, 9.0
        assert float(out.loss.detach()) == pytest.approx(g1 * g2), name
