"""Subspace distances: per level and over the whole span (the paper's "avg" and "all")."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nsvd_cli.references.metrics import procrustes_angles, subspace_distance


def _basis(n: int = 4000, k: int = 3, seed: int = 0) -> np.ndarray:
    """k columns orthonormal in the sample inner product mean(u v)."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, k)))
    return q * math.sqrt(n)


def test_mixing_across_levels_costs_per_level_but_not_overall() -> None:
    e = _basis()
    # Learned functions that mix the first two reference states half and half.
    learned = np.stack([(e[:, 0] + e[:, 1]) / math.sqrt(2), (e[:, 0] - e[:, 1]) / math.sqrt(2)], 1)
    assert subspace_distance(learned[:, :1], e[:, :1]) == pytest.approx(0.5, abs=1e-12)
    assert subspace_distance(learned, e[:, :2]) == pytest.approx(0.0, abs=1e-12)
    assert subspace_distance(learned, e[:, 2:]) == pytest.approx(1.0, abs=1e-12)
    # Scale and a change of basis inside the span do not matter.
    assert subspace_distance(3.0 * learned @ np.array([[1.0, 2.0], [0.5, -1.0]]), e[:, :2]) == (
        pytest.approx(0.0, abs=1e-12)
    )


def test_angle_distance_per_mode() -> None:
    e = _basis(k=4, seed=1)
    # A single state tilted by 0.1 rad towards a state outside the level.
    tilted = math.cos(0.1) * e[:, :1] + math.sin(0.1) * e[:, 3:4]
    assert procrustes_angles(-2.0 * tilted, e[:, :1]) == pytest.approx([0.1], abs=1e-9)
    # Inside a degenerate level the learned basis may be any rotation of the reference one:
    # after alignment each function sits on its partner (angle 0) ...
    c, s = math.cos(0.7), math.sin(0.7)
    rotated = e[:, :2] @ np.array([[c, -s], [s, c]])
    assert procrustes_angles(rotated, e[:, :2]) == pytest.approx([0.0, 0.0], abs=1e-6)
    # ... while tilting one of them out of the level shows up on that mode only.
    learned = np.stack([rotated[:, 0], math.cos(0.2) * rotated[:, 1] + math.sin(0.2) * e[:, 3]], 1)
    angles = procrustes_angles(learned, e[:, :2])
    assert angles[0] == pytest.approx(0.0, abs=1e-6) and angles[1] == pytest.approx(0.2, abs=1e-6)
    # A level cut by the number of modes: one learned function, three reference states.
    assert procrustes_angles(e[:, 1:2], e[:, :3]) == pytest.approx([0.0], abs=1e-6)
