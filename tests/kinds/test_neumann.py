"""Neumann walls (du/dn = 0): the energy form's natural condition, its own kind."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import Result

from nsvd_cli.kinds import kind_of
from nsvd_cli.kinds.neumann import NEUMANN, wall_term_ritz
from nsvd_cli.kinds.weak_readout import weak_ritz
from nsvd_cli.numerics.sampling import UniformBox, box_surface
from nsvd_cli.spec import parse_problem

KAPPA = 0.5
NEUMANN_1D = """
name: neumann-1d
coordinates: [x]
operator: {kinetic: 1/2, potential: 0}
domain: {box: {x: [0, 1]}, boundary: neumann}
modes: 3
solver: {steps: 3000, hidden: 32, batch_size: 512}
reference:
  eigenvalue: "pi**2*n**2/2"
  quantum_numbers: {n: [0, 10]}
  eigenfunction: "cos(n*pi*x)"
"""


def test_weak_ritz_recovers_a_rotated_cosine_basis() -> None:
    """cos(n pi x) on [0, 1] mixed by a random matrix: Rayleigh-Ritz on the energy form
    gives kappa (n pi)^2 within its standard errors."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(200_000, 1, generator=gen, dtype=torch.float64)
    n = torch.arange(3, dtype=torch.float64)
    values = torch.cos(math.pi * n * x)  # (N, 3)
    grads = (-math.pi * n * torch.sin(math.pi * n * x)).unsqueeze(1)  # (N, 1, 3)
    mix = torch.randn(3, 3, generator=gen, dtype=torch.float64)
    zero = torch.zeros(x.shape[0], dtype=torch.float64)
    r, _ = weak_ritz(values @ mix, grads @ mix, zero, KAPPA)
    exact = KAPPA * (math.pi * n) ** 2
    assert torch.all((r.eigenvalues - exact).abs() <= 5 * r.stderr + 1e-9), r
    assert r.eigenvalues[0].abs() < 1e-9  # the constant has no energy at all


def test_the_wall_term_read_out_is_nearly_noiseless_at_eigenfunctions() -> None:
    """Interior strong form plus the wall term: at Neumann eigenfunctions (mixed by a random
    matrix) its per-point terms vanish, so its standard errors are far below the energy
    form's on the same points, and both hold the exact values."""
    gen = torch.Generator().manual_seed(1)
    n = torch.arange(3, dtype=torch.float64)
    x = torch.rand(4096, 1, generator=gen, dtype=torch.float64)
    mix = torch.randn(3, 3, generator=gen, dtype=torch.float64)
    exact = KAPPA * (math.pi * n) ** 2
    h = torch.cos(math.pi * n * x) @ mix
    hh = (exact * torch.cos(math.pi * n * x)) @ mix
    walls = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    flux = torch.zeros(2, 3, dtype=torch.float64)  # du/dn = 0 for cos(n pi x) at 0 and 1
    wall, _ = wall_term_ritz(h, hh, torch.cos(math.pi * n * walls) @ mix, flux, KAPPA * 2.0)
    grads = (-math.pi * n * torch.sin(math.pi * n * x)).unsqueeze(1) @ mix
    weak, _ = weak_ritz(h, grads, torch.zeros(x.shape[0], dtype=torch.float64), KAPPA)
    for r in (wall, weak):
        assert torch.all((r.eigenvalues - exact).abs() <= 5 * r.stderr + 1e-9), r
    assert torch.all(wall.stderr[1:] < weak.stderr[1:] / 5), (wall.stderr, weak.stderr)


def test_the_wall_term_gives_the_energy_of_a_function_that_breaks_the_condition() -> None:
    """u = x on [0, 1]: H u = 0 inside, so <u, H u> = 0, but du/dn = 1 at x = 1 where u = 1.
    The wall term makes the quotient the energy form's, kappa * 1 / <u, u> = 3 kappa."""
    x = (torch.arange(100_000, dtype=torch.float64).unsqueeze(1) + 0.5) / 100_000
    wall_u = torch.tensor([[0.0], [1.0]], dtype=torch.float64)  # u at x = 0 and x = 1
    flux = torch.tensor([[-1.0], [1.0]], dtype=torch.float64)  # outward derivatives
    r, _ = wall_term_ritz(x, torch.zeros_like(x), wall_u, flux, KAPPA * 2.0)
    assert abs(float(r.eigenvalues[0]) - 3 * KAPPA) < 1e-6


