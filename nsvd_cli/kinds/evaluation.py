"""``nsvd eval`` as data: the :class:`Evaluation` of a run against its reference, and the
function comparisons every kind shares (subspace and angle distances per degenerate level).

Everything is kept in the operator's mode order (largest singular value first for an
integral operator); only :meth:`Evaluation.to_json` writes the version-1 keys, whose
``eigenvalues`` are ascending.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from nsvd_cli.errors import NoReference, RunFileError
from nsvd_cli.files import GridReference
from nsvd_cli.kinds.base import FunctionSide, Run
from nsvd_cli.references import metrics
from nsvd_cli.references.closed_form import (
    degenerate_levels,
    eigenfunction_callable,
    level_states,
    reference_eigenvalues,
    singular_function_callable,
)

# A closed-form function (or a learned one) on points of shape (n, d), as numpy.
NumpyFunction = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Distances:
    """Subspace distances per degenerate level ("avg" in the paper), for the whole learned
    span ("all"), and each mode's angle to its Procrustes-aligned reference state."""

    per_level: list[float]
    whole: float
    angles: list[float]

    @staticmethod
    def averaged(a: Distances, b: Distances) -> Distances:
        """Two sides' distances as one (left and right singular functions)."""
        return Distances(
            [0.5 * (x + y) for x, y in zip(a.per_level, b.per_level)],
            0.5 * (a.whole + b.whole),
            [0.5 * (x + y) for x, y in zip(a.angles, b.angles)],
        )


@dataclass(frozen=True)
class Evaluation:
    """A run compared with its reference; arrays in mode order."""

    problem: str
    kind: str  # "eigen" | "smallest-singular" | "singular" (the JSON's names)
    method: str
    values: np.ndarray
    stderr: np.ndarray
    reference: np.ndarray
    orthogonality: float
    steps: int
    train_seconds: float
    native: np.ndarray | None = None  # the method's own estimates
    normalized_gram: np.ndarray | None = None
    distances: Distances | None = None  # None: no reference functions, or a grid reference
    side_distances: dict[str, float | None] | None = None  # left / right, singular problems
    side_orthogonality: dict[str, float] | None = None
    reference_error: list[float] | None = None  # a grid reference's own estimate, relative
    reference_reliable: list[bool] | None = None
    intervals: np.ndarray | None = None  # (L, 2) residual intervals; nan rows: unavailable
    interval_methods: list[str] | None = None
    interval_reason: str | None = None  # why some mode has no interval
    # A run to a tolerance: "tol", "tol_met" and "tol_outcome" as results.h5 records them.
    tolerance: dict[str, Any] | None = None

    def reference_in_interval(self) -> list[bool | None] | None:
        """Per mode: whether the reference value lies in its interval (None: unavailable)."""
        if self.intervals is None:
            return None
        return [
            None if not (np.isfinite(lo) and np.isfinite(hi)) else bool(lo <= ref <= hi)
            for (lo, hi), ref in zip(self.intervals, self.reference)
        ]

    def _intervals_json(self, order: slice) -> dict[str, Any]:
        """Per mode in the order of the ``eigenvalues`` key (ascending: a singular kind's
        are reversed, as its values are)."""
        if self.intervals is None:
            return {
                "intervals": None,
                "reference_in_interval": None,
                "interval_methods": None,
                "interval_unavailable": None,
            }
        pairs = [
            [float(lo), float(hi)] if np.isfinite(lo) and np.isfinite(hi) else [None, None]
            for lo, hi in self.intervals
        ]
        held = self.reference_in_interval() or []
        return {
            "intervals": pairs[order],
            "reference_in_interval": held[order],
            "interval_methods": (self.interval_methods or [])[order],
            "interval_unavailable": self.interval_reason,
        }

    @property
    def relative_errors(self) -> np.ndarray:
        return metrics.relative_errors(self.values, self.reference)

    @property
    def native_relative_errors(self) -> np.ndarray | None:
        if self.native is None:
            return None
        return metrics.relative_errors(self.native, self.reference)

    @property
    def singular(self) -> bool:
        return self.kind != "eigen"

    def to_json(self) -> dict[str, Any]:
        """The ``nsvd eval --json`` object (keys of the CLI contract, version 1 and on)."""
        descending = self.kind == "singular"
        order = slice(None, None, -1) if descending else slice(None)
        rel = self.relative_errors
        out: dict[str, Any] = {
            "problem": self.problem,
            "kind": self.kind,
            "method": self.method,
            "eigenvalues": self.values[order].tolist(),
            "stderr": self.stderr[order].tolist(),
            "reference": self.reference[order].tolist(),
            "relative_errors": rel[order].tolist(),
            "max_relative_error": float(rel.max()),
            "mean_relative_error": float(rel.mean()),
            "orthogonality": self.orthogonality,
            "steps": self.steps,
            "train_seconds": self.train_seconds,
            "reference_error": self.reference_error,
            "reference_reliable": self.reference_reliable,
            **self._native_json(),
            **self._distances_json(),
            **self._intervals_json(order),
            **(self.tolerance or {}),
        }
        if self.normalized_gram is not None:
            out["normalized_gram"] = self.normalized_gram.tolist()
        if self.singular:
            out["singular_values"] = self.values.tolist()
            out["reference_singular_values"] = self.reference.tolist()
            for side, value in (self.side_orthogonality or {}).items():
                out[f"{side}_orthogonality"] = value
            for side, distance in (self.side_distances or {}).items():
                out[f"{side}_subspace_distance"] = distance
        if descending:
            out["singular_value_stderr"] = self.stderr.tolist()
            out["singular_value_relative_errors"] = rel.tolist()
        return out

    def _native_json(self) -> dict[str, Any]:
        native, errors = self.native, self.native_relative_errors
        if self.kind == "singular":
            assert native is not None and errors is not None
            return {
                "native_singular_values": native.tolist(),
                "native_relative_errors": errors.tolist(),
                "native_eigenvalues": None,
            }
        return {
            "native_eigenvalues": None if native is None else native.tolist(),
            "native_relative_errors": None if errors is None else errors.tolist(),
        }

    def _distances_json(self) -> dict[str, Any]:
        d = self.distances
        return {
            "subspace_distance": None if d is None else float(np.mean(d.per_level)),
            "subspace_distances": None if d is None else d.per_level,
            "subspace_distance_all": None if d is None else d.whole,
            "angle_distance": None if d is None else float(np.mean(d.angles)),
            "angle_distances": None if d is None else d.angles,
        }


