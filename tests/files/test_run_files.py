"""Broken, foreign and hostile run files, full disks and read-only outputs, memory bounds:
every one a clear one-line error naming the file, and no earlier result lost."""

from __future__ import annotations

import errno
import io
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from helpers import oscillator
from typer.testing import CliRunner

from nsvd_cli.cli import app
from nsvd_cli.errors import RunFileError
from nsvd_cli.files.atomic import remove_stale_temporaries
from nsvd_cli.files.checkpoint import RunFileWarning, load_checkpoint, read_checkpoint
from nsvd_cli.files.results import read_results
from nsvd_cli.files.run_folder import run_lock
from nsvd_cli.runs import prepare, solve
from nsvd_cli.runs.resources import export_bytes, largest_grid, parse_size
from nsvd_cli.spec.load import load_problem

CPU = torch.device("cpu")
SMALL = oscillator(
    "files-oscillator",
    solver={"steps": 120, "batch_size": 128, "eval_samples": 4096, "checkpoint_every": 50,
            "hidden": 16},
)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A problem file and a finished run of it (shared, copied before any damage)."""
    base = tmp_path_factory.mktemp("finished")
    problem = base / "problem.yaml"
    problem.write_text(SMALL)
    run = base / "run"
    result = CliRunner().invoke(app, ["solve", str(problem), "--out", str(run)])
    assert result.exit_code == 0, result.output
    return problem, run


def _copy(finished: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    problem, run = finished
    shutil.copytree(run, tmp_path / "run")
    return problem, tmp_path / "run"


def _one_error(result, code: int, *needles: str) -> str:
    """Exit ``code`` with one 'error:' line containing every needle; no traceback."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def _damage(path: Path, how: str, good: Path) -> None:
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(good.read_bytes()[:4000])
    elif how == "foreign":
        with h5py.File(path, "w") as f:
            f["temperature"] = np.arange(3.0)
    elif how == "text":
        path.write_text("not hdf5 at all\n")
    elif how == "network":  # a network of another shape
        shutil.copy(good, path)
        with h5py.File(path, "a") as f:
            name = next(iter(f["network"]))
            del f["network"][name]
            f["network"][name] = np.zeros((3, 7))
    elif how == "settings":
        shutil.copy(good, path)
        with h5py.File(path, "a") as f:
            del f["settings"]
            f.create_dataset("settings", data='{"hidden": "many"}', dtype=h5py.string_dtype())
    elif how == "yaml":
        shutil.copy(good, path)
        with h5py.File(path, "a") as f:
            del f["problem/yaml"]
            f.create_dataset("problem/yaml", data="name: [", dtype=h5py.string_dtype())


@pytest.mark.parametrize("command", ["eval", "export"])
@pytest.mark.parametrize(
    "how", ["missing", "empty", "truncated", "foreign", "text", "network", "settings", "yaml"]
)
def test_broken_results_file_is_a_clear_error(
    finished: tuple[Path, Path], tmp_path: Path, command: str, how: str
) -> None:
    path = tmp_path / "results.h5"
    _damage(path, how, finished[1] / "results.h5")
    result = CliRunner().invoke(app, [command, str(path)])
    _one_error(result, 1, str(path))


def test_folder_without_results(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["eval", str(tmp_path)])
    _one_error(result, 1, "no such results file")


@pytest.mark.parametrize("how", ["missing", "empty", "truncated", "foreign"])
def test_broken_reference_file_is_a_clear_error(
    finished: tuple[Path, Path], tmp_path: Path, how: str
) -> None:
    path = tmp_path / "ref.h5"
    _damage(path, how, finished[1] / "results.h5")
    result = CliRunner().invoke(app, ["eval", str(finished[1]), "--against", str(path)])
    _one_error(result, 1, str(path))


def _write_checkpoint(path: Path, payload: object) -> None:
    """A checkpoint file with a valid checksum header around ``payload``'s torch bytes."""
    import hashlib

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    path.write_bytes(b"NSVD-CHECKPOINT sha256=" + hashlib.sha256(data).hexdigest().encode())
    with open(path, "ab") as fh:
        fh.write(b"\n" + data)


def test_resume_from_foreign_or_unfitting_checkpoints(
    finished: tuple[Path, Path], tmp_path: Path
) -> None:
    problem, run = _copy(finished, tmp_path)
    (run / "checkpoint.prev.pt").unlink(missing_ok=True)
    args = ["solve", str(problem), "--out", str(run), "--resume"]
    _write_checkpoint(run / "checkpoint.pt", {"weights": torch.zeros(3)})
    _one_error(CliRunner().invoke(app, args), 1, "not an nsvd checkpoint")
    (run / "checkpoint.pt").write_bytes(b"\x00" * 64)
    _one_error(CliRunner().invoke(app, args), 1, "checkpoint")
    # The right problem, but a network of another width (an edited checkpoint).
    good = read_checkpoint(finished[1] / "checkpoint.pt")
    good["train"]["network"] = {k: torch.zeros(2, 2) for k in good["train"]["network"]}
    _write_checkpoint(run / "checkpoint.pt", good)
    _one_error(CliRunner().invoke(app, args), 1, "does not fit")


