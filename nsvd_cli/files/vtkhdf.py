"""Exported functions as a VTKHDF ImageData file, which ParaView (5.11 and later) and VTK
(9.2 and later) open directly, without a sidecar description.

The layout follows VTK's VTKHDF specification for ImageData: a root group ``VTKHDF`` with
the attributes Version, Type, WholeExtent, Origin, Spacing and Direction, and one dataset
per mode under ``VTKHDF/PointData``. VTK stores x fastest, so a point array's shape is
(nz, ny, nx): the reverse of the export's (x, y, z) axis order.

Grids of one or two coordinates are padded to 3-D with TWO points along each missing axis,
carrying the same values (a 2-D function is a thin slab: view it from above, or slice it).
An image with a single point along an axis would be the natural form, but VTK 9.2's reader
(ParaView 5.11) crashes on it, and VTK 9.3 and later want such arrays without the flat
axes, which 9.2 refuses; two points read the same in all of them. For the same reason the
eigenvalues are attributes, not a FieldData group (VTK 9.2 fails the whole read on 1-D
field arrays).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from nsvd_cli.files.atomic import atomic_path

VTK_AXES = 3
# Major version 1 is the one VTK 9.2 (ParaView 5.11) reads; an ImageData needs nothing
# that later versions added, and newer readers accept it unchanged.
VERSION = (1, 0)
SUFFIX = ".vtkhdf"
PAD_POINTS = 2  # along each missing axis (see above)


@dataclass(frozen=True)
class PointArrays:
    """One set of functions on one grid: ``values[m]`` is mode m on ``axes`` (in order)."""

    prefix: str  # dataset names are PREFIX_00, PREFIX_01, ... in mode order
    axes: dict[str, np.ndarray]
    values: np.ndarray  # (modes, N_1, ..., N_d), axis order as ``axes``
    labels: dict[str, np.ndarray] = field(default_factory=dict)  # per-mode attributes

    @property
    def modes(self) -> int:
        return int(self.values.shape[0])


def check_dimension(dim: int) -> None:
    """Refuse, before any work, a grid that an image cannot hold."""
    if not 1 <= dim <= VTK_AXES:
        raise ValueError(
            f"a VTKHDF image holds grids of 1 to {VTK_AXES} coordinates, this problem has "
            f"{dim}; use --format h5"
        )


def same_grid(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    """Whether two export grids are the same points (coordinate names may differ: a
    kernel's x and y on the same interval make one image)."""
    return len(a) == len(b) and all(
        u.shape == v.shape and np.array_equal(u, v) for u, v in zip(a.values(), b.values())
    )


def image_geometry(axes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """WholeExtent, Origin, Spacing and Direction of a regular grid, padded to 3-D."""
    check_dimension(len(axes))
    extent, origin, spacing = [], [], []
    for name, axis in axes.items():
        axis = np.asarray(axis, dtype=np.float64)
        if axis.ndim != 1 or len(axis) < 2:
            raise ValueError(f"axis {name!r}: needs at least 2 points in a 1-D array")
        step = (axis[-1] - axis[0]) / (len(axis) - 1)
        # An image has only origin and spacing: a non-uniform axis would be drawn wrong.
        if not step > 0 or not np.allclose(np.diff(axis), step, rtol=1e-9, atol=0.0):
            raise ValueError(f"axis {name!r}: not uniformly spaced")
        extent += [0, len(axis) - 1]
        origin.append(axis[0])
        spacing.append(step)
    # As thin as the finest real spacing: the slab looks like the 2-D (or 1-D) function.
    thickness = min(spacing)
    for _ in range(VTK_AXES - len(axes)):
        extent += [0, PAD_POINTS - 1]
        origin.append(0.0)
        spacing.append(thickness)
    return {
        "WholeExtent": np.asarray(extent, dtype=np.int64),
        "Origin": np.asarray(origin, dtype=np.float64),
        "Spacing": np.asarray(spacing, dtype=np.float64),
        "Direction": np.eye(VTK_AXES, dtype=np.float64).ravel(),
    }


def vtk_order(mode_values: np.ndarray) -> np.ndarray:
    """One mode's values, (N_x[, N_y[, N_z]]) in export order, in VTK's order without the
    padding: (N_z, N_y, N_x), (N_y, N_x) or (N_x,)."""
    return np.ascontiguousarray(mode_values.T)


def vtk_shape(grid_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The point array shape of an image over a grid of ``grid_shape`` (export order)."""
    return (PAD_POINTS,) * (VTK_AXES - len(grid_shape)) + tuple(reversed(grid_shape))


def dataset_names(prefix: str, modes: int) -> list[str]:
    # Zero-padded so that an alphabetical list (ParaView's) is the mode order.
    width = max(2, len(str(modes - 1)))
    return [f"{prefix}_{m:0{width}d}" for m in range(modes)]


def write_vtkhdf(
    path: Path,
    arrays: Sequence[PointArrays],
    values: dict[str, np.ndarray] | None = None,
    attrs: dict[str, Any] | None = None,
) -> None:
    """Write ``arrays`` (all on one grid) as a VTKHDF ImageData file, atomically.

    ``values`` (the eigenvalues, ...) become float64 attributes of the VTKHDF group;
    ``attrs`` go on the file's root, outside it. VTK ignores both.
    """
    if not arrays:
        raise ValueError("nothing to write")
    axes = arrays[0].axes
    for other in arrays[1:]:
        if not same_grid(axes, other.axes):
            raise ValueError(f"{other.prefix!r} functions are on another grid than the first")
    geometry = image_geometry(axes)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        root = f.create_group("VTKHDF")
        root.attrs["Version"] = np.asarray(VERSION, dtype=np.int64)
        # Fixed-length ASCII: h5py writes a Python str as variable-length UTF-8, which
        # VTK 9.2's reader refuses ("Not an ASCII string character type").
        root.attrs["Type"] = np.bytes_("ImageData")
        for key, value in geometry.items():
            root.attrs[key] = value
        # Which exported coordinate is VTK's x, y, z (informational; VTK ignores it).
        root.attrs["coordinates"] = json.dumps(list(axes))
        points = root.create_group("PointData")
        for block in arrays:
            shape = vtk_shape(block.values.shape[1:])
            pads = list(np.ndindex(shape[: VTK_AXES - len(axes)]))
            for m, name in enumerate(dataset_names(block.prefix, block.modes)):
                data = points.create_dataset(
                    name, shape=shape, dtype=np.float64, compression="gzip", shuffle=True
                )
                # One mode at a time, each padding layer written from the same copy: only
                # one transposed mode is alive beside the export.
                plane = vtk_order(block.values[m])
                for pad in pads:
                    data[pad] = plane
                for label, per_mode in block.labels.items():
                    data.attrs[label] = float(per_mode[m])
        for name, value in (values or {}).items():
            root.attrs[name] = np.asarray(value, dtype=np.float64)
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
