"""The shipped high-dimensional problems state what their references claim.

The rotated oscillators' files are generated: the committed files must equal the
generator's output, the potential's Hessian must have the eigenvalues w_i^2 (so the closed
form sum_i w_i (n_i + 1/2) is right) and no coordinate may separate from the others.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
import torch

from nsvd_cli.kinds.schrodinger import derive_settings
from nsvd_cli.numerics.weyl import principal_axes
from nsvd_cli.references.closed_form import (
    degenerate_levels,
    reference_eigenvalues,
    reference_states,
)
from nsvd_cli.spec.load import load_problem, parse_problem

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("make_highdim", ROOT / "problems/make_highdim.py")
assert spec is not None and spec.loader is not None
make_highdim = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_highdim)


def _hessian(path: Path) -> tuple[np.ndarray, list[float]]:
    problem = load_problem(path)
    expr = problem.potential_expr().subs(problem.parameter_values())
    symbols = problem.symbols()
    h = sp.hessian(expr, symbols)
    w = [float(problem.parameters[f"w{i}"]) for i in range(len(symbols))]
    return np.array(h.tolist(), dtype=np.float64), w


@pytest.mark.parametrize("d", make_highdim.DIMENSIONS)
def test_rotated_oscillator_file_matches_generator(d: int) -> None:
    path = ROOT / "problems" / f"rotated-oscillator-{d}d.yaml"
    assert path.read_text() == make_highdim.problem_text(d)


@pytest.mark.parametrize("d", make_highdim.DIMENSIONS)
def test_rotated_oscillator_spectrum_is_the_closed_form(d: int) -> None:
    path = ROOT / "problems" / f"rotated-oscillator-{d}d.yaml"
    hessian, w = _hessian(path)
    assert np.allclose(np.linalg.eigvalsh(hessian), sorted(v * v for v in w), atol=1e-12)
    # Non-separable: every coordinate is coupled to some other one.
    off = np.abs(hessian - np.diag(np.diag(hessian)))
    assert (off.max(axis=1) > 0.05).all()
    # The lowest d + 1 states: the ground state, then one quantum in each normal mode.
    e0 = sum(w) / 2
    expected = sorted([e0] + [e0 + v for v in w])
    assert np.allclose(reference_eigenvalues(load_problem(path)), expected, atol=1e-12)
    assert 2 * min(w) > max(w)  # no double excitation below a single one


def test_chain_file_and_normal_modes() -> None:
    d = make_highdim.CHAIN_DIMENSION
    path = ROOT / "problems" / f"coupled-chain-{d}d.yaml"
    assert path.read_text() == make_highdim.chain_text(d)
    problem = load_problem(path)
    hessian = np.array(
        sp.hessian(problem.potential_expr(), problem.symbols()).tolist(), dtype=np.float64
    )
    omega2 = sorted(2 - math.cos(j * math.pi / d) for j in range(d))
    assert np.allclose(np.linalg.eigvalsh(hessian), omega2, atol=1e-12)
    e0 = sum(math.sqrt(v) for v in omega2) / 2
    expected = sorted([e0] + [e0 + math.sqrt(v) for v in omega2])
    assert np.allclose(reference_eigenvalues(problem), expected, atol=1e-12)


@pytest.mark.parametrize("d", make_highdim.HYDROGEN_DIMENSIONS)
def test_hydrogen_levels_have_the_spherical_harmonic_degeneracy(d: int) -> None:
    path = ROOT / "problems" / f"hydrogen-{d}d.yaml"
    assert path.read_text() == make_highdim.hydrogen_text(d)
    problem = load_problem(path)
    states = reference_states(problem, 200)
    values = np.array([s.eigenvalue for s in states])
    sizes = [len(level) for level in degenerate_levels(values)]

    def harmonics(degree: int) -> int:
        lower = math.comb(degree + d - 3, d - 1) if degree >= 2 else 0
        return math.comb(degree + d - 1, d - 1) - lower

    for n_principal in (1, 2, 3):
        assert sizes[n_principal - 1] == sum(harmonics(k) for k in range(n_principal))
        level = values[sum(sizes[: n_principal - 1])]
        assert level == pytest.approx(-1 / (2 * (n_principal + (d - 3) / 2) ** 2), rel=1e-14)
    assert problem.modes == 2 + d  # the ground state and the whole N = 2 shell


def test_generator_rotation_is_orthogonal_and_exact() -> None:
    q = np.array(make_highdim.rotation(6), dtype=np.float64)
    assert np.allclose(q @ q.T, np.eye(6), atol=1e-15)
    assert math.isclose(np.linalg.det(q), 1.0, abs_tol=1e-12)


def test_principal_axes_found_for_rotated_problem_only() -> None:
    rotated = """
name: r2
coordinates: [x, y]
operator: {potential: "(x*cos(0.5) + y*sin(0.5))**2/2 + 9*(y*cos(0.5) - x*sin(0.5))**2/2"}
modes: 3
"""
    s = derive_settings(parse_problem(rotated))
    axes = np.array(s.sampler.axes)
    # Widest axis first: the soft direction (cos 0.5, sin 0.5).
    assert abs(axes[:, 0] @ np.array([math.cos(0.5), math.sin(0.5)])) > 0.99
    assert s.sampler.scales[0][0] > s.sampler.scales[0][1]
    aligned = rotated.replace("(x*cos(0.5) + y*sin(0.5))", "x").replace(
        "(y*cos(0.5) - x*sin(0.5))", "y"
    )
    assert derive_settings(parse_problem(aligned)).sampler.axes == []


def test_principal_axes_keep_coordinates_for_uncorrelated_covariance() -> None:
    cov = torch.diag(torch.tensor([4.0, 1.0, 2.0], dtype=torch.float64))
    cov[0, 1] = cov[1, 0] = 0.05  # correlation 0.025: noise, not a rotation
    assert torch.equal(principal_axes(cov), torch.eye(3, dtype=torch.float64))
    cov[0, 1] = cov[1, 0] = 1.0  # correlation 0.5
    axes = principal_axes(cov)
    assert torch.allclose(axes.T @ axes, torch.eye(3, dtype=torch.float64), atol=1e-12)
    assert not torch.equal(axes, torch.eye(3, dtype=torch.float64))