class _Sentinel:
    """Unpickling this would create a file: what a malicious checkpoint would do."""

    path = ""

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_checkpoint_cannot_run_code(finished: tuple[Path, Path], tmp_path: Path) -> None:
    problem, run = _copy(finished, tmp_path)
    sentinel = tmp_path / "PWNED"
    _Sentinel.path = str(sentinel)
    payload = read_checkpoint(run / "checkpoint.pt")
    payload["extra"] = _Sentinel()
    _write_checkpoint(run / "checkpoint.pt", payload)
    (run / "checkpoint.prev.pt").write_bytes(b"NSVD-CHECKPOINT sha256=00\n")
    args = ["solve", str(problem), "--out", str(run), "--resume"]
    _one_error(CliRunner().invoke(app, args), 1, "checkpoint")
    assert not sentinel.exists()


def _fail_on(monkeypatch: pytest.MonkeyPatch, name: str, calls: int, code: int) -> None:
    """Make os.<name> fail with ``code`` from its ``calls``-th call on."""
    real = getattr(os, name)
    count = {"n": 0}

    def failing(*args, **kwargs):
        count["n"] += 1
        if count["n"] >= calls:
            raise OSError(code, os.strerror(code))
        return real(*args, **kwargs)

    monkeypatch.setattr(os, name, failing)


def test_disk_full_during_a_checkpoint_keeps_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "problem.yaml"
    path.write_text(SMALL)
    problem = load_problem(path)
    run = tmp_path / "run"
    # The first checkpoint (step 50) is written; the disk fills before the second.
    _fail_on(monkeypatch, "fsync", 4, errno.ENOSPC)  # three fsyncs per checkpoint
    with pytest.raises(RunFileError, match="No space left on device.*unchanged"):
        solve(problem, prepare(problem), run, CPU)
    monkeypatch.undo()
    assert read_checkpoint(run / "checkpoint.pt")["train"]["step"] == 50  # not rotated out
    assert not list(run.glob("*.tmp-*"))
    assert not (run / "results.h5").exists()


def test_disk_full_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "problem.yaml"
    path.write_text(SMALL)
    _fail_on(monkeypatch, "fsync", 4, errno.ENOSPC)
    result = CliRunner().invoke(app, ["solve", str(path), "--out", str(tmp_path / "run")])
    _one_error(result, 1, "checkpoint.pt", "No space left on device")


def test_read_only_output_keeps_the_earlier_export(
    finished: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "ef.h5"
    assert CliRunner().invoke(app, ["export", str(finished[1]), "-o", str(target)]).exit_code == 0
    before = target.read_bytes()
    # As root, chmod does not stop writes: a read-only file system is simulated instead.
    _fail_on(monkeypatch, "replace", 1, errno.EROFS)
    result = CliRunner().invoke(app, ["export", str(finished[1]), "-o", str(target)])
    _one_error(result, 1, str(target), "Read-only file system")
    assert target.read_bytes() == before
    assert not list(tmp_path.glob("*.tmp-*"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder(finished: tuple[Path, Path], tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        result = CliRunner().invoke(app, ["export", str(finished[1]), "-o", str(folder / "x.h5")])
        _one_error(result, 1, "Permission denied")
    finally:
        folder.chmod(0o755)


def test_a_fresh_run_sets_an_earlier_one_aside(finished: tuple[Path, Path], tmp_path: Path) -> None:
    problem, run = _copy(finished, tmp_path)
    before = read_results(run / "results.h5").eigenvalues
    with pytest.warns(RunFileWarning, match="moved to"):
        result = CliRunner().invoke(app, ["solve", str(problem), "--out", str(run), "--seed", "3"])
    assert result.exit_code == 0, result.output
    (aside,) = run.glob("replaced-*")
    np.testing.assert_array_equal(read_results(aside / "results.h5").eigenvalues, before)
    assert load_checkpoint(aside)["train"]["step"] == 120


def test_resume_without_a_checkpoint_starts_from_the_beginning(tmp_path: Path) -> None:
    path = tmp_path / "problem.yaml"
    path.write_text(SMALL)
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["solve", str(path), "--out", str(run), "--resume"])
    assert result.exit_code == 0, result.output
    assert "no checkpoint yet; starting from step 0" in result.output
    assert read_results(run / "results.h5").attrs["steps"] == 120


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / "checkpoint.pt.tmp-999999999"
    live = tmp_path / f"results.h5.tmp-{os.getppid()}"
    other = tmp_path / "notes.tmp-draft"
    for p in (dead, live, other):
        p.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [dead]
    assert live.exists() and other.exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("8G", 8 << 30), ("512MiB", 512 << 20), ("1.5gb", int(1.5 * (1 << 30))), ("1000", 1000)],
)
def test_memory_sizes(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "8X", "-1G", "G", "0"])
def test_bad_memory_sizes(text: str) -> None:
    with pytest.raises(ValueError, match="memory size"):
        parse_size(text)


