"""results.h5: the only code that knows its layout (names, order, dtypes)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from nsvd_cli.errors import RunFileError
from nsvd_cli.files.atomic import atomic_path


@dataclass
class SingularArrays:
    """The read-out of a singular problem in mode order: largest first for an integral
    operator, smallest first for ``want: smallest-singular``.

    In the file: /singular_values, /singular_value_stderr, /readout/right_rotation,
    /readout/right_gram, /readout/cross. The left side uses the eigenproblem's names
    (/readout/rotation, /readout/gram), and /eigenvalues holds the singular values ascending
    so that readers of the version-1 layout still find a sorted spectrum.
    """

    values: np.ndarray
    stderr: np.ndarray
    # Two-network problems (integral operators) only; a differential operator's left
    # functions are A v / s of its one network's right functions.
    right_rotation: np.ndarray | None = None
    right_gram: np.ndarray | None = None
    cross: np.ndarray | None = None


@dataclass
class IntervalArrays:
    """Residual error intervals of an eigen run, in mode order (``objectives.intervals``).

    In the file: /eigenvalue_interval (modes x 2: low, high; nan where unavailable) and
    /readout/residual, /readout/residual_stderr, /readout/residual_max_share,
    /readout/interval_level, /readout/interval_method, with the root attribute
    ``interval_confidence``.
    """

    low: np.ndarray
    high: np.ndarray
    residual: np.ndarray
    residual_stderr: np.ndarray
    max_share: np.ndarray
    level: np.ndarray
    methods: list[str]
    confidence: float
    reason: str | None = None  # why some mode has no interval

    def relative_half_width(self) -> np.ndarray:
        """Half of each interval over its centre's magnitude (nan where unavailable). An
        interval that holds 0 has no relative size of its own (a Langevin generator's rate
        0, a Neumann constant state): it is measured against the largest |centre|, the
        spectrum's scale, as ``references.metrics.relative_errors`` measures a level at 0."""
        centre = np.abs(0.5 * (self.low + self.high))
        finite = centre[np.isfinite(centre)]
        scale = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        holds_zero = (self.low <= 0) & (self.high >= 0)
        denominator = np.where(holds_zero, scale, np.maximum(centre, 1e-300))
        return 0.5 * (self.high - self.low) / denominator

    def reversed(self) -> IntervalArrays:
        return IntervalArrays(
            self.low[::-1].copy(), self.high[::-1].copy(), self.residual[::-1].copy(),
            self.residual_stderr[::-1].copy(), self.max_share[::-1].copy(),
            self.level[::-1].copy(), self.methods[::-1], self.confidence, self.reason,
        )  # fmt: skip


_INTERVAL_ARRAYS = ("residual", "residual_stderr", "max_share")


def _write_intervals(f: h5py.File, intervals: IntervalArrays) -> None:
    pairs = np.stack([intervals.low, intervals.high], axis=1).astype(np.float64)
    f.create_dataset("eigenvalue_interval", data=pairs)
    for name in _INTERVAL_ARRAYS:
        stored = "residual_max_share" if name == "max_share" else name
        f.create_dataset(f"readout/{stored}", data=np.asarray(getattr(intervals, name)))
    f.create_dataset("readout/interval_level", data=np.asarray(intervals.level, dtype=np.int64))
    f.create_dataset(
        "readout/interval_method", data=list(intervals.methods), dtype=h5py.string_dtype()
    )
    f.attrs["interval_confidence"] = intervals.confidence
    if intervals.reason is not None:
        f.attrs["interval_unavailable"] = intervals.reason


def _read_intervals(f: h5py.File) -> IntervalArrays | None:
    if "eigenvalue_interval" not in f:  # older files, and kinds without intervals
        return None
    pairs = f["eigenvalue_interval"][()]
    return IntervalArrays(
        low=pairs[:, 0],
        high=pairs[:, 1],
        residual=f["readout/residual"][()],
        residual_stderr=f["readout/residual_stderr"][()],
        max_share=f["readout/residual_max_share"][()],
        level=f["readout/interval_level"][()],
        methods=[m.decode() if isinstance(m, bytes) else str(m)
                 for m in f["readout/interval_method"][()]],
        confidence=float(f.attrs.get("interval_confidence", 0.95)),
        reason=str(f.attrs["interval_unavailable"]) if "interval_unavailable" in f.attrs else None,
    )  # fmt: skip


@dataclass
class Results:
    """A run's read-out, every per-mode array in the operator's mode order.

    ``descending`` marks a spectrum whose mode order is largest first (the singular values
    of an integral operator). The version-1 layout keeps /eigenvalues ascending, so the
    writer reverses /eigenvalues, /eigenvalue_stderr, the columns of /readout/rotation,
    /readout/quotients and /readout/native_eigenvalues for such a run, and the reader
    reverses them back: nothing else knows the file's order.
    """

    eigenvalues: np.ndarray
    stderr: np.ndarray
    problem_yaml: str
    settings: dict[str, Any]
    network: dict[str, np.ndarray]
    rotation: np.ndarray
    gram: np.ndarray
    quotients: np.ndarray
    history: dict[str, np.ndarray]
    attrs: dict[str, Any] = field(default_factory=dict)
    # The training method's own eigenvalue estimate per learned function (older files: None).
    native: np.ndarray | None = None
    singular: SingularArrays | None = None
    intervals: IntervalArrays | None = None
    descending: bool = False

    @property
    def wanted_gram(self) -> np.ndarray:
        """The Gram matrix of the learned functions of the reported modes: /readout/gram
        also holds buffer functions trained above them (``buffer_modes``), which only give
        the highest mode its gap and are not reported."""
        modes = len(self.eigenvalues)
        return np.asarray(self.gram)[:modes, :modes]


