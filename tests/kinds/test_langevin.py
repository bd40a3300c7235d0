"""Langevin generators (operator.langevin): the ground-state transform, its spectrum against
an independent discretisation of L itself, and a short training run of the OU process."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import sympy as sp
from typer.testing import Result

from nsvd_cli.files.results import IntervalArrays
from nsvd_cli.spec import parse_problem
from nsvd_cli.spec.langevin import ground_state_potential, symmetrised

X, Y = sp.symbols("x y", real=True)

DOUBLE_WELL = """\
name: langevin-double-well
coordinates: [x]
parameters: {h: 2, T: 1}
operator:
  langevin: {potential: "h*(x**2 - 1)**2", temperature: T}
modes: 3
"""

OU_1D = """\
name: ou-1d
coordinates: [x]
operator:
  langevin: {potential: "x**2", temperature: "1/2"}
modes: 3
solver: {steps: 2500, eval_samples: 65536}
reference:
  eigenvalue: "2*n"
  quantum_numbers: {n: [0, 10]}
  eigenfunction: "hermite(n, sqrt(2)*x)"
"""


@pytest.mark.parametrize(
    "u", [X**2 / 2 + 3 * Y**2, (X**2 - 1) ** 2 + X * Y, sp.log(1 + X**2) + sp.cos(Y)]
)
def test_the_transformed_operator_annihilates_the_stationary_state(u: sp.Expr) -> None:
    """(-T Laplacian + V) exp(-U/2T) = 0 for any U: the rate 0 belongs to pi = exp(-U/T)."""
    t = sp.Rational(3, 4)
    psi = sp.exp(-u / (2 * t))
    v = ground_state_potential(u, 0.75, [X, Y])
    h_psi = -t * (sp.diff(psi, X, 2) + sp.diff(psi, Y, 2)) + v * psi
    assert sp.simplify(h_psi / psi) == 0


def test_an_eigenfunction_of_l_maps_to_one_of_the_transformed_operator() -> None:
    """U = k x^2 / 2: phi = He_2(x sqrt(k/T)) has L phi = -2k phi; phi exp(-U/2T) must then
    be an eigenfunction of -T psi'' + V psi with the same eigenvalue 2k."""
    k, t = sp.Integer(3), sp.Rational(1, 2)
    u = k * X**2 / 2
    z = X * sp.sqrt(k / t)
    phi = z**2 - 1  # He_2
    assert sp.simplify(t * sp.diff(phi, X, 2) - sp.diff(u, X) * sp.diff(phi, X) + 2 * k * phi) == 0
    psi = symmetrised(phi, u, 0.5)
    v = ground_state_potential(u, 0.5, [X])
    assert sp.simplify((-t * sp.diff(psi, X, 2) + v * psi) / psi) == 2 * k


def test_a_langevin_problem_is_a_whole_space_problem_of_its_transform() -> None:
    problem = parse_problem(DOUBLE_WELL)
    assert problem.kinetic_value() == 1.0
    x = problem.symbols()[0]
    u = 2 * (x**2 - 1) ** 2
    expected = sp.diff(u, x) ** 2 / 4 - sp.diff(u, x, 2) / 2
    v = problem.potential_expr()
    bound = v.subs({s: problem.parameter_values()[s.name] for s in v.free_symbols if s != x})
    assert sp.simplify(bound - expected) == 0
    assert problem.potential_key == ("operator", "langevin", "potential")


def _generator_rates(h: float, t: float, count: int, n: int = 4000) -> np.ndarray:
    """The lowest rates of L = T d^2/dx^2 - U' d/dx from a reversible finite-volume chain on
    L itself (square-root approximation: jumps T/dx^2 exp(-(U_j - U_i) / 2T)), independent
    of the transform; it converges at second order."""
    x = np.linspace(-3.0, 3.0, n)
    dx = x[1] - x[0]
    u = h * (x**2 - 1) ** 2
    jump = t / dx**2
    forward = jump * np.exp(-(u[1:] - u[:-1]) / (2 * t))  # rate i -> i + 1
    backward = jump * np.exp(-(u[:-1] - u[1:]) / (2 * t))  # rate i + 1 -> i
    # -Q symmetrised by sqrt(pi): off-diagonals sqrt(forward * backward) = T / dx^2
    diag = np.zeros(n)
    diag[:-1] += forward
    diag[1:] += backward
    off = np.sqrt(forward * backward)
    matrix = np.diag(diag) - np.diag(off, 1) - np.diag(off, -1)
    return np.linalg.eigvalsh(matrix)[:count]


def test_the_grid_reference_matches_a_discretisation_of_the_generator(
    write_problem: Callable[..., Path], nsvd: Callable[..., Result], tmp_path: Path
) -> None:
    result = nsvd("reference", write_problem(DOUBLE_WELL), "-o", tmp_path / "ref.h5")
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "ref.h5") as f:
        values = np.asarray(f["eigenvalues"])[:3]
    rates = _generator_rates(2.0, 1.0, 3)
    assert abs(values[0]) < 1e-6  # the stationary density
    assert np.allclose(values[1:], rates[1:], rtol=2e-4), (values, rates)
    assert rates[1] < 0.5 * rates[2]  # a slow barrier-crossing rate below the rest


def test_a_langevin_region_is_refused_naming_the_domain(
    write_problem: Callable[..., Path], nsvd: Callable[..., Result], tmp_path: Path
) -> None:
    text = DOUBLE_WELL + 'domain: {region: "4 - x**2", bounds: {x: [-2, 2]}}\n'
    result = nsvd("check", write_problem(text))
    assert result.exit_code == 2 and "domain: a Langevin generator on a region" in result.output


# A constant force F = 1 (U = x) at T = 1/2 in the box [0, 2]: with reflecting walls
# (d phi/dn = 0) the rates are 0 and T (n pi / 2)^2 + F^2 / 4T for n >= 1; with absorbing
# walls (phi = 0) the same without the 0 (phi = exp(x / 2T) sin(n pi x / 2)).
FORCE_BOX = """\
name: force-box
coordinates: [x]
operator:
  langevin: {potential: "x", temperature: "1/2"}
