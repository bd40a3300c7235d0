"""Both nestings on a problem with an exact answer: a symmetric matrix as the operator.

Functions on n points with the uniform measure are vectors, <u, v> = mean(u v), and
T u = A u is self-adjoint in that inner product with the eigenpairs of A. Minimising the
nested LoRA loss must recover the top eigenvectors in order, with ||f_l||^2 = lambda_l.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from nsvd_cli.batch import sample_modes
from nsvd_cli.formulations import held_matrix, row_products
from nsvd_cli.methods import METHODS
from nsvd_cli.metrics import relative_errors
from nsvd_cli.problem import build, derive_settings
from nsvd_cli.readout import ritz
from nsvd_cli.reference import reference_eigenvalues
from nsvd_cli.spec import load_problem
from nsvd_cli.train import init_state, train

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def _problem(n: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    lam = torch.cat([torch.tensor([3.0, 2.0, 1.5, 1.0]), torch.linspace(0.5, -1.0, n - 4)])
    a = (q * lam.double()) @ q.T
    return a, lam.double(), q


def _loss(method: str, f: torch.Tensor, a: torch.Tensor):
    """The method's loss with both half batches holding all n points (deterministic)."""
    tf = a @ f.detach()
    both = torch.cat([f, f])
    rows = (row_products(f, tf), row_products(f, tf))
    return METHODS[method](both, held_matrix(both, torch.cat([tf, tf])), rows)


@pytest.mark.parametrize("method", ["neuralsvd-sequential", "neuralsvd-joint", "neuralef"])
def test_nested_methods_recover_ordered_top_eigenvectors(method: str) -> None:
    a, lam, q = _problem()
    n, modes = a.shape[0], 4
    g = torch.Generator().manual_seed(1)
    f = (0.1 * torch.randn(n, modes, generator=g, dtype=torch.float64)).requires_grad_(True)
    opt = torch.optim.SGD([f], lr=0.5)
    for _ in range(3000):
        out = _loss(method, f, a)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    fd = f.detach()
    # Each learned function is the corresponding eigenvector (up to sign), in order.
    for k in range(modes):
        v = q[:, k]
        cos = (fd[:, k] @ v).abs() / fd[:, k].norm()
        assert cos > 0.999, (method, k, float(cos))
    if method.startswith("neuralsvd"):
        # At the optimum ||f_l||^2 = lambda_l (NeuralEF normalises its outputs instead).
        norms = (fd * fd).mean(0)
        assert torch.allclose(norms, lam[:modes], rtol=1e-3), norms


def test_unbiased_quadratic_term_uses_independent_halves() -> None:
    # With the halves holding different points, the quadratic term is G1 * G2, not G^2.
    f = torch.tensor([[1.0], [1.0], [3.0], [3.0]], dtype=torch.float64, requires_grad=True)
    t = torch.zeros(1, 1, dtype=torch.float64)
    for name in ("neuralsvd-sequential", "neuralsvd-joint"):
        out = METHODS[name](f, t, (t, t))
        g1, g2 = 1.0, 9.0
        assert float(out.loss.detach()) == pytest.approx(g1 * g2), name


@pytest.mark.parametrize("method", ["neuralsvd-sequential", "neuralsvd-joint", "neuralef"])
def test_each_method_solves_the_oscillator_in_order(method: str) -> None:
    """1D oscillator, 4 modes: the span is right and each output is its own state, in order."""
    problem = load_problem(ROOT / "problems" / "oscillator-1d.yaml")
    settings = dataclasses.replace(derive_settings(problem), method=method, steps=3000)
    compiled = build(problem, settings)
    state = train(compiled, init_state(compiled, CPU), CPU)
    batch = sample_modes(compiled, state.network, 1 << 15, torch.Generator().manual_seed(3))
    h, hh = batch.h.double(), batch.hh.double()
    errors = relative_errors(ritz(h, hh).eigenvalues.numpy(), reference_eigenvalues(problem))
    assert errors.max() < 1e-2, errors
    # Without the Rayleigh-Ritz rotation: output l alone is close to state l.
    quotients = ((h * hh).mean(0) / (h * h).mean(0)).numpy()
    assert np.allclose(quotients, [0.5, 1.5, 2.5, 3.5], rtol=2e-2), quotients
