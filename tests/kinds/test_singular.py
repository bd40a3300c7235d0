"""Integral operators: problem keys, the Monte-Carlo moments, the read-out, and solve/eval/
export end to end, all against closed-form singular value decompositions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from helpers import RANK2
from torch import nn
from typer.testing import CliRunner

from nsvd_cli.cli import app
from nsvd_cli.files.results import read_results
from nsvd_cli.kinds.integral_model import (
    SingularPair,
    build_singular,
    derive_singular_settings,
    singular_readout,
)
from nsvd_cli.references.closed_form import reference_eigenvalues
from nsvd_cli.runs import prepare, resume_settings, solve
from nsvd_cli.spec.load import ProblemError, load_problem, parse_problem

ROOT = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")



def _write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- problem files -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["volterra", "gaussian-cdk", "low-rank-kernel"])
def test_shipped_integral_problems_load(name: str) -> None:
    problem = load_problem(ROOT / "problems" / f"{name}.yaml")
    assert problem.is_singular and problem.wanted == "largest-singular"
    ref = reference_eigenvalues(problem)
    assert ref is not None and len(ref) == problem.modes
    assert np.all(np.diff(ref) < 0)  # largest first


def test_reference_values_in_decreasing_order() -> None:
    volterra = reference_eigenvalues(load_problem(ROOT / "problems" / "volterra.yaml"))
    assert volterra is not None
    expected = [2 / ((2 * k - 1) * math.pi) for k in range(1, 7)]
    np.testing.assert_allclose(volterra, expected, rtol=1e-14)
    cdk = reference_eigenvalues(load_problem(ROOT / "problems" / "gaussian-cdk.yaml"))
    np.testing.assert_allclose(cdk, [0.5**n for n in range(5)], rtol=1e-14)


@pytest.mark.parametrize(
    ("edit", "key", "message"),
    [
        (("operator:\n", "operator:\n  potential: x**2\n"), "operator.potential", "no kinetic"),
        (("  input_coordinates: [y]\n", ""), "operator", "input_coordinates"),
        (("input_coordinates: [y]", "input_coordinates: [x]"), "input_coordinates", "already"),
        (("domain: {box: {x: [0, 1]}}", "domain: whole-space"), "domain", "needs a measure"),
        (("{box: {y: [-1, 1]}}", "{box: {z: [-1, 1]}}"), "input_domain.box", "unknown coord"),
        (("{box: {y: [-1, 1]}}", "{gaussian: {scale: -1}}"), "input_domain.gaussian", ""),
        (("modes: 2\n", "modes: 2\nwant: lowest\n"), "want", "largest-singular"),
        (("singular_value:", "eigenvalue:"), "reference.eigenvalue", "singular values"),
        (('right_function: "cos(k*pi*y)"', 'right_function: "cos(k*pi*x)"'), "right_f", "'x'"),
    ],
)
def test_integral_problem_errors_name_the_key(
    tmp_path: Path, edit: tuple[str, str], key: str, message: str
) -> None:
    assert edit[0] in RANK2
    path = _write(tmp_path, RANK2.replace(edit[0], edit[1], 1))
    with pytest.raises(ProblemError) as info:
        load_problem(path)
    text = str(info.value)
    assert str(path) in text and key in text and message in text


def test_hamiltonian_refuses_integral_keys() -> None:
    text = """
name: h
coordinates: [x]
operator: {potential: "x**2", input_coordinates: [y]}
domain: {gaussian: {scale: 1}}
modes: 1
want: largest-singular
reference: {singular_values: [1]}
"""
    with pytest.raises(ProblemError) as info:
        parse_problem(text, "h.yaml")
    text = str(info.value)
    for key in ("operator.input_coordinates", "domain", "want", "reference.singular_values"):
        assert "h.yaml:" in text and key in text


# -- the estimators ------------------------------------------------------------------------


def _exact_low_rank(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    f = torch.stack([math.sqrt(2) * torch.sin(k * math.pi * x[:, 0]) for k in (1, 2)], 1)
    g = torch.stack([torch.cos(k * math.pi * y[:, 0]) for k in (1, 2)], 1)
    return f, g


def _hermite_functions(x: torch.Tensor, n: int) -> torch.Tensor:
    """Orthonormal probabilists' Hermite polynomials He_k / sqrt(k!) under N(0, 1)."""
    t = x[:, 0]
    cols = [torch.ones_like(t), t]
    for k in range(1, n - 1):
        cols.append(t * cols[k] - k * cols[k - 1])
    return torch.stack([c / math.sqrt(math.factorial(k)) for k, c in enumerate(cols[:n])], 1)


