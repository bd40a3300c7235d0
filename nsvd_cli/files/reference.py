"""Reference spectra computed on grids (``nsvd reference``): the file and its reader."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from nsvd_cli.errors import RunFileError
from nsvd_cli.files.atomic import atomic_path


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
