"""Deterministic read-out points for a 1-D box: Gauss-Legendre nodes and weights.

A read-out is Rayleigh-Ritz from plain means over its points. Scaling each point's values
by ``sqrt(n w_i)`` (``w`` summing to 1) turns those means into the quadrature sums
sum_i w_i f(x_i) = integral f / length, the frame trick of a weight (``media.py``). With
``NODES`` nodes the rule integrates polynomials of degree 2 NODES - 1 exactly; the smooth
networks here and their products are integrated to rounding, so the Ritz values, residuals
and intervals carry no Monte-Carlo error. The surface (the two ends) is exact in
``sampling.box_surface``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from scipy.special import roots_legendre

NODES = 4096  # well past the 40 or so oscillations a 1-D problem's modes have


@lru_cache(maxsize=4)
def _unit_rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = roots_legendre(n)
    return nodes, weights / weights.sum()


def gauss_legendre(
    lo: float, hi: float, n: int = NODES, dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes (n, 1) in [lo, hi] and weights (n,) summing to 1."""
    nodes, weights = _unit_rule(n)
    x = 0.5 * (lo + hi) + 0.5 * (hi - lo) * nodes
    nodes_t = torch.as_tensor(x, dtype=dtype, device=device).unsqueeze(-1)
    return nodes_t, torch.as_tensor(weights, dtype=dtype, device=device)

