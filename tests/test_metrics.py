"""Subspace distances: per level and over the whole span (the paper's "avg" and "all")."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nsvd_cli.metrics import subspace_distance


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
