"""Both nestings on a problem with an exact answer: a symmetric matrix as the operator.

Functions on n points with the uniform measure are vectors, <u, v> = mean(u v), and
T u = A u is self-adjoint in that inner product with the eigenpairs of A. Minimising the
nested LoRA loss must recover the top eigenvectors in order, with ||f_l||^2 = lambda_l.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nsvd_cli.kinds.schrodinger import build, derive_settings
from nsvd_cli.objectives.batch import sample_modes
from nsvd_cli.objectives.formulations import held_matrix, row_products
from nsvd_cli.objectives.methods import Method, MethodOptions, make_method
from nsvd_cli.objectives.methods.spin import spin_eigenvalues
from nsvd_cli.objectives.readout import ritz
from nsvd_cli.references.closed_form import reference_eigenvalues
from nsvd_cli.references.metrics import relative_errors
from nsvd_cli.spec.load import load_problem
from nsvd_cli.training.loop import init_state, train

ROOT = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")


def _problem(n: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    lam = torch.cat([torch.tensor([3.0, 2.0, 1.5, 1.0]), torch.linspace(0.5, -1.0, n - 4)])
    a = (q * lam.double()) @ q.T
    return a, lam.double(), q


class Table(torch.nn.Module):
    """Functions on n points as a parameter table: the 'network' is its own output."""

    def __init__(self, values: torch.Tensor) -> None:
        super().__init__()
        self.values = torch.nn.Parameter(values.clone())

    def forward(self) -> torch.Tensor:
        return self.values


def _loss(loss_fn: Method, f: torch.Tensor, a: torch.Tensor):
    """The method's loss with both half batches holding all n points (deterministic)."""
    tf = a @ f.detach()
    both = torch.cat([f, f])
    rows = (row_products(f, tf), row_products(f, tf))
    return loss_fn(both, held_matrix(both, torch.cat([tf, tf])), rows)


ALL_METHODS = ["neuralsvd-sequential", "neuralsvd-joint", "neuralef", "spin"]


@pytest.mark.parametrize("method", ALL_METHODS)
def test_nested_methods_recover_ordered_top_eigenvectors(method: str) -> None:
    a, lam, q = _problem()
    n, modes = a.shape[0], 4
    g = torch.Generator().manual_seed(1)
    table = Table(0.1 * torch.randn(n, modes, generator=g, dtype=torch.float64))
    f = table.values
    loss_fn = make_method(method, table, MethodOptions(moving_average=0.1))
    opt = torch.optim.SGD([f], lr=0.5)
    for _ in range(3000):
        out = _loss(loss_fn, table(), a)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    fd = f.detach()
    if method == "spin":
        # SpIN's eigenfunctions are its outputs orthonormalised by the Cholesky factor.
        fd = fd @ torch.linalg.inv(torch.linalg.cholesky(fd.T @ fd / n)).T
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
        out = make_method(name, torch.nn.Linear(1, 1))(f, t, (t, t))
        g1, g2 = 1.0, 9.0
        assert float(out.loss.detach()) == pytest.approx(g1 * g2), name


def test_spin_gradient_is_the_masked_gradient_of_the_rayleigh_trace() -> None:
    """With no memory in its averages, SpIN's gradient into f_k is that of -Lambda_kk with
    f_1..f_{k-1} held fixed (Pfau et al.'s masked gradient), Lambda = C^-1 Pi C^-T."""
    a, _, _ = _problem(n=12, seed=2)
    n, modes = a.shape[0], 4
    table = Table(torch.randn(n, modes, generator=torch.Generator().manual_seed(4)).double())
    spin = make_method("spin", table, MethodOptions(moving_average=1.0))
    out = _loss(spin, table(), a)
    (got,) = torch.autograd.grad(out.loss, table.values)
    f = table.values
    expected = torch.zeros(())
    for k in range(modes):
        g = torch.cat([f[:, :k].detach(), f[:, k : k + 1]], dim=1)
        chol = torch.linalg.cholesky(g.T @ g / n)
        inv = torch.linalg.inv(chol)
        expected = expected - (inv @ (g.T @ a @ g / n) @ inv.T)[k, k]
    (want,) = torch.autograd.grad(expected, f)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-8), (got - want).abs().max()
    # The reported loss is -tr(Lambda) of the whole set.
    lam = torch.linalg.eigvalsh(a)
    assert float(out.loss.detach()) >= -float(lam[-modes:].sum()) - 1e-9


def test_spin_keeps_moving_averages_of_the_gram_matrix() -> None:
    a, _, _ = _problem(n=8)
    table = Table(torch.randn(8, 3, dtype=torch.float64))
    spin = make_method("spin", table, MethodOptions(moving_average=0.25))
    grams = []
    for _ in range(2):
        f = table()
        grams.append(f.detach().T @ f.detach() / 8)
        _loss(spin, f, a).loss.backward()
        with torch.no_grad():
            table.values.sub_(0.1 * table.values.grad)
    expected = 0.75 * grams[0] + 0.25 * grams[1]
    assert torch.allclose(spin.state_dict()["sigma"], expected)


def test_spin_state_round_trips() -> None:
    a, _, _ = _problem(n=8)
    table = Table(torch.randn(8, 3, dtype=torch.float64))
    spin = make_method("spin", table)
    _loss(spin, table(), a)
    other = make_method("spin", table)
    other.load_state_dict(spin.state_dict())
    s1, s2 = spin.state_dict(), other.state_dict()
    assert torch.equal(s1["sigma"], s2["sigma"])
    assert all(torch.equal(x, y) for x, y in zip(s1["jacobians"], s2["jacobians"]))


@pytest.mark.parametrize("method", ALL_METHODS)
def test_each_method_solves_the_oscillator_in_order(method: str) -> None:
    """1D oscillator, 4 modes: the span is right and each output is its own state, in order."""
    problem = load_problem(ROOT / "problems" / "oscillator-1d.yaml")
    # SpIN's default running averages (weight 0.01 on each new batch, as Pfau et al.) lag
    # far behind Adam at this step budget; without memory it converges like the others.
    settings = derive_settings(problem).replaced(method=method, steps=3000, spin_decay=1.0)
    compiled = build(problem, settings)
    state = train(compiled, init_state(compiled, CPU), CPU)
    batch = sample_modes(compiled, state.network, 1 << 15, torch.Generator().manual_seed(3))
    h, hh = batch.h.double(), batch.hh.double()
    errors = relative_errors(ritz(h, hh).eigenvalues.numpy(), reference_eigenvalues(problem))
    assert errors.max() < 1e-2, errors
    # Without the Rayleigh-Ritz rotation: output l alone is close to state l (for SpIN,
    # output l orthonormalised against outputs 1..l-1 by the Cholesky factor).
    if method == "spin":
        quotients = spin_eigenvalues(h.T @ h / len(h), h.T @ hh / len(h)).numpy()
    else:
        quotients = ((h * hh).mean(0) / (h * h).mean(0)).numpy()
    assert np.allclose(quotients, [0.5, 1.5, 2.5, 3.5], rtol=2e-2), quotients
