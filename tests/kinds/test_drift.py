"""Non-self-adjoint differential operators A = -kappa Laplacian + b . grad + V: the problem
keys, the operator in the sampler's frame, the grid reference's singular values, and the
smallest singular values end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from nsvd_cli.cli import app
from nsvd_cli.numerics.jets import Jet
from nsvd_cli.numerics.operators import Schrodinger
from nsvd_cli.references import grid
from nsvd_cli.spec.load import ProblemError, parse_problem

ROOT = Path(__file__).resolve().parents[2]

DRIFT = """
name: drift-1d
coordinates: [x]
operator: {kinetic: 1, drift: ["3"]}
domain: {box: {x: [0, 1]}}
modes: 2
want: smallest-singular
solver: {steps: 200, batch_size: 256, hidden: 16}
"""


# -- problem files -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "key", "message"),
    [
        (('drift: ["3"]', 'drift: ["3", "1"]'), "operator.drift", "one component per"),
        (('drift: ["3"]', 'drift: ["3*z"]'), "operator.drift[0]", "unknown name 'z'"),
        (("want: smallest-singular", "want: lowest"), "want", "non-self-adjoint"),
        (("want: smallest-singular", "want: largest-singular"), "want", "integral operator"),
    ],
)
def test_drift_problem_errors(edit: tuple[str, str], key: str, message: str) -> None:
    assert edit[0] in DRIFT
    with pytest.raises(ProblemError) as info:
        parse_problem(DRIFT.replace(edit[0], edit[1]), "d.yaml")
    assert f"{key}:" in str(info.value) and message in str(info.value)


def test_drift_defaults_to_smallest_singular_with_singular_references() -> None:
    text = DRIFT.replace("want: smallest-singular\n", "") + (
        "reference: {singular_value: 'k', quantum_numbers: {k: [1, 3]}, "
        "right_function: 'sin(k*pi*x)'}\n"
    )
    problem = parse_problem(text, "d.yaml")
    assert problem.wanted == "smallest-singular" and problem.singular_values_wanted
    with pytest.raises(ProblemError, match="reference.eigenvalue"):
        parse_problem(text.replace("singular_value:", "eigenvalue:"), "d.yaml")


# -- the operator ----------------------------------------------------------------------------


def test_drift_in_the_sampler_frame_matches_autograd() -> None:
    """A~h = e^{-a} A(e^a h) for A = -kappa lap + b . grad + V, on known smooth functions."""
    torch.manual_seed(0)
    x = torch.randn(64, 2, dtype=torch.float64)
    kappa = 0.7
    b_vec = torch.tensor([1.5, -0.4], dtype=torch.float64)

    def a_fn(p: torch.Tensor) -> torch.Tensor:
        return -0.25 * (p * p).sum(-1)

    def h_fn(p: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.sin(p[:, 0]) * p[:, 1], torch.cos(p[:, 0] + 2 * p[:, 1])], -1)

    def v_fn(p: torch.Tensor) -> torch.Tensor:
        return (p * p).sum(-1)

    def jet_of(fn, p: torch.Tensor) -> Jet:  # noqa: ANN001
        p = p.clone().requires_grad_(True)
        out = fn(p)
        outs = out if out.dim() == 2 else out.unsqueeze(-1)
        grads, laps = [], []
        for k in range(outs.shape[1]):
            (g,) = torch.autograd.grad(outs[:, k].sum(), p, create_graph=True)
            lap = sum(
                torch.autograd.grad(g[:, i].sum(), p, retain_graph=True)[0][:, i]
                for i in range(p.shape[1])
            )
            grads.append(g.detach())
            laps.append(lap.detach())
        grad = torch.stack(grads, -1)
        lap_t = torch.stack(laps, -1)
        if out.dim() == 1:
            return Jet(out.detach(), grad[..., 0], lap_t[..., 0])
        return Jet(out.detach(), grad, lap_t)

    op = Schrodinger(kappa, v_fn, lambda p: b_vec.expand(p.shape[0], 2))
    got = op.apply(jet_of(h_fn, x), jet_of(a_fn, x), v_fn(x), b_vec.expand(64, 2))

    def psi(p: torch.Tensor) -> torch.Tensor:
        return torch.exp(a_fn(p)).unsqueeze(-1) * h_fn(p)

    pj = jet_of(psi, x)
    a_psi = (
        -kappa * pj.lap + torch.einsum("d,bdl->bl", b_vec, pj.grad) + v_fn(x)[:, None] * pj.value
    )
    want = torch.exp(-a_fn(x)).unsqueeze(-1) * a_psi
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


# -- the grid reference -----------------------------------------------------------------------


def test_first_derivative_stencil_is_fourth_order() -> None:
    errors = []
    for n in (40, 80):
        x = np.linspace(0, 1, n + 2)[1:-1]
        d1 = grid.first_derivative(n, x[1] - x[0])
        u = np.sin(np.pi * x)  # zero at both walls, odd about them
        errors.append(np.abs(d1 @ u - np.pi * np.cos(np.pi * x)).max())
    assert errors[1] < errors[0] / 12  # 16x for fourth order


def _dense_singular_values(kappa: float, b: float, n: int, k: int) -> np.ndarray:
    """Second-order central differences, dense SVD: an independent check."""
    h = 1.0 / (n + 1)
    lap = np.diag(np.full(n - 1, 1.0), -1) - 2 * np.eye(n) + np.diag(np.full(n - 1, 1.0), 1)
    d1 = (np.diag(np.full(n - 1, 1.0), 1) - np.diag(np.full(n - 1, 1.0), -1)) / (2 * h)
    a = -kappa * lap / h**2 + b * d1
    return np.sort(np.linalg.svd(a, compute_uv=False))[:k]


def test_grid_singular_values_of_a_convection_diffusion_operator() -> None:
    problem = grid.GridProblem(
        kinetic=1.0,
        potential=lambda p: np.zeros(len(p)),
        lo=(0.0,),
        hi=(1.0,),
        drift=lambda p: np.full_like(p, 3.0),
    )
    spectrum = grid.solve(problem, 4, 512)
    dense = _dense_singular_values(1.0, 3.0, 1600, 4)
    rel = np.abs(spectrum.eigenvalues - dense) / dense
    assert np.all(rel < 1e-4), rel
    # Without the drift the singular values are the eigenvalues (k pi)^2.
    plain = grid.solve(
        grid.GridProblem(1.0, lambda p: np.zeros(len(p)), (0.0,), (1.0,), drift=lambda p: 0 * p),
        3,
        256,
    )
    exact = (np.pi * np.arange(1, 4)) ** 2
    assert np.all(np.abs(plain.eigenvalues - exact) / exact < 1e-6)
    assert np.all(plain.reliable)
    assert np.all(np.abs(plain.eigenvalues - exact) <= 3 * plain.error + 1e-9 * exact)


# -- end to end -----------------------------------------------------------------------------


def test_drift_solve_reference_and_eval_against(tmp_path: Path) -> None:
    path = tmp_path / "drift.yaml"
    path.write_text(DRIFT)
    run, ref = tmp_path / "run", tmp_path / "ref.h5"
    cli = CliRunner()
    result = cli.invoke(app, ["solve", str(path), "--out", str(run), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "smallest singular values" in result.output
    # No interval is printed as a number: the residual would need fourth derivatives.
    assert "no error intervals: the residual A* u - s v" in " ".join(result.output.split())
    result = cli.invoke(app, ["reference", str(path), "-o", str(ref), "--grid", "64"])
    assert result.exit_code == 0, result.output
    assert "singular value" in result.output
    result = cli.invoke(app, ["eval", str(run), "--json", "--against", str(ref)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["kind"] == "smallest-singular"
    assert report["intervals"] == [[None, None]] * 2 and report["interval_unavailable"]
    assert report["singular_values"] == sorted(report["singular_values"])
    dense = _dense_singular_values(1.0, 3.0, 1600, 2)
    np.testing.assert_allclose(report["reference"], dense, rtol=1e-4)
    # 200 steps: only the plumbing is checked here, and that the values are upper bounds
    # (Rayleigh-Ritz) within a generous factor.
    learned = np.asarray(report["singular_values"])
    assert np.all(learned > dense * (1 - 1e-3)) and np.all(learned < 3 * dense)


BOX = """
name: box-singular
coordinates: [x]
operator: {kinetic: 1/2}
domain: {box: {x: [0, 1]}}
modes: 2
want: smallest-singular
solver: {steps: 3000, learning_rate: 3.0e-3, batch_size: 256, hidden: 32}
reference:
  singular_value: "pi**2*k**2/2"
  quantum_numbers: {k: [1, 10]}
  right_function: "sin(k*pi*x)"
  left_function: "sin(k*pi*x)"
