"""results.h5's layout belongs to its writer: per-mode arrays are in mode order in memory
(largest first for an integral operator) and ascending in the file's version-1 fields."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from nsvd_cli.files import Results, SingularArrays, read_results, write_results


def _results(descending: bool) -> Results:
    values = np.array([3.0, 2.0, 1.0]) if descending else np.array([1.0, 2.0, 3.0])
    rotation = np.arange(9.0).reshape(3, 3)
    return Results(
        eigenvalues=values,
        stderr=values / 100,
        problem_yaml="name: x\n",
        settings={},
        network={"w": np.zeros(2)},
        rotation=rotation,
        gram=np.eye(3),
        quotients=values + 0.5,
        history={"step": np.arange(2)},
        attrs={"kind": "singular"} if descending else {},
        native=values + 0.25,
        singular=SingularArrays(values, values / 100) if descending else None,
        descending=descending,
    )


def test_a_descending_spectrum_is_stored_ascending_and_read_back_in_mode_order(
    tmp_path: Path,
) -> None:
    path = tmp_path / "results.h5"
    written = _results(descending=True)
    write_results(path, written)
    with h5py.File(path, "r") as f:
        assert list(f["eigenvalues"][()]) == [1.0, 2.0, 3.0]  # the contract: ascending
        assert list(f["singular_values"][()]) == [3.0, 2.0, 1.0]  # mode order
        np.testing.assert_array_equal(f["readout/rotation"][()], written.rotation[:, ::-1])
        assert f.attrs["mode_order"] == "descending"
    back = read_results(path)
    assert back.descending
    for name in ("eigenvalues", "stderr", "rotation", "quotients", "native"):
        np.testing.assert_array_equal(getattr(back, name), getattr(written, name))


def test_an_ascending_spectrum_is_stored_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "results.h5"
    write_results(path, _results(descending=False))
    back = read_results(path)
    assert not back.descending
    assert list(back.eigenvalues) == [1.0, 2.0, 3.0]


def test_a_file_without_mode_order_is_read_by_its_kind(tmp_path: Path) -> None:
    """Files written before the attribute existed: an integral operator's (kind singular)
    were already ascending in the version-1 fields."""
    path = tmp_path / "results.h5"
    write_results(path, _results(descending=True))
    with h5py.File(path, "a") as f:
        del f.attrs["mode_order"]
    assert list(read_results(path).eigenvalues) == [3.0, 2.0, 1.0]
