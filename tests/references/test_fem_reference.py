"""The finite-element reference against closed forms computed independently here (Bessel
zeros from scipy, separation of variables, a transcendental root by brentq), its error
estimate against its true error, its meshes, and its refusals."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import jn_zeros, jnp_zeros
from typer.testing import Result

from nsvd_cli.numerics.meshes import LevelSet, region_ladder
from nsvd_cli.references import fem
from nsvd_cli.runs import grid_reference
from nsvd_cli.spec.load import load_problem

ROOT = Path(__file__).resolve().parents[2]
KAPPA = 0.5
DISK = LevelSet(lambda x: 1.0 - (x * x).sum(1), lambda x: -2.0 * x)


def _zero(x: np.ndarray) -> np.ndarray:
    return np.zeros(len(x))


def _disk_levels(zeros: Callable[[int, int], np.ndarray], count: int) -> np.ndarray:
    """kappa z^2 over the zeros z of J_m (or J_m'), each m > 0 twice (cos and sin)."""
    values = [KAPPA * z**2 for m in range(8) for z in zeros(m, 4) for _ in range(min(m + 1, 2))]
    return np.sort(values)[:count]


def test_the_dirichlet_disk_converges_at_fourth_order_to_its_bessel_zeros() -> None:
    """Curved edge, isoparametric P2: the issue's 1e-6 on the unit disk, an observed order
    near 4 (a polygonal edge would cap it at 2), and an estimate that holds its true
    error within 1.5x."""
    problem = fem.FemProblem(KAPPA, _zero, (-1.0, -1.0), (1.0, 1.0), region=DISK)
    spectrum = fem.solve(problem, 6, 128)
    exact = _disk_levels(lambda m, n: jn_zeros(m, n), 6)
    true = np.abs(spectrum.eigenvalues - exact)
    assert np.all(true <= 1e-6 * exact), true / exact
    assert np.all(spectrum.order >= 3.5), spectrum.order
    assert np.all(true <= 1.5 * spectrum.error) and np.all(spectrum.error <= 3 * true), (
        true, spectrum.error)


def test_the_free_disk_has_the_zeros_of_the_bessel_derivatives() -> None:
    problem = fem.FemProblem(
        KAPPA, _zero, (-1.0, -1.0), (1.0, 1.0), region=DISK, region_dirichlet=False
    )
    spectrum = fem.solve(problem, 6, 64)
    # jnp_zeros(0, n) omits the zero at 0: the constant state comes first.
    exact = np.concatenate([[0.0], _disk_levels(lambda m, n: jnp_zeros(m, n), 5)])
    np.testing.assert_allclose(spectrum.eigenvalues, exact, rtol=1e-5, atol=1e-9)
    assert np.all(np.abs(spectrum.eigenvalues - exact) <= 3 * spectrum.error + 1e-9)


def test_robin_walls_with_a_diffusion_and_a_weight_match_a_transcendental_root() -> None:
    """-(k u')' = lambda rho u on [0, 1] with k = 4, rho = 4 (constants, so a closed form
    remains: u'' = -lambda u) and u'(0) = 0, u'(1) + a u(1) = 0: lambda = q^2 with
    q tan q = a. The Robin term carries kinetic * k * alpha, the mass matrix rho."""
    alpha = 1.5
    problem = fem.FemProblem(
        KAPPA, _zero, (0.0,), (1.0,),
        diffusion=lambda x: np.full(len(x), 4.0),
        weight=lambda x: np.full(len(x), 2.0),
        dirichlet_faces=((False, False),),
        alpha=lambda x, n: np.where(n[:, 0] > 0, alpha, 0.0),
    )
    spectrum = fem.solve(problem, 3, 128)
    roots = [brentq(lambda q: q * math.tan(q) - alpha, j * math.pi + 1e-9,
                    j * math.pi + math.pi / 2 - 1e-9) for j in range(3)]
    exact = KAPPA * 4.0 / 2.0 * np.asarray(roots) ** 2
    np.testing.assert_allclose(spectrum.eigenvalues, exact, rtol=1e-7)
    assert np.all(np.abs(spectrum.eigenvalues - exact) <= 3 * spectrum.error)


def test_a_matrix_diffusion_on_a_box_matches_separation_of_variables() -> None:
    """A = diag(1, 3) on [0, 1] x [0, 2], Dirichlet in x and Neumann in y:
    kappa pi^2 (a^2 + 3 (b / 2)^2), a >= 1, b >= 0; and a potential 2 adds 2."""
    problem = fem.FemProblem(
        KAPPA, lambda x: np.full(len(x), 2.0), (0.0, 0.0), (1.0, 2.0),
        diffusion=lambda x: np.tile(np.diag([1.0, 3.0]), (len(x), 1, 1)),
        dirichlet_faces=((True, True), (False, False)),
    )
    spectrum = fem.solve(problem, 5, 64)
    exact = np.sort([KAPPA * math.pi**2 * (a * a + 3 * (b / 2) ** 2) + 2.0
                     for a in range(1, 5) for b in range(5)])[:5]
    np.testing.assert_allclose(spectrum.eigenvalues, exact, rtol=1e-5)
    assert np.all(np.abs(spectrum.eigenvalues - exact) <= 3 * spectrum.error)


def test_a_brick_matches_its_closed_form() -> None:
    """Q2 bricks (3-D): the library's box-3d levels to 1e-3 on small meshes (8 elements
    across the unit sides)."""
    problem = load_problem(ROOT / "problems" / "box-3d.yaml")
    ref = grid_reference(problem, 16, extra=0, method="fem")
    exact = np.sort([math.pi**2 / 2 * (a * a + b * b + c * c / 4)
                     for a in range(1, 5) for b in range(1, 5) for c in range(1, 9)])[:8]
    assert np.all(np.abs(ref.eigenvalues - exact) <= 1e-3 * exact), ref.eigenvalues / exact
    assert np.all(np.abs(ref.eigenvalues - exact) <= 3 * ref.error)
    assert json.loads(ref.attrs["cells"]) == [4, 8, 16]


def test_a_reflecting_langevin_box_has_the_drifted_spectrum(
    write_problem: Callable[..., Path], nsvd: Callable[..., Result], tmp_path: Path
) -> None:
    """L = T u'' - F u' on [0, 1] with reflecting walls: rates 0 and T (n pi)^2 + F^2 / 4T
    (the constant force's closed form); the walls are the transformed problem's Robin
    condition, alpha = (dU/dn) / 2T, which only finite elements take."""
    force, temperature = 2.0, 0.5
    text = (
        "name: tilted\ncoordinates: [x]\nmodes: 3\n"
        f"operator: {{langevin: {{potential: '{force}*x', temperature: {temperature}}}}}\n"
        "domain: {box: {x: [0, 1]}, boundary: neumann}\n"
    )
    result = nsvd("reference", write_problem(text), "-o", tmp_path / "ref.h5", "--grid", "64")
    assert result.exit_code == 0, result.output
    from nsvd_cli.files.reference import read_reference

    ref = read_reference(tmp_path / "ref.h5")
    shift = force**2 / (4 * temperature)
    exact = [0.0] + [temperature * (n * math.pi) ** 2 + shift for n in (1, 2)]
    np.testing.assert_allclose(ref.eigenvalues[:3], exact, rtol=1e-6, atol=1e-7)
    assert np.all(np.abs(ref.eigenvalues[:3] - exact) <= 3 * ref.error[:3])
    assert ref.attrs["method"].startswith("finite elements")


def test_refusals_name_what_finite_elements_do_not_take(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="planar regions|2 dimensions only"):
        region_ladder(DISK, (-1.0, -1.0, -1.0), (1.0, 1.0, 1.0), 32)
    drift = load_problem(ROOT / "problems" / "convection-diffusion-2d.yaml")
    with pytest.raises(ValueError, match="self-adjoint"):
        grid_reference(drift, 32, method="fem")
    kernel = load_problem(ROOT / "problems" / "volterra.yaml")
    with pytest.raises(ValueError, match="quadrature"):
        grid_reference(kernel, 32, method="fem")


def test_a_narrow_well_that_only_fine_meshes_resolve_is_still_found() -> None:
    """A well of depth 200 and width 0.05 on [-10, 10]: the coarse mesh barely sees it, so
    its eigenvalues are no bound for the finer meshes'; each mesh takes its own bound from
    V at its quadrature points. Checked against second-order differences on 200000 points."""
    from scipy.linalg import eigh_tridiagonal

    def well(x: np.ndarray) -> np.ndarray:
        return -200.0 * np.exp(-((x[:, 0] / 0.05) ** 2))

    problem = fem.FemProblem(KAPPA, well, (-10.0,), (10.0,))
    spectrum = fem.solve(problem, 3, 1024)
    x = np.linspace(-10.0, 10.0, 200_002)[1:-1]
    h = x[1] - x[0]
    diagonal = 2 * KAPPA / h**2 + well(x[:, None])
    fine = eigh_tridiagonal(diagonal, np.full(len(x) - 1, -KAPPA / h**2), select="i",
                            select_range=(0, 0), eigvals_only=True)
    assert fine[0] < -10.0  # a deep bound state exists
    assert abs(spectrum.eigenvalues[0] - fine[0]) < 1e-3 * abs(fine[0]), spectrum.eigenvalues


def test_negative_robin_walls_with_a_weight_give_their_bound_states() -> None:
    """-(kappa k u')' = lambda rho u on [0, 10], du/dn - u = 0 at both ends (alpha = -1):
    a state bound to each wall, u ~ exp(-x) there, at -kappa k alpha^2 / rho = -8 (the pair
    split by about e^-10). The point under the spectrum must account for the weight."""
    problem = fem.FemProblem(
        KAPPA, _zero, (0.0,), (10.0,),
        diffusion=lambda x: np.full(len(x), 4.0),
        weight=lambda x: np.full(len(x), 0.25),
        dirichlet_faces=((False, False),),
        alpha=lambda x, n: np.full(len(x), -1.0),
    )
    spectrum = fem.solve(problem, 3, 256)
    np.testing.assert_allclose(spectrum.eigenvalues[:2], [-8.0, -8.0], rtol=1e-3)
    assert spectrum.eigenvalues[2] > 0.0