def test_largest_grid_is_the_largest_that_fits() -> None:
    bound = 10 << 20
    n = largest_grid([2], 4, bound)
    assert export_bytes([2], n, 4) <= bound < export_bytes([2], n + 1, 4)


def test_memory_bounds_refuse_with_the_computed_numbers(
    finished: tuple[Path, Path], tmp_path: Path
) -> None:
    problem, run = finished
    runner = CliRunner()
    # No bound given: the machine's available memory (no machine has 700 GiB free for this).
    line = _one_error(runner.invoke(app, ["export", str(run), "--grid", "10000000000"]), 2)
    assert "available memory" in line and "GiB" in line and "use --grid" in line
    line = _one_error(
        runner.invoke(app, ["export", str(run), "--grid", "4000000", "--max-memory", "100M"]), 2
    )
    assert "more than the 100 MiB allowed (--max-memory)" in line
    suggested = int(line.split("use --grid ")[1].split()[0])
    out = tmp_path / "fits.h5"
    args = ["export", str(run), "--grid", str(suggested), "--max-memory", "100M", "-o", str(out)]
    assert runner.invoke(app, args).exit_code == 0  # the suggestion does fit
    line = _one_error(runner.invoke(app, ["eval", str(run), "--samples", str(10**12)]), 2)
    assert "--samples" in line and "TiB" in line
    result = runner.invoke(
        app, ["solve", str(problem), "--out", str(tmp_path / "r"), "--max-memory", "1M"]
    )
    _one_error(result, 2, str(problem), "solver.eval_samples = 4096")
    assert not (tmp_path / "r").exists()  # refused before anything was written
    _one_error(runner.invoke(app, ["export", str(run), "--max-memory", "lots"]), 2, "memory size")


def test_a_second_solve_on_a_folder_in_use_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "problem.yaml"
    path.write_text(SMALL)
    run = tmp_path / "run"
    run.mkdir()
    with run_lock(run):  # as a first `nsvd solve` still running would hold it
        result = CliRunner().invoke(app, ["solve", str(path), "--out", str(run), "--resume"])
        _one_error(result, 1, "in use by another nsvd solve", f"pid {os.getpid()}")
    assert not (run / "results.h5").exists()
    # Released (as it is when the holder dies, even by SIGKILL): the same command runs.
    result = CliRunner().invoke(app, ["solve", str(path), "--out", str(run), "--resume"])
    assert result.exit_code == 0, result.output


def test_a_refused_solve_leaves_the_running_jobs_files_in_place(
    finished: tuple[Path, Path], tmp_path: Path
) -> None:
    """Found by the docs review: the earlier run was set aside before the lock was taken,
    so a refused second solve moved the running job's checkpoints away."""
    problem, run = _copy(finished, tmp_path)
    before = sorted(p.name for p in run.iterdir())
    with run_lock(run):
        result = CliRunner().invoke(app, ["solve", str(problem), "--out", str(run)])
        _one_error(result, 1, "in use by another nsvd solve")
    assert sorted(p.name for p in run.iterdir()) == before
    assert not list(run.glob("replaced-*"))


def test_both_checkpoints_damaged_names_both(finished: tuple[Path, Path], tmp_path: Path) -> None:
    problem, run = _copy(finished, tmp_path)
    (run / "checkpoint.pt").write_bytes(b"junk")
    (run / "checkpoint.prev.pt").write_bytes(b"NSVD-CHECKPOINT sha256=00\n")
    args = ["solve", str(problem), "--out", str(run), "--resume"]
    _one_error(CliRunner().invoke(app, args), 1, "checkpoint.pt:", "checkpoint.prev.pt")


def test_a_warning_is_printed_once(capsys: pytest.CaptureFixture[str]) -> None:
    """--resume reads a damaged checkpoint twice (settings, then state): one line, not two."""
    from nsvd_cli import cli

    for _ in range(2):
        cli._show_warning("x.pt: damaged; resuming from the previous one", RunFileWarning)
    cli._show_warning("another", RunFileWarning)
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["warning: x.pt: damaged; resuming from the previous one", "warning: another"]