def test_moments_of_exact_singular_functions(tmp_path: Path) -> None:
    """Box measures of different masses: <f, T g> = diag(s), Grams = I (within 5 std. err.)."""
    problem = load_problem(_write(tmp_path, RANK2))
    op = build_singular(problem, derive_singular_settings(problem)).operator
    op = op.to("cpu", torch.float64)
    gen = torch.Generator().manual_seed(0)
    blocks = []
    for _ in range(20):
        x, y = op.left.sampler.sample(1000, gen), op.right.sampler.sample(1000, gen)
        f, g = op.weighted(*_exact_low_rank(x, y), x, y)
        m = op.moments(f, g, op.matrix(x, y))
        blocks.append(torch.stack([m.cross, m.gram_left, m.gram_right]))
    stack = torch.stack(blocks)
    mean, se = stack.mean(0), stack.std(0) / math.sqrt(len(blocks))
    expected = torch.stack([torch.diag(torch.tensor([1.0, 0.5])), torch.eye(2), torch.eye(2)])
    assert torch.all((mean - expected).abs() <= 5 * se + 1e-12)


def test_gaussian_measure_weights_are_unbiased_for_the_dependence_kernel() -> None:
    """The CDK under N(0, 1), points from a wider proposal: <He_m, T He_n> = rho^n delta."""
    problem = load_problem(ROOT / "problems" / "gaussian-cdk.yaml")
    op = build_singular(problem, derive_singular_settings(problem)).operator
    op = op.to("cpu", torch.float64)
    gen = torch.Generator().manual_seed(1)
    x = op.left.sampler.sample(200_000, gen)
    assert float(x.std()) > 1.3  # points come from the wider proposal ...
    w = op.left.weights(x)
    assert abs(float(w.mean()) - 1.0) < 0.01  # ... with weights of mean 1
    blocks = []
    for _ in range(30):
        x, y = op.left.sampler.sample(1000, gen), op.right.sampler.sample(1000, gen)
        f, g = op.weighted(_hermite_functions(x, 4), _hermite_functions(y, 4), x, y)
        blocks.append(op.moments(f, g, op.matrix(x, y)).cross)
    stack = torch.stack(blocks)
    mean, se = stack.mean(0), stack.std(0) / math.sqrt(len(blocks))
    expected = torch.diag(torch.tensor([0.5**n for n in range(4)], dtype=torch.float64))
    assert torch.all((mean - expected).abs() <= 5 * se + 1e-12)


class _Fixed(nn.Module):
    """A 'network' whose outputs are a fixed mixture of known functions."""

    def __init__(self, fn, mix: torch.Tensor) -> None:  # noqa: ANN001
        super().__init__()
        self.fn = fn
        self.mix = nn.Parameter(mix, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x) @ self.mix


def test_readout_unmixes_exact_spans_and_its_standard_error_is_honest(tmp_path: Path) -> None:
    problem = load_problem(_write(tmp_path, RANK2))
    compiled = build_singular(problem, derive_singular_settings(problem))
    gen = torch.Generator().manual_seed(3)
    mix_f, mix_g = torch.randn(2, 2, generator=gen), torch.randn(2, 2, generator=gen)
    pair = SingularPair(
        _Fixed(lambda x: _exact_low_rank(x, x)[0], mix_f),
        _Fixed(lambda y: _exact_low_rank(y, y)[1], mix_g),
    )
    values, errors = [], []
    for seed in range(12):
        ro = singular_readout(compiled, pair, seed, blocks=64, block_points=128)
        values.append(ro.values)
        errors.append(ro.stderr)
    v, e = torch.stack(values), torch.stack(errors)
    assert torch.all((v.mean(0) - torch.tensor([1.0, 0.5])).abs() < 4 * e.mean(0) / math.sqrt(12))
    # The claimed standard error matches the spread over independent read-outs.
    ratio = v.std(0) / e.mean(0)
    assert torch.all((ratio > 0.5) & (ratio < 2.0)), ratio


# -- end to end ----------------------------------------------------------------------------


