"""Reference spectra of the shipped problems, checked against their closed forms."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.special as sps

from nsvd_cli.expr import compile_numpy
from nsvd_cli.references.closed_form import (
    ReferenceState,
    degenerate_levels,
    eigenfunction_callable,
    level_states,
    reference_eigenvalues,
    reference_states,
)
from nsvd_cli.spec.load import Problem, load_problem, parse_problem
from nsvd_cli.spec.medium import diffusion_expr, weight_expr

ROOT = Path(__file__).resolve().parents[2] / "problems"
# Problems without a closed form (checked with `nsvd reference` instead) are left out.
PROBLEMS = sorted(p for p in ROOT.glob("*.yaml") if "\nreference:" in p.read_text())
WITH_EIGENFUNCTION = [p for p in PROBLEMS if "eigenfunction:" in p.read_text()]


def problem(name: str) -> Problem:
    return load_problem(ROOT / f"{name}.yaml")


def level_sizes(values: np.ndarray) -> list[int]:
    return [len(level) for level in degenerate_levels(values)]


@pytest.mark.parametrize("path", PROBLEMS, ids=[p.name for p in PROBLEMS])
def test_shipped_reference_is_in_mode_order_and_long_enough(path: Path) -> None:
    prob = load_problem(path)
    values = reference_eigenvalues(prob)
    assert values is not None and values.shape == (prob.modes,)
    # Mode order: the lowest eigenvalues ascending, the largest singular values descending.
    step = -np.diff(values) if prob.is_singular else np.diff(values)
    assert np.all(step >= 0)
    states = reference_states(prob)
    assert [s.eigenvalue for s in states] == values.tolist()


def test_hydrogen_degeneracies() -> None:
    values = reference_eigenvalues(problem("hydrogen-2d"))
    assert values is not None
    assert level_sizes(values) == [1, 3, 5, 7]
    np.testing.assert_allclose(values[[0, 1, 4, 9]], [-2.0, -2 / 9, -2 / 25, -2 / 49])
    paper = reference_eigenvalues(problem("paper-hydrogen-2d"))
    assert paper is not None and level_sizes(paper) == [1, 3, 5, 7]
    np.testing.assert_allclose(paper, values / 2)
    values3 = reference_eigenvalues(problem("hydrogen-3d"))
    assert values3 is not None
    assert level_sizes(values3) == [1, 4, 9]
    np.testing.assert_allclose(values3[[0, 1, 5]], [-0.5, -0.125, -1 / 18])


def test_other_shipped_spectra() -> None:
    osc2 = reference_eigenvalues(problem("oscillator-2d"))
    assert osc2 is not None and osc2.tolist() == [1, 2, 2, 3, 3, 3, 4, 4, 4]
    osc1 = reference_eigenvalues(problem("oscillator-1d"))
    assert osc1 is not None and osc1.tolist() == [0.5, 1.5, 2.5, 3.5]
    box = reference_eigenvalues(problem("box-2d"))
    assert box is not None
    np.testing.assert_allclose(box / (np.pi**2 / 2), [2, 5, 5, 8, 10, 10])
    disk = reference_eigenvalues(problem("disk-2d"))
    assert disk is not None
    zeros = [sps.jn_zeros(0, 2)[0], *[sps.jn_zeros(1, 1)[0]] * 2, *[sps.jn_zeros(2, 1)[0]] * 2]
    expected = sorted([z**2 / 2 for z in zeros] + [sps.jn_zeros(0, 2)[1] ** 2 / 2])
    np.testing.assert_allclose(disk, expected, rtol=1e-11)


def test_states_are_sorted_by_value_then_quantum_numbers() -> None:
    states = reference_states(problem("hydrogen-2d"), 4)
    assert states[0] == ReferenceState(-2.0, {"n": 0, "m": 0})
    assert [s.quantum_numbers for s in states[1:]] == [
        {"n": 0, "m": -1},
        {"n": 0, "m": 1},
        {"n": 1, "m": 0},
    ]
    listed = reference_states(problem("disk-2d"))
    assert all(s.quantum_numbers == {} for s in listed)


def test_level_states_cross_the_modes_cut() -> None:
    prob = problem("paper-oscillator-2d")  # 16 modes cut the sixth level (6 states) after one
    values = reference_eigenvalues(prob)
    assert values is not None and level_sizes(values)[-1] == 1
    states = level_states(prob, float(values[-1]))
    assert len(states) == 6
    assert {(s.quantum_numbers["a"], s.quantum_numbers["b"]) for s in states} == {
        (a, 5 - a) for a in range(6)
    }


def test_degenerate_levels_tolerance_and_order() -> None:
    values = np.array([3.0, 1.0, 3.0 + 1e-12, 2.0, 1.0])
    assert degenerate_levels(values) == [[1, 4], [3], [0, 2]]
    assert degenerate_levels(values, rtol=0.0) == [[1, 4], [3], [0], [2]]
    assert degenerate_levels(np.array([0.0, 0.0, 1.0])) == [[0, 1], [2]]


def test_too_few_states_and_no_reference() -> None:
    text = "name: p\ncoordinates: [x]\nmodes: 5\n"
    assert reference_eigenvalues(parse_problem(text)) is None
    assert reference_states(parse_problem(text)) == []
    short = parse_problem(text + "reference:\n  eigenvalue: n\n  quantum_numbers: {n: [0, 2]}\n")
    with pytest.raises(ValueError, match="3 states but modes is 5"):
        reference_eigenvalues(short)
    assert eigenfunction_callable(short, reference_states(short)[0]) is None


def test_where_and_parameters() -> None:
    prob = parse_problem(
        "name: p\ncoordinates: [x]\nparameters: {w: 2}\nmodes: 4\n"
        "reference:\n  eigenvalue: w*(n + l)\n  quantum_numbers: {n: [0, 3], l: [0, 3]}\n"
        "  where: 'l <= n and n - l != 1'\n"
    )
    states = reference_states(prob, None)
    # Ties (n + l = 2) are ordered by the quantum numbers in declaration order.
    assert [(s.quantum_numbers["n"], s.quantum_numbers["l"]) for s in states] == [
        (0, 0),
        (1, 1),
        (2, 0),
        (3, 0),
    ]
    assert [s.eigenvalue for s in states] == [0.0, 4.0, 4.0, 6.0]


def _sample_points(prob: Problem, rng: np.random.Generator, count: int = 40) -> np.ndarray:
    bounds = prob.domain_bounds()
    if bounds is not None:
        lo = np.array([b[0] for b in bounds])
        hi = np.array([b[1] for b in bounds])
        margin = 0.05 * (hi - lo)
        return rng.uniform(lo + margin, hi - margin, size=(count, prob.dim))
    points = rng.uniform(-3.0, 3.0, size=(4 * count, prob.dim))
    # Away from the Coulomb singularity (and the atan2 cut does not matter: cos/sin of
    # integer multiples of the angle are smooth there).
    points = points[np.linalg.norm(points, axis=1) > 0.3]
    return points[:count]


@pytest.mark.parametrize("path", WITH_EIGENFUNCTION, ids=[p.name for p in WITH_EIGENFUNCTION])
def test_eigenfunctions_solve_the_equation(path: Path) -> None:
    """-kinetic * Laplacian(psi) + V psi = E psi by 4th-order finite differences in float64;
    with a diffusion field or a weight, -div(A grad psi) + V psi = E rho psi (the flux by
    the same differences, then its divergence)."""
    prob = load_problem(path)
    potential = compile_numpy(prob.potential_expr(), prob.coordinates, prob.parameter_values())
    kinetic_term = _kinetic_term(prob)
    weight = _weight(prob)
    rng = np.random.default_rng(1)
    points = _sample_points(prob, rng)
    for state in reference_states(prob, 10):
        psi = eigenfunction_callable(prob, state)
        assert psi is not None
        value = psi(points)
        assert value.shape == (len(points),) and np.all(np.isfinite(value))
        assert np.max(np.abs(value)) > 1e-8  # not identically zero
        kinetic = kinetic_term(psi, points)
        lhs = kinetic + potential(points) * value
        rhs = state.eigenvalue * weight(points) * value
        scale = np.max(np.abs(kinetic) + np.abs(potential(points) * value) + np.abs(rhs))
        # A zero-energy state (a Neumann constant) has every term 0: compare with psi itself.
        scale = max(float(scale), float(np.max(np.abs(value))))
        residual = np.max(np.abs(lhs - rhs)) / scale
        assert residual < 1e-5, (state, residual)


STEP = 1e-3
Field = Callable[[np.ndarray], np.ndarray]


def _derivative(f: Field, points: np.ndarray, axis: int) -> np.ndarray:
    step = np.zeros(points.shape[1])
    step[axis] = STEP
    return (-f(points + 2 * step) + 8 * f(points + step) - 8 * f(points - step)
            + f(points - 2 * step)) / (12 * STEP)


def _kinetic_term(prob: Problem) -> Callable[[Field, np.ndarray], np.ndarray]:
    """psi, points -> -kinetic * Laplacian(psi), or -div(A grad psi) with a diffusion field."""
    diffusion = diffusion_expr(prob)
    dim, names, params = prob.dim, prob.coordinates, prob.parameter_values()
    if diffusion is None:
        kinetic = prob.kinetic_value()

        def laplacian_term(psi: Field, points: np.ndarray) -> np.ndarray:
            total = np.zeros(len(points))
            for i in range(dim):
                step = np.zeros(dim)
                step[i] = STEP
                total += (-psi(points + 2 * step) + 16 * psi(points + step) - 30 * psi(points)
                          + 16 * psi(points - step) - psi(points - 2 * step)) / (12 * STEP**2)
            return -kinetic * total

        return laplacian_term
    if isinstance(diffusion, list):
        entries = [[compile_numpy(a, names, params) for a in row] for row in diffusion]
    else:
        k = compile_numpy(diffusion, names, params)
        entries = [[k if i == j else None for j in range(dim)] for i in range(dim)]

    def divergence_term(psi: Field, points: np.ndarray) -> np.ndarray:
        def flux(i: int) -> Field:
            return lambda x: sum(a(x) * _derivative(psi, x, j)
                                 for j, a in enumerate(entries[i]) if a is not None)

        return -sum(_derivative(flux(i), points, i) for i in range(dim))

    return divergence_term


def _weight(prob: Problem) -> Field:
    rho = weight_expr(prob)
    if rho is None:
        return lambda x: np.ones(len(x))
    return compile_numpy(rho, prob.coordinates, prob.parameter_values())


def test_eigenfunction_binds_quantum_numbers() -> None:
    prob = problem("oscillator-1d")
    (state,) = level_states(prob, 2.5)
    psi = eigenfunction_callable(prob, state)
    assert psi is not None
    x = np.array([[0.0], [1.0]])
    np.testing.assert_allclose(psi(x), [-2.0, 2.0 * np.exp(-0.5)])
