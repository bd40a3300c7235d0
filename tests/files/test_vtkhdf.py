"""`nsvd export --format vtkhdf`: the VTKHDF ImageData layout, read back with h5py and, where
it is installed, with VTK's own reader; values equal to the h5 export's, axes not swapped."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from nsvd_cli.cli import app
from nsvd_cli.files import vtkhdf
from nsvd_cli.files.vtkhdf import PointArrays, write_vtkhdf

RUNNER = CliRunner()


def _axes(dim: int) -> dict[str, np.ndarray]:
    # A different length, origin and spacing per axis: any swap of two axes shows.
    starts = (-1.0, 0.0, 2.0)
    return {
        name: np.linspace(starts[k], starts[k] + 1.0 + k, 3 + k)
        for k, name in enumerate("xyz"[:dim])
    }


def _f(*coords: np.ndarray) -> np.ndarray:
    """x + 10 y + 100 z: every value names its point, and no two axes play the same role."""
    return sum(10.0**k * c for k, c in enumerate(coords))


def _synthetic(dim: int, modes: int = 2) -> PointArrays:
    axes = _axes(dim)
    f = _f(*np.meshgrid(*axes.values(), indexing="ij"))
    values = np.stack([f * (m + 1) for m in range(modes)])
    return PointArrays("psi", axes, values, {"eigenvalue": np.arange(modes) + 0.5})


def _check_layout(path: Path) -> dict[str, np.ndarray]:
    """The VTKHDF ImageData rules, checked on the raw file; returns the point arrays."""
    with h5py.File(path, "r") as f:
        root = f["VTKHDF"]
        attrs = root.attrs
        kind = attrs.get_id("Type").get_type()
        # VTK reads Type as a fixed-length ASCII string.
        assert isinstance(kind, h5py.h5t.TypeStringID) and not kind.is_variable_str()
        assert kind.get_cset() == h5py.h5t.CSET_ASCII
        assert attrs["Type"] == b"ImageData"
        assert attrs["Version"].dtype.kind == "i" and tuple(attrs["Version"]) == vtkhdf.VERSION
        extent = attrs["WholeExtent"]
        assert extent.dtype.kind == "i" and extent.shape == (6,)
        for key, size in (("Origin", 3), ("Spacing", 3), ("Direction", 9)):
            assert attrs[key].dtype == np.float64 and attrs[key].shape == (size,), key
        np.testing.assert_array_equal(attrs["Direction"], np.eye(3).ravel())
        assert np.all(attrs["Spacing"] > 0)
        points = {name: data[()] for name, data in root["PointData"].items()}
        # A point array's shape is the extent's point counts, z first.
        counts = tuple(int(extent[2 * i + 1] - extent[2 * i] + 1) for i in range(3))
        for name, data in points.items():
            assert data.shape == counts[::-1], name
            assert data.dtype == np.float64
        return points


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_image_layout_geometry_and_axis_order(tmp_path: Path, dim: int) -> None:
    block = _synthetic(dim)
    path = tmp_path / "f.vtkhdf"
    write_vtkhdf(path, [block], {"eigenvalues": np.array([0.5, 1.5])}, {"problem_name": "t"})
    points = _check_layout(path)
    assert sorted(points) == ["psi_00", "psi_01"]
    with h5py.File(path) as f:
        attrs = f["VTKHDF"].attrs
        origin, spacing, extent = attrs["Origin"], attrs["Spacing"], attrs["WholeExtent"]
        assert json.loads(attrs["coordinates"]) == list("xyz"[:dim])
        np.testing.assert_array_equal(attrs["eigenvalues"], [0.5, 1.5])
        assert f["VTKHDF/PointData/psi_01"].attrs["eigenvalue"] == 1.5
        assert f.attrs["problem_name"] == "t"
    # The image's points are the export grid's, axis by axis.
    for i, axis in enumerate(block.axes.values()):
        assert extent[2 * i] == 0 and extent[2 * i + 1] == len(axis) - 1
        np.testing.assert_allclose(origin[i] + spacing[i] * np.arange(len(axis)), axis)
    # Missing axes: two points with the same values (VTK 9.2 cannot read one).
    for i in range(dim, 3):
        assert extent[2 * i] == 0 and extent[2 * i + 1] == vtkhdf.PAD_POINTS - 1
    psi = points["psi_01"]
    for pad in np.ndindex(psi.shape[: 3 - dim]):
        np.testing.assert_array_equal(psi[pad], psi[(0,) * (3 - dim)])
    # Point (i, j, k) of the image, stored at [k, j, i], is f at (x_i, y_j, z_k).
    grid = psi[(0,) * (3 - dim)]
    for index in np.ndindex(*(len(a) for a in block.axes.values())):
        point = [axis[i] for axis, i in zip(block.axes.values(), index)]
        assert grid[index[::-1]] == pytest.approx(2 * _f(*point), rel=1e-12)
    assert [p.name for p in tmp_path.iterdir()] == ["f.vtkhdf"]  # no temporary left


def test_names_sort_in_mode_order() -> None:
    names = vtkhdf.dataset_names("psi", 120)
    assert names == sorted(names) and names[0] == "psi_000" and names[-1] == "psi_119"
    assert vtkhdf.dataset_names("left", 3) == ["left_00", "left_01", "left_02"]


def test_refuses_what_an_image_cannot_hold(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="1 to 3 coordinates"):
        vtkhdf.check_dimension(4)
    uneven = PointArrays("psi", {"x": np.array([0.0, 1.0, 3.0])}, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="not uniformly spaced"):
        write_vtkhdf(tmp_path / "u.vtkhdf", [uneven])
    other = PointArrays("right", {"y": np.linspace(-1, 1, 3)}, np.zeros((1, 3)))
    first = PointArrays("left", {"x": np.linspace(0, 1, 3)}, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="another grid"):
        write_vtkhdf(tmp_path / "g.vtkhdf", [first, other])
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_vtk_reader_sees_the_grid_and_values(tmp_path: Path, dim: int) -> None:
    pytest.importorskip("vtkmodules.vtkIOHDF")
    from vtkmodules.vtkIOHDF import vtkHDFReader

    block = _synthetic(dim)
    path = tmp_path / "f.vtkhdf"
    write_vtkhdf(path, [block])
    reader = vtkHDFReader()
    reader.SetFileName(str(path))
    reader.Update()
    image = reader.GetOutput()
    sizes = [len(a) for a in block.axes.values()]
    assert image.GetDimensions() == tuple(sizes + [vtkhdf.PAD_POINTS] * (3 - dim))
    array = image.GetPointData().GetArray("psi_00")
    assert array is not None and array.GetNumberOfTuples() == image.GetNumberOfPoints()
    # VTK's own point coordinates and the value stored there: f of those coordinates.
    for pid in range(image.GetNumberOfPoints()):
        x, y, z = image.GetPoint(pid)
        coords = (x, y, z)[:dim]
        assert array.GetValue(pid) == pytest.approx(_f(*coords), rel=1e-9, abs=1e-9)


# -- through the command line, from trained runs ---------------------------------------------

TINY = "solver: {steps: 4, batch_size: 64, eval_samples: 1024, hidden: 8, checkpoint_every: 4}\n"
PLANE = (
    "name: plane\ncoordinates: [x, y]\noperator: {potential: 'x + 2*y'}\n"
    "domain: {box: {x: [0, 1], y: [0, 2]}}\nmodes: 2\n"
    + TINY.replace(" eval_samples: 1024,", "")  # a box is read out by its Gauss rule
)
# Left and right functions on different intervals: two images.
KERNEL = (
    "name: kernel\ncoordinates: [x]\n"
    "operator: {kernel: 'exp(x*y)', input_coordinates: [y], input_domain: {box: {y: [-1, 1]}}}\n"
    "domain: {box: {x: [0, 1]}}\nmodes: 2\n" + TINY
)
# The same interval on both sides: one image with left_ and right_ arrays.
SQUARE = KERNEL.replace("name: kernel", "name: square").replace("y: [-1, 1]", "y: [0, 1]")


def _solve(folder: Path, text: str) -> Path:
    folder.mkdir()
    (folder / "p.yaml").write_text(text)
    run = folder / "run"
    result = RUNNER.invoke(app, ["solve", str(folder / "p.yaml"), "--out", str(run)])
    assert result.exit_code == 0, result.output
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("vtkhdf-runs")
    return {
        name: _solve(base / name, text)
        for name, text in (("plane", PLANE), ("kernel", KERNEL), ("square", SQUARE))
    }


def _export(run: Path, *args: str) -> str:
    result = RUNNER.invoke(app, ["export", str(run), "--grid", "9", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_vtkhdf_matches_the_h5_export(runs: dict[str, Path]) -> None:
    run = runs["plane"]
    _export(run)  # default format and path: the contract's eigenfunctions.h5
    output = _export(run, "--format", "vtkhdf")
    target = run / "eigenfunctions.vtkhdf"  # default path of this format
    assert str(target) in output
    with h5py.File(run / "eigenfunctions.h5") as f:
        values, x, y = (f[f"eigenfunctions/{k}"][()] for k in ("values", "x", "y"))
        eigenvalues = f["eigenvalues"][()]
    # Not symmetric under x <-> y, so a swapped axis would fail the comparison below.
    assert not np.allclose(values[0], values[0].T, atol=1e-3 * np.abs(values[0]).max())
    points = _check_layout(target)
    assert sorted(points) == ["psi_00", "psi_01"]
    for m in range(2):
        for layer in points[f"psi_{m:02d}"]:  # both padding layers
            np.testing.assert_array_equal(layer, values[m].T)
    with h5py.File(target) as f:
        attrs = f["VTKHDF"].attrs
        np.testing.assert_allclose(attrs["Origin"][:2] + attrs["Spacing"][:2] * 8, [x[-1], y[-1]])
        np.testing.assert_allclose(attrs["Spacing"][:2], [x[1] - x[0], y[1] - y[0]])
        np.testing.assert_array_equal(attrs["eigenvalues"], eigenvalues)
        got = [f[f"VTKHDF/PointData/psi_{m:02d}"].attrs["eigenvalue"] for m in range(2)]
        np.testing.assert_array_equal(got, eigenvalues)


def test_cli_singular_functions_both_sides(runs: dict[str, Path], tmp_path: Path) -> None:
    # Same interval: one image holding left_ and right_ arrays.
    square = runs["square"]
    _export(square, "-o", str(tmp_path / "s.h5"))
    _export(square, "--format", "vtkhdf", "-o", str(tmp_path / "s.vtkhdf"))
    points = _check_layout(tmp_path / "s.vtkhdf")
    assert sorted(points) == ["left_00", "left_01", "right_00", "right_01"]
    with h5py.File(tmp_path / "s.h5") as f:
        left = f["eigenfunctions/values"][()]
        right = f["right_functions/values"][()]
        singular = f["singular_values"][()]
    assert not np.array_equal(left, right)
    for m in range(2):
        np.testing.assert_array_equal(points[f"left_{m:02d}"][0, 0], left[m])
        np.testing.assert_array_equal(points[f"right_{m:02d}"][1, 1], right[m])
    with h5py.File(tmp_path / "s.vtkhdf") as f:
        np.testing.assert_array_equal(f["VTKHDF"].attrs["singular_values"], singular)
        assert f["VTKHDF/PointData/left_01"].attrs["singular_value"] == singular[1]
    # Different intervals: the right functions get their own image, on their own grid.
    kernel = runs["kernel"]
    output = _export(kernel, "--format", "vtkhdf", "-o", str(tmp_path / "k.vtkhdf"))
    assert "k-right.vtkhdf" in output
    left_points = _check_layout(tmp_path / "k.vtkhdf")
    right_points = _check_layout(tmp_path / "k-right.vtkhdf")
    assert sorted(left_points) == ["left_00", "left_01"]
    assert sorted(right_points) == ["right_00", "right_01"]
    with h5py.File(tmp_path / "k-right.vtkhdf") as f:
        attrs = f["VTKHDF"].attrs
        assert json.loads(attrs["coordinates"]) == ["y"]
        assert attrs["Origin"][0] == -1.0 and attrs["Spacing"][0] == pytest.approx(2 / 8)


def test_cli_refuses_unknown_formats_and_keeps_the_memory_bound(runs: dict[str, Path]) -> None:
    run = runs["plane"]
    result = RUNNER.invoke(app, ["export", str(run), "--format", "vtu"])
    assert result.exit_code == 2 and "h5 | vtkhdf" in result.output
    args = ["export", str(run), "--format", "vtkhdf", "--grid", "100000", "--max-memory", "1G"]
    result = RUNNER.invoke(app, args)
    assert result.exit_code == 2 and "--grid" in result.output  # the largest grid that fits
    assert "wrote" not in result.output
