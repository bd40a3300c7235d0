"""Closed-form reference spectra: enumerate quantum numbers, evaluate, sort.

Every combination of quantum numbers in the (inclusive) ranges is one state; states failing
``where`` are dropped; the eigenvalue formula is evaluated for all states at once with numpy
(at most :data:`nsvd_cli.spec.MAX_STATES` of them), so degeneracy comes out of the
enumeration rather than being declared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nsvd_cli.expr import compile_numpy, compile_numpy_condition
from nsvd_cli.spec.load import Problem

__all__ = [
    "ReferenceState",
    "degenerate_levels",
    "eigenfunction_callable",
    "level_states",
    "reference_eigenvalues",
    "reference_states",
    "singular_function_callable",
]


@dataclass(frozen=True)
class ReferenceState:
    """One reference eigenstate; ``quantum_numbers`` is empty for an ``eigenvalues:`` list."""

    eigenvalue: float
    quantum_numbers: dict[str, int] = field(default_factory=dict)


def _all_states(problem: Problem) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Values and quantum numbers (rows) of every state the reference allows, in mode order:
    ascending eigenvalues, or descending singular values for a singular problem."""
    ref = problem.reference
    sign = -1.0 if problem.descending else 1.0
    if ref is None:
        return np.empty(0), np.empty((0, 0), dtype=np.int64), []
    if ref.values is not None:
        values = np.asarray(ref.values, dtype=np.float64)
        order = np.argsort(sign * values, kind="stable")
        return values[order], np.empty((len(values), 0), dtype=np.int64), []
    names = problem.quantum_number_names()
    assert ref.quantum_numbers is not None  # the model requires values or quantum numbers
    ranges = [np.arange(lo, hi + 1, dtype=np.int64) for lo, hi in ref.quantum_numbers.values()]
    grids = np.meshgrid(*ranges, indexing="ij")
    numbers = np.stack([g.reshape(-1) for g in grids], axis=1)
    points = numbers.astype(np.float64)
    parameters = problem.parameter_values()
    condition = problem.where_expr()
    if condition is not None:
        keep = compile_numpy_condition(condition, names, parameters)(points)
        numbers, points = numbers[keep], points[keep]
    expr = problem.value_expr()
    assert expr is not None
    values = compile_numpy(expr, names, parameters)(points)
    bad = ~np.isfinite(values)
    if bad.any():
        state = dict(zip(names, numbers[np.argmax(bad)].tolist(), strict=True))
        what = "singular value" if problem.singular_values_wanted else "eigenvalue"
        raise ValueError(f"reference {what} is not finite for state {state}")
    # np.lexsort takes the primary key last: the value, then quantum numbers in order.
    order = np.lexsort([*numbers.T[::-1], sign * values])
    return values[order], numbers[order], names


def _states(values: np.ndarray, numbers: np.ndarray, names: list[str]) -> list[ReferenceState]:
    return [
        ReferenceState(float(v), dict(zip(names, (int(k) for k in row), strict=True)))
        for v, row in zip(values, numbers, strict=True)
    ]


def reference_states(problem: Problem, count: int | None = None) -> list[ReferenceState]:
    """The lowest ``count`` (default: ``problem.modes``) reference states, ascending.

    Ties are ordered by quantum numbers, so the result is deterministic.  Returns fewer
    states when the ranges hold fewer; an empty list when there is no reference.
    """
    values, numbers, names = _all_states(problem)
    limit = problem.modes if count is None else count
    return _states(values[:limit], numbers[:limit], names)


def reference_eigenvalues(problem: Problem) -> np.ndarray | None:
    """The first ``modes`` reference values in mode order (the lowest eigenvalues, or the
    largest singular values), or None when the problem has no reference."""
    if problem.reference is None:
        return None
    values, _, _ = _all_states(problem)
    if len(values) < problem.modes:
        raise ValueError(
            f"the reference has {len(values)} states but modes is {problem.modes}; "
            "widen the quantum number ranges (or list more values)"
        )
    return values[: problem.modes].copy()


def usable_reference(problem: Problem) -> np.ndarray | None:
    """``reference_eigenvalues``, or None where there is none or it cannot serve (too few
    states: ``nsvd check`` and ``nsvd eval`` report that; a live table or a plot does not)."""
    try:
        return reference_eigenvalues(problem)
    except ValueError:
        return None


def _close(a: float, b: float, rtol: float) -> bool:
    return abs(a - b) <= rtol * max(abs(a), abs(b))


def degenerate_levels(eigenvalues: np.ndarray, rtol: float = 1e-8) -> list[list[int]]:
    """Group indices of equal eigenvalues (relative tolerance), levels in ascending order."""
    values = np.asarray(eigenvalues, dtype=np.float64).reshape(-1)
    levels: list[list[int]] = []
    for index in np.argsort(values, kind="stable").tolist():
        if levels and _close(values[levels[-1][0]], values[index], rtol):
            levels[-1].append(index)
        else:
            levels.append([index])
    return [sorted(level) for level in levels]


def level_states(problem: Problem, eigenvalue: float, rtol: float = 1e-8) -> list[ReferenceState]:
    """Every state with this eigenvalue, over the full ranges (a level may straddle ``modes``)."""
    values, numbers, names = _all_states(problem)
    mask = np.abs(values - eigenvalue) <= rtol * np.maximum(np.abs(values), abs(eigenvalue))
    return _states(values[mask], numbers[mask], names)


def eigenfunction_callable(
    problem: Problem, state: ReferenceState
) -> Callable[[np.ndarray], np.ndarray] | None:
    """The reference eigenfunction of ``state`` as a numpy function ``(B, d) -> (B,)``.

    Quantum numbers are bound as constants (special functions are evaluated by scipy, not
    expanded), so a large degree costs nothing at compile time.  Any normalisation.
    """
    expr = problem.eigenfunction_expr()
    if expr is None:
        return None
    bound: dict[str, float] = {**problem.parameter_values(), **state.quantum_numbers}
    return compile_numpy(expr, problem.coordinates, bound)


def singular_function_callable(
    problem: Problem, state: ReferenceState, side: str
) -> Callable[[np.ndarray], np.ndarray] | None:
    """The reference left (``side="left"``, over the coordinates) or right (over the input
    coordinates) singular function of ``state``, any normalisation."""
    expr = problem.left_function_expr() if side == "left" else problem.right_function_expr()
    if expr is None:
        return None
    # A differential operator maps functions of the coordinates to the same space.
    names = problem.input_coordinates if side == "right" and problem.is_singular else None
    names = names or problem.coordinates
    bound: dict[str, float] = {**problem.parameter_values(), **state.quantum_numbers}
    return compile_numpy(expr, names, bound)