"""


def test_without_drift_the_smallest_singular_values_are_the_eigenvalues(tmp_path: Path) -> None:
    path = tmp_path / "box.yaml"
    path.write_text(BOX)
    run = tmp_path / "run"
    cli = CliRunner()
    assert cli.invoke(app, ["solve", str(path), "--out", str(run)]).exit_code == 0
    result = cli.invoke(app, ["eval", str(run), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    np.testing.assert_allclose(report["reference"], [math.pi**2 / 2, 2 * math.pi**2])
    assert report["max_relative_error"] < 2e-2
    assert report["subspace_distance"] < 2e-2
    # A = H is self-adjoint and positive here, so u = A v / s = v: both sides agree.
    assert report["right_subspace_distance"] < 2e-2 and report["left_subspace_distance"] < 2e-2
    out = tmp_path / "e.h5"
    assert cli.invoke(app, ["export", str(run), "-o", str(out), "--grid", "33"]).exit_code == 0
    with h5py.File(out) as f:
        left, right = f["eigenfunctions/values"][()], f["right_functions/values"][()]
        x = f["eigenfunctions/x"][()]
    np.testing.assert_allclose(np.trapezoid(right**2, x, axis=1), 1.0, rtol=0.05)
    # u = A v / s takes two derivatives of the learned v: its error is larger (most of it
    # at the walls, where v'' of the network need not vanish), so compare in L2.
    assert np.all(np.trapezoid((left - right) ** 2, x, axis=1) < 0.1**2)  # measured 0.05