domain: {box: {x: [0, 2]}, boundary: WALLS}
modes: 3
solver: {steps: 5000, hidden: 32, batch_size: 512}
"""


@pytest.mark.parametrize(("walls", "first"), [("neumann", 0), ("dirichlet", 1)])
def test_reflecting_and_absorbing_walls_give_their_closed_form_rates(
    write_problem: Callable[..., Path], nsvd: Callable[..., Result], tmp_path: Path,
    walls: str, first: int,
) -> None:
    """Reflecting walls are a Robin condition on the transformed functions with
    alpha = dU/dn / 2T (here -1 at x = 0 and +1 at x = 2): the stationary density at 0,
    then T (n pi / 2)^2 + 1/2. A plain Neumann condition would give 1/2 (n pi / 2)^2 + 1/2
    from n = 0, which starts at 1/2, not 0; absorbing walls lose the 0."""
    run = tmp_path / "run"
    result = nsvd("solve", write_problem(FORCE_BOX.replace("WALLS", walls)), "--out", run)
    assert result.exit_code == 0, result.output
    with h5py.File(run / "results.h5") as f:
        values = np.asarray(f["eigenvalues"])
    n = np.arange(first, first + 3)
    exact = np.where(n == 0, 0.0, 0.5 * (n * np.pi / 2) ** 2 + 0.5)
    assert np.all(np.abs(values - exact) < 0.03 * exact.max()), (values, exact)


def test_the_ou_process_trains_to_its_rates_and_hermite_functions(
    write_problem: Callable[..., Path], nsvd: Callable[..., Result], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    result = nsvd("solve", write_problem(OU_1D), "--out", run)
    assert result.exit_code == 0, result.output
    with h5py.File(run / "results.h5") as f:
        values = np.asarray(f["eigenvalues"])
    assert abs(values[0]) < 0.01 and np.allclose(values[1:], [2.0, 4.0], rtol=0.02), values
    report = nsvd("eval", run, "--json")
    assert report.exit_code == 0, report.output
    distances = json.loads(report.stdout)["subspace_distances"]
    assert max(distances) < 0.05, distances


def test_an_interval_around_the_rate_zero_is_measured_against_the_spectrum() -> None:
    """The stationary rate's interval holds 0: relative to its own centre (1e-5) it would
    read 10 and a run to --tol 1e-3 could never meet it."""
    low, high = np.array([-1e-4, 0.999, 2.49]), np.array([1.2e-4, 1.001, 2.51])
    arrays = IntervalArrays(
        low, high, np.zeros(3), np.zeros(3), np.zeros(3), np.arange(3), ["kato-temple"] * 3, 0.95
    )
    widths = arrays.relative_half_width()
    assert widths[0] == pytest.approx(1.1e-4 / 2.5)
    assert widths[1:] == pytest.approx([1e-3, 0.01 / 2.5])