def test_rank_two_kernel_solve_eval_export(tmp_path: Path) -> None:
    path = _write(tmp_path, RANK2)
    run = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(app, ["solve", str(path), "--out", str(run), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "singular value" in result.output
    result = runner.invoke(app, ["eval", str(run), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["kind"] == "singular"
    assert report["eigenvalues"] == sorted(report["eigenvalues"])  # version-1 key: ascending
    assert report["singular_values"] == sorted(report["singular_values"], reverse=True)
    assert report["max_relative_error"] < 0.02  # measured 2.4e-3
    assert report["left_subspace_distance"] < 0.02 and report["right_subspace_distance"] < 0.02
    # Residual intervals, ordered as the "eigenvalues" key (ascending), hold the exact values.
    assert report["reference_in_interval"] == [True, True], report["intervals"]
    for (low, high), value in zip(report["intervals"], report["eigenvalues"]):
        assert low <= value <= high and 0 < high - low < 0.1 * value
    with h5py.File(run / "results.h5") as f:
        assert f["singular_values"].shape == (2,)
        np.testing.assert_allclose(f["eigenvalues"][()], np.sort(f["singular_values"][()]))
    out = tmp_path / "e.h5"
    result = runner.invoke(app, ["export", str(run), "-o", str(out), "--grid", "17"])
    assert result.exit_code == 0, result.output
    with h5py.File(out) as f:
        assert f["eigenfunctions/values"].shape == (2, 17)
        assert f["right_functions/values"].shape == (2, 17)
        np.testing.assert_allclose(f["right_functions/y"][()], np.linspace(-1, 1, 17))
        # unit norm in L2([0, 1]) on the left: trapezoid rule on the grid
        u = f["eigenfunctions/values"][()]
        norms = np.trapezoid(u**2, f["eigenfunctions/x"][()], axis=1)
        np.testing.assert_allclose(norms, 1.0, rtol=0.05)


def test_spin_is_refused_for_an_integral_operator(tmp_path: Path) -> None:
    path = _write(tmp_path, RANK2)
    result = CliRunner().invoke(app, ["solve", str(path), "--method", "spin", "--steps", "2"])
    assert result.exit_code == 2
    assert "--method" in result.output and "neuralsvd" in result.output


def test_singular_resume_gives_the_uninterrupted_result(tmp_path: Path) -> None:
    problem = load_problem(_write(tmp_path, RANK2.replace("steps: 2000", "steps: 200")))
    full_settings = prepare(problem)
    full_settings.optimiser.checkpoint_every = 50
    full, _ = solve(problem, full_settings, tmp_path / "full", CPU)
    calls = {"n": 0}

    def stop_after_90() -> bool:
        calls["n"] += 1
        return calls["n"] > 90

    settings = prepare(problem)
    settings.optimiser.checkpoint_every = 50
    _, complete = solve(problem, settings, tmp_path / "part", CPU, stop=stop_after_90)
    assert not complete
    settings = resume_settings(tmp_path / "part", problem)
    resumed, complete = solve(problem, settings, tmp_path / "part", CPU, resume=True)
    assert complete
    assert resumed.singular is not None and full.singular is not None
    np.testing.assert_array_equal(resumed.singular.values, full.singular.values)
    np.testing.assert_array_equal(resumed.history["loss"], full.history["loss"])
    back = read_results(tmp_path / "part" / "results.h5")
    assert back.singular is not None
    np.testing.assert_array_equal(back.singular.values, full.singular.values)


# -- the quadrature reference ---------------------------------------------------------------


def test_quadrature_reference_reproduces_closed_forms() -> None:
    from nsvd_cli.runs import grid_reference

    cdk = load_problem(ROOT / "problems" / "gaussian-cdk.yaml")
    ref = grid_reference(cdk)
    np.testing.assert_allclose(ref.eigenvalues[:5], [0.5**n for n in range(5)], rtol=1e-10)
    volterra = load_problem(ROOT / "problems" / "volterra.yaml")
    ref = grid_reference(volterra, points=512)
    exact = reference_eigenvalues(volterra)
    assert exact is not None
    true = np.abs(ref.eigenvalues[:6] - exact)
    reliable = np.asarray(json.loads(ref.attrs["reliable"]))[:6]
    assert reliable.any()
    # Where the three rules are in the asymptotic regime, the claimed error holds (3x).
    assert np.all((true <= 3 * ref.error[:6]) | ~reliable), (true, ref.error[:6])
    assert np.all(true / exact < 2e-3)


def test_quadrature_reference_refuses_four_dimensions(tmp_path: Path) -> None:
    text = """
name: k4
coordinates: [a, b, c, d]
operator: {kernel: "exp(-(a - p)**2)", input_coordinates: [p, q, r, s]}
domain: {gaussian: {scale: 1}}
modes: 1
"""
    path = _write(tmp_path, text)
    result = CliRunner().invoke(app, ["reference", str(path)])
    assert result.exit_code == 2
    assert str(path) in result.output and "d <= 3" in result.output


def test_eval_against_a_quadrature_reference(tmp_path: Path) -> None:
    path = _write(tmp_path, RANK2.replace("steps: 2000", "steps: 300"))
    run, ref = tmp_path / "run", tmp_path / "ref.h5"
    cli = CliRunner()
    assert cli.invoke(app, ["solve", str(path), "--out", str(run)]).exit_code == 0
    result = cli.invoke(app, ["reference", str(path), "-o", str(ref), "--grid", "64"])
    assert result.exit_code == 0, result.output
    result = cli.invoke(app, ["eval", str(run), "--json", "--against", str(ref)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    np.testing.assert_allclose(report["reference_singular_values"], [1.0, 0.5], rtol=1e-10)
    assert report["reference_reliable"] == [True, True]
