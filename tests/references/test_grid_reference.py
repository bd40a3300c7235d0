"""`nsvd reference`: finite differences on three grids, checked against closed forms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nsvd_cli.cli import app
from nsvd_cli.files.reference import read_reference
from nsvd_cli.references.closed_form import reference_eigenvalues
from nsvd_cli.references.grid import GridProblem, second_derivative, solve
from nsvd_cli.runs import grid_reference
from nsvd_cli.spec.load import load_problem, parse_problem

ROOT = Path(__file__).resolve().parents[2]


def test_stencil_is_fourth_order_on_a_function_vanishing_at_the_walls() -> None:
    errors = []
    for n in (31, 63):
        x = np.linspace(0.0, np.pi, n + 2)[1:-1]
        d2 = second_derivative(n, x[1] - x[0])
        errors.append(np.abs(d2 @ np.sin(x) + np.sin(x)).max())
    assert errors[1] < errors[0] / 12  # 2^4 = 16 for fourth order (near the walls too)


@pytest.mark.parametrize(
    ("name", "points"), [("oscillator-1d", 512), ("oscillator-2d", 96), ("box-2d", 64)]
)
def test_reproduces_closed_forms_to_the_accuracy_it_claims(name: str, points: int) -> None:
    problem = load_problem(ROOT / "problems" / f"{name}.yaml")
    ref = grid_reference(problem, points)
    exact = reference_eigenvalues(problem)
    assert exact is not None
    k = problem.modes
    actual = np.abs(ref.eigenvalues[:k] - exact)
    # The Richardson estimate is an estimate: within a factor 3 of the true error, or the
    # true error is below 1e-9 relative (round-off of the eigensolver).
    assert np.all((actual <= 3.0 * ref.error[:k]) | (actual <= 1e-9 * np.abs(exact))), (
        actual,
        ref.error[:k],
    )
    assert np.all(ref.error[:k] <= 1e-3 * np.abs(exact)), ref.error[:k]


def test_region_domain_converges_at_first_order() -> None:
    """A disk by a staircase: slower, and the estimate says so honestly."""
    lam01 = 2.404825557695773**2 / 2  # lowest Dirichlet eigenvalue of the unit disk, kappa 1/2
    spec = GridProblem(
        kinetic=0.5,
        potential=lambda x: np.zeros(len(x)),
        lo=(-1.0, -1.0),
        hi=(1.0, 1.0),
        inside=lambda x: 1.0 - (x**2).sum(1),
    )
    result = solve(spec, 1, 96)
    assert abs(result.eigenvalues[0] - lam01) <= 3.0 * result.error[0]
    assert result.error[0] < 0.05 * lam01


def test_refuses_more_than_three_dimensions() -> None:
    result = CliRunner().invoke(
        app, ["reference", str(ROOT / "problems" / "rotated-oscillator-4d.yaml")]
    )
    assert result.exit_code == 2
    assert "d <= 3" in result.output and "rotated-oscillator-4d.yaml" in result.output


def test_eval_against_a_grid_reference(tmp_path: Path) -> None:
    text = """
name: small-oscillator
coordinates: [x]
operator: {potential: "x**2/2"}
modes: 2
solver: {steps: 400, batch_size: 256, eval_samples: 4096, hidden: 16}
"""
    path = tmp_path / "p.yaml"
    path.write_text(text)
    runner = CliRunner()
    assert runner.invoke(app, ["solve", str(path), "--out", str(tmp_path / "r")]).exit_code == 0
    # No closed form: eval says how to get a reference.
    result = runner.invoke(app, ["eval", str(tmp_path / "r")])
    assert result.exit_code == 1 and "nsvd reference" in result.output
    result = runner.invoke(
        app, ["reference", str(path), "--grid", "256", "-o", str(tmp_path / "g.h5")]
    )
    assert result.exit_code == 0, result.output
    ref = read_reference(tmp_path / "g.h5")
    np.testing.assert_allclose(ref.eigenvalues[:2], [0.5, 1.5], rtol=1e-5)
    result = runner.invoke(
        app, ["eval", str(tmp_path / "r"), "--against", str(tmp_path / "g.h5"), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["reference"] == pytest.approx(list(ref.eigenvalues[:2]))
    learned = np.asarray(report["eigenvalues"])
    np.testing.assert_allclose(
        report["relative_errors"], np.abs(learned - ref.eigenvalues[:2]) / ref.eigenvalues[:2]
    )
    assert max(report["reference_error"]) < 1e-5
    # A reference of another problem is refused (exit 2), not compared with a warning.
    other = tmp_path / "other.yaml"
    other.write_text(text.replace("name: ", "name: other-", 1))
    written = runner.invoke(app, ["reference", str(other), "-o", str(tmp_path / "o.h5")])
    assert written.exit_code == 0, written.output
    result = runner.invoke(app, ["eval", str(tmp_path / "r"), "--against", tmp_path / "o.h5"])
    assert result.exit_code == 2 and "computed for problem 'other-" in result.stderr


def test_coulomb_cusp_is_flagged_not_given_a_confident_error_bar(tmp_path: Path) -> None:
    """2D hydrogen: grids converge as ~h^0.7 at the cusp; the ground state is flagged."""
    result = CliRunner().invoke(
        app,
        [
            "reference",
            str(ROOT / "problems" / "hydrogen-2d.yaml"),
            "--grid",
            "64",
            "-o",
            str(tmp_path / "h.h5"),
        ],
    )
    assert result.exit_code == 0, result.output
    ref = read_reference(tmp_path / "h.h5")
    reliable = json.loads(ref.attrs["reliable"])
    assert not reliable[0]
    assert "unreliable" in result.output


def test_a_reference_is_the_same_to_the_last_bit_on_every_run() -> None:
    """ARPACK starts from a seeded vector: two references of one problem are identical (its
    own random start made them differ by ~1e-13 from run to run)."""
    problem = parse_problem(
        "name: det\ncoordinates: [x]\noperator: {potential: 'x**2/2 + x**4/10'}\nmodes: 3\n"
    )
    first = grid_reference(problem, 256)
    second = grid_reference(problem, 256)
    assert np.array_equal(first.eigenvalues, second.eigenvalues)