def test_box_surface_points_lie_on_faces_in_proportion_to_area() -> None:
    box = UniformBox(torch.tensor([0.0, 0.0], dtype=torch.float64),
                     torch.tensor([2.0, 1.0], dtype=torch.float64))
    x, normals, area = box_surface(box, 40_000, torch.Generator().manual_seed(0))
    assert area == 6.0
    on_x = normals[:, 0] != 0
    assert torch.all((x[on_x, 0] == 0) | (x[on_x, 0] == 2))  # the faces x = 0 and x = 2
    assert torch.all((x[~on_x, 1] == 0) | (x[~on_x, 1] == 1))
    assert abs(float(on_x.double().mean()) - 1 / 3) < 0.01  # faces of length 1 of 6 in all
    outward = torch.where(x[on_x, 0] == 2, 1.0, -1.0).to(x.dtype)
    assert torch.equal(normals[on_x, 0], outward)


def test_neumann_walls_select_their_kind_and_options() -> None:
    problem = parse_problem(NEUMANN_1D)
    assert kind_of(problem) is NEUMANN and problem.walls() == "neumann"
    assert NEUMANN.derive_settings(problem).derivatives == "weak"
    region = parse_problem(
        "name: disk\ncoordinates: [x, y]\nmodes: 2\n"
        'domain: {region: "1 - x**2 - y**2", bounds: {x: [-1, 1], y: [-1, 1]}, '
        "boundary: neumann}\n"
    )
    assert kind_of(region) is NEUMANN
    assert NEUMANN.build(region, NEUMANN.derive_settings(region)).boundary is None


def test_a_neumann_box_trains_to_its_cosine_spectrum(
    write_problem: Callable[..., Path], nsvd: Callable[..., Result], tmp_path: Path
) -> None:
    path = write_problem(NEUMANN_1D)
    run = tmp_path / "run"
    result = nsvd("solve", path, "--out", run)
    assert result.exit_code == 0, result.output
    with h5py.File(run / "results.h5") as f:
        values = np.asarray(f["eigenvalues"])
        intervals = np.asarray(f["eigenvalue_interval"])
    exact = KAPPA * (np.pi * np.arange(3)) ** 2  # Dirichlet would give 4.93, 19.7, 44.4
    assert abs(values[0]) < 0.01 * exact[2]
    assert np.all(np.abs(values[1:] - exact[1:]) < 0.08 * exact[1:]), values
    assert np.all(np.isnan(intervals))  # no residual bound yet
    # The reloaded run's functions carry no wall factor: they match cos(n pi x).
    report = nsvd("eval", run, "--json")
    assert report.exit_code == 0, report.output
    distances = json.loads(report.stdout)["subspace_distances"]
    assert max(distances) < 0.05, distances


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--derivatives", "forward-laplacian"], "--derivatives forward-laplacian"),
        (["--tol", "1e-3"], "--tol"),
    ],
)
def test_what_a_neumann_problem_cannot_honour_is_refused(
    write_problem: Callable[..., Path],
    nsvd: Callable[..., Result],
    tmp_path: Path,
    args: list[str],
    named: str,
) -> None:
    result = nsvd("solve", write_problem(NEUMANN_1D), "--out", tmp_path / "run", *args)
    assert result.exit_code == 2 and named in result.output, result.output
    assert not (tmp_path / "run").exists()


def test_the_grid_reference_of_a_neumann_box_matches_the_cosines(
    write_problem: Callable[..., Path], nsvd: Callable[..., Result], tmp_path: Path
) -> None:
    result = nsvd("reference", write_problem(NEUMANN_1D), "-o", tmp_path / "ref.h5")
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "ref.h5") as f:
        values = np.asarray(f["eigenvalues"])[:3]
    assert np.allclose(values, KAPPA * (np.pi * np.arange(3)) ** 2, rtol=1e-7, atol=1e-9)


def test_a_neumann_potential_converges_at_second_order_or_better() -> None:
    """With V != const the even extension has a kink in its third derivative at the wall:
    the observed order drops from the stencil's 4 to about 2, and the estimate says so."""
    from nsvd_cli.references import grid

    problem = grid.GridProblem(
        KAPPA, lambda x: 10 * x[:, 0] ** 2, (0.0,), (1.0,), neumann=(True,)
    )
    spectrum = grid.solve(problem, 3, 256)
    assert np.all(spectrum.order >= 1.8) and np.all(spectrum.reliable)
    finer = grid.solve(problem, 3, 1024)
    assert np.all(np.abs(spectrum.eigenvalues - finer.eigenvalues) <= 2 * spectrum.error + 1e-12)