# A root attribute of files whose mode order is largest first; older files say so with
# kind = "singular" (integral operators, the only descending kind).
MODE_ORDER = "mode_order"


def _in_file_order(
    results: Results,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """eigenvalues, stderr, rotation, quotients, native as the version-1 layout stores them
    (reversing is its own inverse: the reader uses it too)."""
    values, stderr = np.asarray(results.eigenvalues), np.asarray(results.stderr)
    rotation, quotients = np.asarray(results.rotation), np.asarray(results.quotients)
    native = None if results.native is None else np.asarray(results.native)
    if not results.descending:
        return values, stderr, rotation, quotients, native
    return (
        values[::-1].copy(),
        stderr[::-1].copy(),
        rotation[:, ::-1].copy(),
        quotients[::-1].copy(),
        None if native is None else native[::-1].copy(),
    )


def write_results(path: Path, results: Results) -> None:
    values, stderr, rotation, quotients, native = _in_file_order(results)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("eigenvalues", data=np.asarray(values, dtype=np.float64))
        f.create_dataset("eigenvalue_stderr", data=np.asarray(stderr, dtype=np.float64))
        f.create_dataset("problem/yaml", data=results.problem_yaml, dtype=h5py.string_dtype())
        f.create_dataset("settings", data=json.dumps(results.settings), dtype=h5py.string_dtype())
        f.create_dataset("readout/rotation", data=rotation)
        f.create_dataset("readout/gram", data=results.gram)
        f.create_dataset("readout/quotients", data=quotients)
        if native is not None:
            f.create_dataset("readout/native_eigenvalues", data=native)
        if results.singular is not None:
            sv = results.singular
            f.create_dataset("singular_values", data=np.asarray(sv.values, dtype=np.float64))
            f.create_dataset("singular_value_stderr", data=np.asarray(sv.stderr, dtype=np.float64))
            for name in ("right_rotation", "right_gram", "cross"):
                if getattr(sv, name) is not None:
                    f.create_dataset(f"readout/{name}", data=getattr(sv, name))
        if results.intervals is not None:
            iv = results.intervals
            _write_intervals(f, iv.reversed() if results.descending else iv)
        for name, value in results.history.items():
            f.create_dataset(f"history/{name}", data=value)
        for name, value in results.network.items():
            f.create_dataset(f"network/{name}", data=value)
        for key, value in results.attrs.items():
            f.attrs[key] = value
        f.attrs[MODE_ORDER] = "descending" if results.descending else "ascending"


def read_results(path: Path) -> Results:
    if not path.is_file():
        raise RunFileError(f"{path}: no such results file")
    try:
        with h5py.File(path, "r") as f:
            stored = Results(
                eigenvalues=f["eigenvalues"][()],
                stderr=f["eigenvalue_stderr"][()],
                problem_yaml=f["problem/yaml"][()].decode(),
                settings=json.loads(f["settings"][()].decode()),
                network={k: f["network"][k][()] for k in f["network"]},
                rotation=f["readout/rotation"][()],
                gram=f["readout/gram"][()],
                quotients=f["readout/quotients"][()],
                history={k: f["history"][k][()] for k in f["history"]},
                attrs=dict(f.attrs),
                native=(
                    f["readout/native_eigenvalues"][()]
                    if "native_eigenvalues" in f["readout"]
                    else None
                ),
                singular=_read_singular(f),
                intervals=_read_intervals(f),
            )
    except (OSError, KeyError, ValueError) as exc:
        raise RunFileError(f"{path}: not a readable nsvd results file ({exc})") from exc
    for held in ("interval_confidence", "interval_unavailable"):  # in stored.intervals
        stored.attrs.pop(held, None)
    order = stored.attrs.pop(MODE_ORDER, None)
    stored.descending = order == "descending" or (
        order is None and stored.attrs.get("kind") == "singular"
    )
    values, stderr, rotation, quotients, native = _in_file_order(stored)
    stored.eigenvalues, stored.stderr, stored.rotation = values, stderr, rotation
    stored.quotients, stored.native = quotients, native
    if stored.descending and stored.intervals is not None:
        stored.intervals = stored.intervals.reversed()
    return stored


def _read_singular(f: h5py.File) -> SingularArrays | None:
    if "singular_values" not in f:
        return None
    return SingularArrays(
        values=f["singular_values"][()],
        stderr=f["singular_value_stderr"][()],
        **{
            k: f["readout"][k][()]
            for k in ("right_rotation", "right_gram", "cross")
            if k in f["readout"]
        },
    )


def network_arrays(state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().double().numpy() for k, v in state.items()}


def network_state(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.asarray(v)) for k, v in arrays.items()}