def comparison_reference(run: Run, against: GridReference | None) -> np.ndarray:
    """The values ``nsvd eval`` compares with, in mode order: the first ``modes`` of a grid
    reference, else the problem's closed form."""
    modes = run.problem.modes
    if against is not None:
        if len(against.eigenvalues) < modes:
            raise RunFileError(
                f"the reference holds {len(against.eigenvalues)} values, the run {modes} modes"
            )
        return np.asarray(against.eigenvalues[:modes], dtype=np.float64)
    reference = reference_eigenvalues(run.problem)
    if reference is None:
        raise NoReference(
            f"problem {run.problem.name!r} has no reference to compare with; compute one with"
            " `nsvd reference PROBLEM` and pass it to `nsvd eval --against FILE`"
        )
    return reference


def against_fields(against: GridReference | None, reference: np.ndarray) -> dict[str, Any]:
    """``reference_error`` (the grid's own estimate, relative) and ``reference_reliable``."""
    if against is None:
        return {"reference_error": None, "reference_reliable": None}
    modes = len(reference)
    err = np.asarray(against.error[:modes], dtype=np.float64)
    reliable = json.loads(str(against.attrs.get("reliable", "null")))
    return {
        "reference_error": metrics.relative_errors(err + reference, reference).tolist(),
        "reference_reliable": None if reliable is None else reliable[:modes],
    }


def reference_callables(run: Run, side: str, value: float) -> list[NumpyFunction] | None:
    """The closed-form functions of the level at ``value`` on one side, or None when the
    reference has none."""
    states = level_states(run.problem, value)
    if side == "eigen":
        funcs = [eigenfunction_callable(run.problem, s) for s in states]
    else:
        funcs = [singular_function_callable(run.problem, s, side) for s in states]
    if not funcs or any(f is None for f in funcs):
        return None
    return [f for f in funcs if f is not None]


def side_distances(
    run: Run, side: FunctionSide, reference: np.ndarray, samples: int
) -> Distances | None:
    """A side's learned functions against the reference functions of each degenerate level
    (a level cut by the number of modes is compared with its whole reference span)."""
    levels = degenerate_levels(reference)
    funcs = [reference_callables(run, side.name, float(reference[idx[0]])) for idx in levels]
    if any(group is None for group in funcs):
        return None
    gen = torch.Generator().manual_seed(run.settings.seed + side.eval_seed_offset)
    x, factor = side.sample(samples, gen)
    # Sample-frame values: plain means over the points are L2 inner products.
    learned = side.functions(x).numpy() * factor[:, None]
    xs = x.numpy()
    blocks = [np.stack([f(xs) for f in group or []], axis=1) * factor[:, None] for group in funcs]
    per_level, whole, angles = metrics.level_distances(learned, levels, blocks)
    return Distances(per_level, whole, angles)


def interval_fields(run: Run) -> dict[str, Any]:
    """The run's residual intervals as ``Evaluation`` fields (none in files from before
    intervals, and for kinds without them)."""
    intervals = run.results.intervals
    if intervals is None:
        return {}
    return {
        "intervals": np.stack([intervals.low, intervals.high], axis=1),
        "interval_methods": list(intervals.methods),
        "interval_reason": intervals.reason,
    }