def test_the_reference_of_a_neumann_region_is_by_finite_elements(
    write_problem: Callable[..., Path], nsvd: Callable[..., Result], tmp_path: Path
) -> None:
    """The free unit disk: 0, then kappa j'_{1,1}^2 twice (zeros of J_m', scipy's
    jnp_zeros); the staircase of the finite-difference grid has no normal and is refused."""
    from scipy.special import jnp_zeros

    disk = (
        "name: disk\ncoordinates: [x, y]\nmodes: 2\n"
        'domain: {region: "1 - x**2 - y**2", bounds: {x: [-1, 1], y: [-1, 1]}, '
        "boundary: neumann}\n"
    )
    result = nsvd("reference", write_problem(disk), "-o", tmp_path / "ref.h5", "--grid", "64")
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "ref.h5") as f:
        values = np.asarray(f["eigenvalues"])[:3]
    first = KAPPA * jnp_zeros(1, 1)[0] ** 2
    assert np.allclose(values, [0.0, first, first], rtol=1e-6, atol=1e-9), values
    result = nsvd("reference", write_problem(disk), "-o", tmp_path / "g.h5", "--method", "grid")
    assert result.exit_code == 2 and "free walls on boxes only" in result.output


HALF_FREE_1D = (
    NEUMANN_1D.replace("boundary: neumann", "boundary: {x: [dirichlet, neumann]}")
    .replace('eigenvalue: "pi**2*n**2/2"', 'eigenvalue: "pi**2*(n + 1/2)**2/2"')
    .replace('eigenfunction: "cos(n*pi*x)"', 'eigenfunction: "sin((n + 1/2)*pi*x)"')
)


def test_mixed_walls_keep_the_factor_of_the_dirichlet_faces_only() -> None:
    problem = parse_problem(
        "name: channel\ncoordinates: [x, y]\nmodes: 2\n"
        "domain: {box: {x: [0, 2], y: [0, 1]}, boundary: {x: neumann}}\n"
    )
    assert problem.walls() == "mixed" and kind_of(problem) is NEUMANN
    compiled = NEUMANN.build(problem, NEUMANN.derive_settings(problem))
    assert compiled.boundary is not None
    on = torch.tensor([[0.0, 0.5], [2.0, 0.5], [1.0, 0.0], [1.0, 1.0], [1.0, 0.5]],
                      dtype=torch.float64)
    b = compiled.boundary(on).value
    assert torch.all(b[:2] > 0.5) and torch.all(b[2:4].abs() < 1e-12) and b[4] > 0.5


def test_a_half_free_line_trains_to_its_spectrum(
    write_problem: Callable[..., Path], nsvd: Callable[..., Result], tmp_path: Path
) -> None:
    """u(0) = 0, u'(1) = 0: E = kappa ((n + 1/2) pi)^2 (1.23, 11.1, 30.8), sin((n + 1/2) pi x)."""
    run = tmp_path / "run"
    result = nsvd("solve", write_problem(HALF_FREE_1D), "--out", run)
    assert result.exit_code == 0, result.output
    with h5py.File(run / "results.h5") as f:
        values = np.asarray(f["eigenvalues"])
    exact = KAPPA * ((np.arange(3) + 0.5) * np.pi) ** 2
    assert np.all(np.abs(values - exact) < 0.08 * exact), values
    report = nsvd("eval", run, "--json")
    assert max(json.loads(report.stdout)["subspace_distances"]) < 0.05


def test_the_grid_reference_takes_one_condition_per_axis(
    write_problem: Callable[..., Path], nsvd: Callable[..., Result], tmp_path: Path
) -> None:
    channel = (
        "name: channel\ncoordinates: [x, y]\nmodes: 4\n"
        "domain: {box: {x: [0, 2], y: [0, 1]}, boundary: {x: neumann}}\n"
    )
    result = nsvd("reference", write_problem(channel), "-o", tmp_path / "ref.h5", "--grid", "64")
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "ref.h5") as f:
        values = np.asarray(f["eigenvalues"])[:4]
    exact = sorted(np.pi**2 / 2 * (a * a / 4 + b * b) for a in range(8) for b in range(1, 4))
    assert np.allclose(values, exact[:4], rtol=5e-5)  # grid 64: ~4e-6
    half = write_problem(HALF_FREE_1D)
    result = nsvd("reference", half, "-o", tmp_path / "half.h5", "--method", "grid")
    assert result.exit_code == 2 and "one condition per coordinate" in result.output
    # Finite elements take a condition per face (the default for such a box).
    result = nsvd("reference", half, "-o", tmp_path / "half.h5")
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "half.h5") as f:
        values = np.asarray(f["eigenvalues"])[:3]
    assert np.allclose(values, KAPPA * ((np.arange(3) + 0.5) * np.pi) ** 2, rtol=1e-8)


