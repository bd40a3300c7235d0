"""The library problems' closed forms against independent numerics: the finite-difference
grid reference of `nsvd reference`, and for the double well (no closed form) that grid
reference against a separate high-resolution eigensolve written here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.linalg import eigh_tridiagonal

from nsvd_cli.files.reference import GridReference
from nsvd_cli.references import grid
from nsvd_cli.references.closed_form import reference_eigenvalues, reference_states
from nsvd_cli.runs import grid_reference
from nsvd_cli.spec.load import Problem, load_problem

PROBLEMS = Path(__file__).resolve().parents[2] / "problems"


def reliable(ref: GridReference) -> list[bool]:
    return json.loads(ref.attrs["reliable"])


def problem(name: str) -> Problem:
    return load_problem(PROBLEMS / f"{name}.yaml")


# Whole-space problems: points per axis of the finest grid, and the absolute error allowed
# beyond the grid's own (discretisation-only) estimate for cutting R^d to a window: the
# window is 6 rms radii of the top state, and a state near a continuum threshold
# (Poschl-Teller's -1/2 decays as e^-|x|) still has ~1e-5 of its energy outside it.
WHOLE_SPACE = [
    ("poschl-teller-1d", 512, 1e-4),
    ("morse-1d", 512, 1e-5),
    ("oscillator-anisotropic-2d", 128, 1e-5),
    ("coupled-oscillators-2d", 128, 1e-5),
]


@pytest.mark.parametrize(("name", "points", "window"), WHOLE_SPACE)
def test_closed_form_matches_the_grid_reference(name: str, points: int, window: float) -> None:
    prob = problem(name)
    exact = reference_eigenvalues(prob)
    assert exact is not None
    ref = grid_reference(prob, points)
    k = prob.modes
    found, error = ref.eigenvalues[:k], ref.error[:k]
    assert all(reliable(ref)[:k])
    # The grid is accurate enough to tell a wrong closed form (a wrong frequency, a missed
    # level) from a right one: its own estimate is below 1e-3 relative.
    assert np.all(error <= 1e-3 * np.maximum(np.abs(exact), 1.0)), error
    assert np.all(np.abs(found - exact) <= 3.0 * error + window), (found, exact, error)


def test_box_3d_matches_finite_differences() -> None:
    """3-D: `nsvd reference`'s default grids (up to 40^3 points; 32^3 alone takes ~20 s on
    one core) are too slow for a unit test, so the same discretisation runs on three small
    grids (10, 14, 18 points per axis) with its Richardson estimate (~1 s)."""
    prob = problem("box-3d")
    exact = reference_eigenvalues(prob)
    assert exact is not None
    spec = grid.GridProblem(
        kinetic=prob.kinetic_value(),
        potential=lambda x: np.zeros(len(x)),
        lo=(0.0, 0.0, 0.0),
        hi=(1.0, 1.0, 2.0),
    )
    sizes = (10, 14, 18)
    values = [grid.lowest(grid.hamiltonian(spec, n)[0], prob.modes, 0.0) for n in sizes]
    ref = grid.richardson(values, sizes, (sizes[2] + 1) / (sizes[1] + 1))
    assert np.all(ref.error <= 2e-3 * exact), ref.error
    assert np.all(np.abs(ref.eigenvalues - exact) <= 3.0 * ref.error), (ref.eigenvalues, exact)
    # The degeneracies: in units of pi^2/2, 2.25, 3, 4.25, 5.25 x2, 6 x3.
    np.testing.assert_allclose(exact / (np.pi**2 / 2), [2.25, 3, 4.25, 5.25, 5.25, 6, 6, 6])


@pytest.mark.parametrize(("name", "threshold"), [("poschl-teller-1d", 0.0), ("morse-1d", 12.5)])
def test_modes_stay_within_the_bound_states(name: str, threshold: float) -> None:
    """The reference's `where` keeps exactly the bound states; the grid finds the same number
    below the continuum threshold, and the file asks for no more modes than that."""
    prob = problem(name)
    states = reference_states(prob, 1000)  # every state the reference allows
    assert all(s.eigenvalue < threshold for s in states)
    ref = grid_reference(prob, 512)
    # A truncated window lifts the continuum (and a state just below the threshold, like
    # Morse's fifth at 12.375, may be pushed slightly); the count must still agree.
    below = int(np.sum(ref.eigenvalues < threshold))
    assert below == len(states), (ref.eigenvalues, [s.eigenvalue for s in states])
    assert prob.modes <= len(states)
    # One mode more than there are bound states is refused, not silently filled.
    too_many = prob.model_copy(update={"modes": len(states) + 1})
    with pytest.raises(ValueError, match="widen the quantum number ranges"):
        reference_eigenvalues(too_many)


def _tridiagonal_levels(kinetic: float, potential: np.ndarray, h: float, k: int) -> np.ndarray:
    """The k lowest eigenvalues of -kinetic d^2/dx^2 + V by second-order differences."""
    diagonal = 2.0 * kinetic / h**2 + potential
    off = np.full(len(potential) - 1, -kinetic / h**2)
    return eigh_tridiagonal(diagonal, off, select="i", select_range=(0, k - 1), eigvals_only=True)


def test_double_well_grid_reference_matches_a_fine_tridiagonal_solve() -> None:
    """No closed form: the grid reference (fourth order, three grids, its own window) against
    second-order differences on 20000 and 40000 points of [-6, 6], extrapolated in h^2."""
    prob = problem("double-well-1d")
    assert prob.reference is None
    k = prob.modes
    h_value = prob.parameter_values()["h"]
    kinetic = prob.kinetic_value()
    levels = []
    for n in (20_000, 40_000):
        x = np.linspace(-6.0, 6.0, n + 2)[1:-1]
        levels.append(_tridiagonal_levels(kinetic, h_value * (x**2 - 1) ** 2, x[1] - x[0], k))
    ratio = (40_001 / 20_001) ** 2
    fine = levels[1] + (levels[1] - levels[0]) / (ratio - 1.0)
    ref = grid_reference(prob, 512)
    assert all(reliable(ref)[:k])
    assert np.all(ref.error[:k] <= 1e-5 * fine), ref.error[:k]
    np.testing.assert_allclose(ref.eigenvalues[:k], fine, rtol=2e-6)
    # What the file's comment promises: a tunnelling doublet below the barrier h, and the
    # next two states above it, no longer paired.
    assert fine[1] < h_value < fine[2]
    assert 0.05 < (fine[1] - fine[0]) / fine[0] < 0.3
    assert fine[3] - fine[2] > 5 * (fine[1] - fine[0])


def test_morse_wall_cap_changes_no_level() -> None:
    """morse-1d caps its wall at 100 D (see the file): on one fine grid that reaches into
    the capped region, the capped and the bare potential give the same levels."""
    prob = problem("morse-1d")
    values = prob.parameter_values()
    depth, a, x0 = values["D"], values["a"], values["x0"]

    def bare(x: np.ndarray) -> np.ndarray:
        return depth * (1.0 - np.exp(-a * (x[:, 0] - x0))) ** 2

    def capped(x: np.ndarray) -> np.ndarray:
        return np.minimum(bare(x), 100.0 * depth)

    assert "100*D" in prob.operator.potential
    levels = []
    for potential in (bare, capped):
        spec = grid.GridProblem(prob.kinetic_value(), potential, (-4.0,), (12.0,))
        levels.append(grid.lowest(grid.hamiltonian(spec, 4000)[0], prob.modes, 0.0))
    np.testing.assert_allclose(levels[1], levels[0], rtol=1e-12)
    # The window reaches into the capped part of the wall.
    assert bare(np.array([[-4.0]]))[0] > 100.0 * depth


# Problems only finite elements take (diffusion fields and matrices, weights, Robin and
# reflecting walls, a free curved edge), with the finest mesh's elements across the longest
# side (the 1-D defaults; half the 2-D default, which takes ~4 s).
FINITE_ELEMENTS = [
    ("legendre-1d", 256),
    ("robin-interval-1d", 256),
    ("sturm-liouville-1d", 256),
    ("weighted-string-1d", 256),
    ("anisotropic-diffusion-2d", 64),
    ("langevin-ou-2d", 128),
    ("neumann-disk-2d", 64),
    ("layered-rod-1d", 256),  # a jump in the diffusion: a node on it
    ("neumann-cavity-3d", 16),
]


@pytest.mark.parametrize(("name", "cells"), FINITE_ELEMENTS)
def test_closed_form_matches_the_finite_element_reference(name: str, cells: int) -> None:
    """The closed forms (Legendre's n(n+1), a Robin root, Bessel derivative zeros, ...) and
    an independent discretisation agree to 1e-4 relative, within the mesh's own estimate."""
    prob = problem(name)
    exact = reference_eigenvalues(prob)
    assert exact is not None
    ref = grid_reference(prob, cells, extra=0, method="fem")
    scale = np.where(exact != 0, np.abs(exact), np.abs(exact).max())
    true = np.abs(ref.eigenvalues[: prob.modes] - exact)
    assert np.all(true <= 1e-4 * scale), true / scale
    assert np.all(true <= 3.0 * ref.error[: prob.modes] + 1e-9 * scale), (true, ref.error)
