"""Files: results.h5, checkpoints and exports, always written to a temporary file first.

A crash or Ctrl-C at any moment leaves either the old complete file or the new complete
file, never a torn one: data goes to ``NAME.tmp-PID`` in the same folder, is fsynced, and
replaces ``NAME`` with one atomic ``os.replace``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

RESULTS_NAME = "results.h5"
CHECKPOINT_NAME = "checkpoint.pt"
PREVIOUS_CHECKPOINT_NAME = "checkpoint.prev.pt"


class RunFileError(Exception):
    """A run folder or HDF5 file that cannot be used, with a message naming it."""


@contextmanager
def atomic_path(path: Path, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success fsync it and rename over ``path``.

    Any OS error (disk full, read-only folder, quota) becomes a ``RunFileError`` naming
    ``path``; the file that was there before is untouched. ``durable=False`` skips the
    fsyncs (still never a torn file) for logs that a resume rewrites anyway.
    """
    tmp = path.with_name(f"{path.name}{_TMP_MARK}{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        if durable:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        if durable:
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise RunFileError(
            f"{path}: cannot write ({reason}); the file that was there before is unchanged"
        ) from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


_TMP_MARK = ".tmp-"


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete ``NAME.tmp-PID`` files left by writers that were killed (their PID is gone);
    return them. A live writer's file is left alone."""
    removed = []
    for tmp in folder.glob(f"*{_TMP_MARK}*") if folder.is_dir() else []:
        pid = tmp.name.rpartition(_TMP_MARK)[2]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed.append(tmp)
    return removed


# What one run writes into its folder (logs and figures are folders): set aside together.
METRICS_NAME = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"
PLOTS_DIR = "plots"
RUN_FILES = (
    RESULTS_NAME,
    CHECKPOINT_NAME,
    PREVIOUS_CHECKPOINT_NAME,
    METRICS_NAME,
    TENSORBOARD_DIR,
    PLOTS_DIR,
)


def set_aside_previous_run(run_dir: Path) -> Path | None:
    """Move an earlier run's results and checkpoints into ``RUN_DIR/replaced-STAMP/`` so that
    a fresh run in the same folder never destroys them; return that folder (None: nothing)."""
    found = [run_dir / name for name in RUN_FILES if (run_dir / name).exists()]
    if not found:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target, i = run_dir / f"replaced-{stamp}", 1
    while target.exists():
        target, i = run_dir / f"replaced-{stamp}-{i}", i + 1
    try:
        target.mkdir()
        for path in found:
            os.replace(path, target / path.name)
    except OSError as exc:
        raise RunFileError(f"{run_dir}: cannot set the earlier run aside ({exc})") from exc
    return target


LOCK_NAME = ".nsvd.lock"


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on RUN_DIR for one writer: a second ``nsvd solve`` on the same
    folder (a job relaunched while the first still runs) is refused instead of both writing
    the same checkpoints. The kernel drops the lock when its holder dies, even by SIGKILL."""
    path = run_dir / LOCK_NAME
    try:
        fh = open(path, "a+")  # held, and locked, for the whole block
    except OSError as exc:
        raise RunFileError(f"{path}: cannot create the lock file ({exc.strerror})") from exc
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            raise RunFileError(
                f"{run_dir}: in use by another nsvd solve (pid {holder}); wait for it or use "
                "another --out"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        fh.close()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


_MAGIC = b"NSVD-CHECKPOINT sha256="


class RunFileWarning(UserWarning):
    """A damaged file was passed over for an older good one."""


def save_checkpoint(run_dir: Path, payload: dict[str, Any]) -> Path:
    """Write CHECKPOINT_NAME (a SHA-256 header line, then torch's bytes) and keep the one it
    replaces as PREVIOUS_CHECKPOINT_NAME. A crash between the two renames leaves only the
    previous file, which ``load_checkpoint`` falls back to."""
    path = run_dir / CHECKPOINT_NAME
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(_MAGIC + hashlib.sha256(data).hexdigest().encode() + b"\n")
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())  # durable before the current one is rotated out
        if path.exists():
            os.replace(path, run_dir / PREVIOUS_CHECKPOINT_NAME)
    return path


def read_checkpoint(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    if raw.startswith(_MAGIC):
        header, _, data = raw.partition(b"\n")
        if hashlib.sha256(data).hexdigest().encode() != header[len(_MAGIC) :]:
            raise RunFileError(f"{path}: checksum mismatch (truncated or damaged file)")
    else:
        data = raw  # written before checksums
    try:
        # weights_only: tensors and plain containers only, so a checkpoint from someone
        # else cannot run code when it is loaded (full unpickling could).
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling failure means the file is unusable
        raise RunFileError(f"{path}: unreadable checkpoint ({exc})") from exc


def has_checkpoint(run_dir: Path) -> bool:
    return any((run_dir / name).exists() for name in (CHECKPOINT_NAME, PREVIOUS_CHECKPOINT_NAME))


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    """The newest good checkpoint: CHECKPOINT_NAME, or with a RunFileWarning the previous one
    when that is missing, truncated or damaged."""
    path = run_dir / CHECKPOINT_NAME
    previous = run_dir / PREVIOUS_CHECKPOINT_NAME
    if not path.is_file() and not previous.is_file():
        raise RunFileError(f"{path}: no checkpoint to resume from")
    problem = f"{path}: missing"
    if path.is_file():
        try:
            return read_checkpoint(path)
        except RunFileError as exc:
            problem = str(exc)
        except OSError as exc:
            problem = f"{path}: unreadable ({exc})"
    if not previous.is_file():
        raise RunFileError(f"{problem}; no previous checkpoint to fall back to")
    try:
        state = read_checkpoint(previous)
    except RunFileError as exc:  # name both: the user needs to know neither is usable
        raise RunFileError(f"{problem}; the previous one is no better: {exc}") from exc
    warnings.warn(
        f"{problem}; resuming from the previous one, {previous}", RunFileWarning, stacklevel=2
    )
    return state


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
class Results:
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


def write_results(path: Path, results: Results) -> None:
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("eigenvalues", data=np.asarray(results.eigenvalues, dtype=np.float64))
        f.create_dataset("eigenvalue_stderr", data=np.asarray(results.stderr, dtype=np.float64))
        f.create_dataset("problem/yaml", data=results.problem_yaml, dtype=h5py.string_dtype())
        f.create_dataset("settings", data=json.dumps(results.settings), dtype=h5py.string_dtype())
        f.create_dataset("readout/rotation", data=results.rotation)
        f.create_dataset("readout/gram", data=results.gram)
        f.create_dataset("readout/quotients", data=results.quotients)
        if results.native is not None:
            f.create_dataset("readout/native_eigenvalues", data=results.native)
        if results.singular is not None:
            sv = results.singular
            f.create_dataset("singular_values", data=np.asarray(sv.values, dtype=np.float64))
            f.create_dataset("singular_value_stderr", data=np.asarray(sv.stderr, dtype=np.float64))
            for name in ("right_rotation", "right_gram", "cross"):
                if getattr(sv, name) is not None:
                    f.create_dataset(f"readout/{name}", data=getattr(sv, name))
        for name, value in results.history.items():
            f.create_dataset(f"history/{name}", data=value)
        for name, value in results.network.items():
            f.create_dataset(f"network/{name}", data=value)
        for key, value in results.attrs.items():
            f.attrs[key] = value


def read_results(path: Path) -> Results:
    if not path.is_file():
        raise RunFileError(f"{path}: no such results file")
    try:
        with h5py.File(path, "r") as f:
            return Results(
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
            )
    except (OSError, KeyError, ValueError) as exc:
        raise RunFileError(f"{path}: not a readable nsvd results file ({exc})") from exc


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


def write_export(
    path: Path,
    eigenvalues: np.ndarray,
    coordinates: dict[str, np.ndarray],
    values: np.ndarray,
    attrs: dict[str, Any],
    groups: dict[str, tuple[dict[str, np.ndarray], np.ndarray]] | None = None,
    datasets: dict[str, np.ndarray] | None = None,
) -> None:
    """/eigenvalues and /eigenfunctions (values + one axis per coordinate); ``groups`` adds
    more function groups of the same layout (a singular problem's /right_functions)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("eigenvalues", data=np.asarray(eigenvalues, dtype=np.float64))
        for name, data in (datasets or {}).items():
            f.create_dataset(name, data=data)
        for name, (axes, vals) in {
            "eigenfunctions": (coordinates, values),
            **(groups or {}),
        }.items():
            group = f.create_group(name)
            group.create_dataset("values", data=vals, compression="gzip", shuffle=True)
            for axis_name, axis in axes.items():
                group.create_dataset(axis_name, data=axis)
            group.attrs["coordinates"] = json.dumps(list(axes))
        for key, value in attrs.items():
            f.attrs[key] = value


def network_arrays(state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().double().numpy() for k, v in state.items()}


def network_state(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.asarray(v)) for k, v in arrays.items()}


@dataclass
class GridReference:
    """A reference spectrum computed on grids (``nsvd reference``)."""

    eigenvalues: np.ndarray
    error: np.ndarray  # estimated |E_grid - E_exact| per value
    problem_yaml: str
    attrs: dict[str, Any] = field(default_factory=dict)


def write_reference(path: Path, ref: GridReference) -> None:
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("eigenvalues", data=np.asarray(ref.eigenvalues, dtype=np.float64))
        f.create_dataset("error_estimate", data=np.asarray(ref.error, dtype=np.float64))
        f.create_dataset("problem/yaml", data=ref.problem_yaml, dtype=h5py.string_dtype())
        for key, value in ref.attrs.items():
            f.attrs[key] = value


def read_reference(path: Path) -> GridReference:
    if not path.is_file():
        raise RunFileError(f"{path}: no such reference file")
    try:
        with h5py.File(path, "r") as f:
            return GridReference(
                eigenvalues=f["eigenvalues"][()],
                error=f["error_estimate"][()],
                problem_yaml=f["problem/yaml"][()].decode(),
                attrs=dict(f.attrs),
            )
    except (OSError, KeyError, ValueError) as exc:
        raise RunFileError(f"{path}: not a readable nsvd reference file ({exc})") from exc
