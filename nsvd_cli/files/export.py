"""The grid export of learned functions (``nsvd export``, HDF5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from nsvd_cli.files.atomic import atomic_path


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
