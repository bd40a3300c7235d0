"""How many bytes a training step, a read-out sample or a grid export keeps alive at once.

Estimates, meant to refuse up front a request that cannot fit (a batch of 1e12 points)
rather than to be exact: they count the arrays each step holds at its peak.
"""

from __future__ import annotations

FLOAT = 8  # bytes: the read-out and export work in float64


def network_workspace(points: int, dim: int, hidden: int, jets: bool = True) -> int:
    """One chunk through the network without a graph (earlier layers are freed): about
    three live (points, hidden) tensors, each carrying with ``jets`` a value, d first
    derivatives and a Laplacian."""
    return points * hidden * ((dim + 2) if jets else 1) * 3 * FLOAT


def readout_bytes(samples: int, dim: int, modes: int, hidden: int) -> int:
    """The read-out's sample: points, mode values and operator values (each twice: chunks
    and their concatenation), about five (n, modes) arrays of the Rayleigh-Ritz step, and
    one 8192-point chunk of network workspace."""
    arrays = samples * (2 * dim + 4 * modes + 5 * modes) * FLOAT
    return arrays + network_workspace(min(samples, 8192), dim, hidden)


def training_step_bytes(
    batch: int, dim: int, modes: int, hidden: int, depth: int, element: int
) -> int:
    """A differential training step keeps the whole batch's graph for the backward pass: per
    hidden layer about four (batch, hidden) tensors (pre-activation, activation and the
    activation's two derivatives), each a jet of a value, d first derivatives and a
    Laplacian, and the mode values with their operator terms."""
    per_point = depth * 4 * hidden * (dim + 2) + 4 * modes * (dim + 2)
    return batch * per_point * element


def kernel_step_bytes(batch: int, dims: tuple[int, int], element: int) -> int:
    """An integral-operator step evaluates the kernel on every pair of a batch's points:
    the (batch^2, d_x + d_y) pair array and about four batch^2 arrays of the kernel's terms."""
    return batch * batch * (sum(dims) + 4) * element