ROBIN_1D = (
    "name: robin-1d\ncoordinates: [x]\noperator: {kinetic: 1/2, potential: 0}\n"
    "parameters: {a: 2}\n"
    "domain: {box: {x: [0, 1]}, boundary: {x: [neumann, {robin: a}]}}\nmodes: 3\n"
    "solver: {steps: 4000, hidden: 32, batch_size: 512}\n"
)


def _robin_roots(alpha: float, count: int) -> np.ndarray:
    """k tan k = alpha: u = cos(k x) with u'(0) = 0 and u'(1) + alpha u(1) = 0."""
    from scipy.optimize import brentq

    return np.array([
        brentq(lambda k: k * np.tan(k) - alpha, j * np.pi + 1e-9, j * np.pi + np.pi / 2 - 1e-9)
        for j in range(count)
    ])


def test_a_robin_wall_trains_to_its_transcendental_spectrum(
    write_problem: Callable[..., Path], nsvd: Callable[..., Result], tmp_path: Path
) -> None:
    """E = kappa k^2 with k tan k = 2 (0.580, 6.64, 21.6): a Dirichlet wall would give
    1.23, 11.1, 30.8 and a Neumann one 0, 4.93, 19.7."""
    run = tmp_path / "run"
    result = nsvd("solve", write_problem(ROBIN_1D), "--out", run)
    assert result.exit_code == 0, result.output
    with h5py.File(run / "results.h5") as f:
        values = np.asarray(f["eigenvalues"])
    exact = KAPPA * _robin_roots(2.0, 3) ** 2
    assert np.all(np.abs(values - exact) < 0.05 * exact), (values, exact)
    robin = write_problem(ROBIN_1D, "r2")
    refused = nsvd("reference", robin, "-o", tmp_path / "ref.h5", "--method", "grid")
    assert refused.exit_code == 2 and "no Robin walls yet" in refused.output
    reference = nsvd("reference", robin, "-o", tmp_path / "ref.h5")
    assert reference.exit_code == 0, reference.output
    with h5py.File(tmp_path / "ref.h5") as f:
        elements = np.asarray(f["eigenvalues"])[:3]
    np.testing.assert_allclose(elements, exact, rtol=1e-8)


ROBIN_DISK = (
    "name: robin-disk\ncoordinates: [x, y]\noperator: {kinetic: 1/2, potential: 0}\n"
    'domain: {region: "1 - x**2 - y**2", bounds: {x: [-1, 1], y: [-1, 1]}, '
    "boundary: {robin: 1}}\nmodes: 3\nsolver: {steps: 3000, hidden: 32, batch_size: 512}\n"
)


def _robin_disk_levels(alpha: float, count: int) -> np.ndarray:
    """kappa z^2 over the roots of z J_m'(z) + alpha J_m(z) = 0 (u = J_m(z r) e^{i m theta}
    with du/dr + alpha u = 0 at r = 1), each m > 0 twice."""
    from scipy.optimize import brentq
    from scipy.special import jv, jvp

    levels = []
    for m in range(4):
        def f(z: float, m: int = m) -> float:
            return float(z * jvp(m, z) + alpha * jv(m, z))

        grid = np.linspace(0.01, 12.0, 4000)
        signs = np.sign([f(z) for z in grid])
        for i in np.flatnonzero(signs[:-1] != signs[1:])[:2]:
            z = brentq(f, grid[i], grid[i + 1])
            levels += [KAPPA * z * z] * (1 if m == 0 else 2)
    return np.sort(levels)[:count]


def test_a_robin_wall_on_a_disk_trains_to_its_bessel_roots(
    write_problem: Callable[..., Path], nsvd: Callable[..., Result], tmp_path: Path
) -> None:
    """The Robin term on a curved edge: the meshed edge's points in training and read-out
    (no standard error), against the closed form (0.788, 2.892 twice) and finite elements."""
    exact = _robin_disk_levels(1.0, 3)
    path = write_problem(ROBIN_DISK)
    result = nsvd("solve", path, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "run" / "results.h5") as f:
        values = np.asarray(f["eigenvalues"])
        stderr = np.asarray(f["eigenvalue_stderr"])
    assert np.all(np.abs(values - exact) < 0.02 * exact), (values, exact)
    assert not np.any(stderr)
    reference = nsvd("reference", path, "-o", tmp_path / "ref.h5", "--grid", "64")
    assert reference.exit_code == 0, reference.output
    with h5py.File(tmp_path / "ref.h5") as f:
        elements = np.asarray(f["eigenvalues"])[:3]
    np.testing.assert_allclose(elements, exact, rtol=1e-6)
