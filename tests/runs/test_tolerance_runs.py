"""``nsvd solve --tol``: a run that stops when its intervals are narrow enough, its limits
(steps, time) and what is refused."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import oscillator
from typer.testing import Result

from nsvd_cli.files.checkpoint import load_checkpoint
from nsvd_cli.runs.logs import read_metrics
from nsvd_cli.training import tolerance

Invoke = Callable[..., Result]
CHECK_EVERY = 200


@pytest.fixture(autouse=True)
def frequent_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Checks every 200 steps on 8192 points: a short run still makes several.
    monkeypatch.setattr(tolerance, "CHECK_EVERY", CHECK_EVERY)
    monkeypatch.setattr(tolerance, "CHECK_SAMPLES", 1 << 13)


def _attrs(run_dir: Path) -> dict[str, object]:
    with h5py.File(run_dir / "results.h5") as f:
        return dict(f.attrs)


def test_stops_when_every_interval_meets_the_tolerance(
    write_problem: Callable[..., Path], nsvd: Invoke, tmp_path: Path
) -> None:
    tol = 0.1
    path = write_problem(oscillator("tol", solver={"eval_samples": 16384, "steps": 4000}))
    run = tmp_path / "run"
    result = nsvd("solve", path, "--out", run, "--tol", tol)
    assert result.exit_code == 0, result.output
    attrs = _attrs(run)
    assert attrs["tol_met"] and attrs["tol_outcome"] == "met", attrs
    steps = int(attrs["steps"])  # type: ignore[call-overload]
    assert steps < 4000 and steps % CHECK_EVERY == 0
    assert f"tolerance {tol:g} met" in result.stderr
    with h5py.File(run / "results.h5") as f:
        values, interval = f["eigenvalues"][()], f["eigenvalue_interval"][()]
    exact = np.array([0.5, 1.5])
    assert np.all(np.abs(values - exact) / exact <= tol)
    half = 0.5 * (interval[:, 1] - interval[:, 0]) / np.abs(interval.mean(1))
    assert np.all(half <= tol)
    assert np.all((interval[:, 0] <= exact) & (exact <= interval[:, 1]))
    # One buffer function above the two wanted modes, not reported: the highest wanted mode
    # gets a Kato-Temple interval from the gap to it.
    with h5py.File(run / "results.h5") as f:
        assert f["readout/rotation"].shape == (3, 2) and f["readout/gram"].shape == (3, 3)
        assert f["readout/interval_method"].asstr()[1] != "weinstein"
    report = nsvd("eval", run, "--json")
    assert report.exit_code == 0, report.output
    evaluated = json.loads(report.stdout)
    assert len(evaluated["normalized_gram"]) == 2
    assert (evaluated["tol"], evaluated["tol_met"], evaluated["tol_outcome"]) == (tol, True, "met")
    exported = nsvd("export", run, "-o", tmp_path / "f.h5", "--grid", 16)
    assert exported.exit_code == 0, exported.output
    with h5py.File(tmp_path / "f.h5") as f:
        assert f["eigenfunctions/values"].shape == (2, 16)
    metrics = read_metrics(run / "metrics.csv")
    checked = [s for s, w in zip(metrics["step"], metrics["width_1"]) if math.isfinite(w)]
    assert checked and all(s % CHECK_EVERY == 0 for s in checked)
    assert max(checked) == steps
    assert all(r > 0 for r in metrics["residual_0"] if math.isfinite(r))
    # A check near the tolerance was taken again on the final read-out's 16384 points.
    checks = load_checkpoint(run)["train"]["tolerance"]["checks"]
    assert {c["samples"] for c in checks} == {8192, 16384}, checks
    for c in checks:
        if c["samples"] == 8192:
            assert not tol < max(c["widths"]) <= tolerance.NEAR * tol, c


def test_max_time_ends_a_run_complete_with_the_tolerance_not_met(
    write_problem: Callable[..., Path], nsvd: Invoke, tmp_path: Path
) -> None:
    path = write_problem(oscillator("tol", solver={"eval_samples": 4096, "hidden": 16}))
    run = tmp_path / "run"
    result = nsvd("solve", path, "--out", run, "--tol", "1e-9", "--max-time", "2")
    assert result.exit_code == 0, result.output
    attrs = _attrs(run)
    assert attrs["complete"] and not attrs["tol_met"] and attrs["tol_outcome"] == "time"
    assert "--max-time ran out" in result.stderr
    assert float(attrs["train_seconds"]) < 30  # type: ignore[arg-type]


def test_without_given_steps_the_budget_is_four_times_the_default(tmp_path: Path) -> None:
    from nsvd_cli.runs import prepare
    from nsvd_cli.spec.load import parse_problem

    problem = parse_problem(oscillator("tol"), tmp_path / "p.yaml")
    plain, to_tol = prepare(problem), prepare(problem, tol=1e-3)
    assert to_tol.optimiser.steps == tolerance.BUDGET_FACTOR * plain.optimiser.steps
    assert to_tol.optimiser.tol == 1e-3 and plain.optimiser.tol is None
    assert prepare(problem, steps=500, tol=1e-3).optimiser.steps == 500


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--max-time", "5"), "--max-time applies to a run to a tolerance"),
        (("--tol", "-1"), "--tol: must be a positive number"),
        (("--tol", "0.01", "--max-time", "0"), "--max-time: must be a positive number"),
    ],
)
def test_bad_limits_are_refused(
    write_problem: Callable[..., Path], nsvd: Invoke, tmp_path: Path, args: tuple[str, ...],
    message: str,
) -> None:
    path = write_problem(oscillator("tol"))
    result = nsvd("solve", path, "--out", tmp_path / "run", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not (tmp_path / "run").exists()


HYDROGEN_2D = """\
name: hydrogen-2d-small
coordinates: [x, y]
operator: {potential: "-1/sqrt(x**2 + y**2)"}
modes: 2
network: {cusp: false}
"""


def test_a_tolerance_on_a_2d_coulomb_problem_without_the_cusp_factor_is_refused(
    write_problem: Callable[..., Path], nsvd: Invoke, tmp_path: Path
) -> None:
    path = write_problem(HYDROGEN_2D)
    result = nsvd("solve", path, "--out", tmp_path / "run", "--tol", "1e-3")
    assert result.exit_code == 2, result.output
    assert "--tol 0.001" in result.stderr and "no error intervals" in result.stderr
    in_file = write_problem(HYDROGEN_2D + "solver: {tol: 1.0e-3}\n", "in-file")
    result = nsvd("solve", in_file, "--out", tmp_path / "run2")
    assert result.exit_code == 2, result.output
    assert "in-file.yaml:6" in result.stderr and "solver.tol" in result.stderr


def test_a_tolerance_on_singular_values_is_refused(nsvd: Invoke, tmp_path: Path) -> None:
    problem = Path(__file__).resolve().parents[2] / "problems" / "volterra.yaml"
    result = nsvd("solve", problem, "--out", tmp_path / "run", "--tol", "1e-3")
    assert result.exit_code == 2, result.output
    assert "--tol 0.001" in result.stderr and "no interval checks" in result.stderr


def test_a_fixed_length_run_shows_its_intervals_as_they_fall(
    write_problem: Callable[..., Path], nsvd: Invoke, tmp_path: Path
) -> None:
    solver = {"steps": 1000, "batch_size": 256, "eval_samples": 4096, "hidden": 16}
    path = write_problem(oscillator("watch", solver=solver))
    run = tmp_path / "run"
    result = nsvd("solve", path, "--out", run)
    assert result.exit_code == 0, result.output
    metrics = read_metrics(run / "metrics.csv")
    every = tolerance.check_every(1000, None)
    for step, width, residual in zip(metrics["step"], metrics["width_0"], metrics["residual_0"]):
        checked = step % every == 0
        assert math.isfinite(width) == checked and math.isfinite(residual) == checked, step
    assert "tol" not in _attrs(run) and "tol_met" not in _attrs(run)
    with h5py.File(run / "results.h5") as f:  # no buffer function without a tolerance
        assert f["readout/rotation"].shape == (2, 2)


def test_a_few_timed_steps_give_the_training_time(tmp_path: Path) -> None:
    import torch

    from nsvd_cli.runs import prepare
    from nsvd_cli.runs.estimate import time_steps
    from nsvd_cli.spec.load import parse_problem

    problem = parse_problem(oscillator("timed", solver={"steps": 5000, "hidden": 16}))
    settings = prepare(problem)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        timing = time_steps(problem, settings, torch.device("cpu"))
        assert torch.get_num_threads() == 2  # the one-thread timing puts the count back
    finally:
        torch.set_num_threads(threads)
    assert 0 < timing.seconds_per_step < 1 and timing.threads == 2
    assert timing.one_thread is not None and 0 < timing.one_thread < 1
    assert timing.total == timing.seconds_per_step * 5000 and timing.steps == 5000
    assert settings.optimiser.steps == 5000  # the settings themselves are not touched


def test_a_run_to_a_tolerance_resumes_with_its_checks_and_rate(
    write_problem: Callable[..., Path], nsvd: Invoke, tmp_path: Path
) -> None:
    solver = {"eval_samples": 4096, "hidden": 16, "batch_size": 256, "checkpoint_every": 200}
    path = write_problem(oscillator("tol", solver=solver))
    run = tmp_path / "run"
    first = nsvd("solve", path, "--out", run, "--tol", "1e-9", "--max-time", "3")
    assert first.exit_code == 0, first.output
    before = _attrs(run)
    again = nsvd("solve", path, "--out", run, "--resume", "--max-time", "3")
    assert again.exit_code == 0, again.output
    after = _attrs(run)
    assert after["tol"] == 1e-9 and after["tol_outcome"] == "time"  # the run's own tolerance
    assert int(after["steps"]) > int(before["steps"])  # type: ignore[call-overload]
    assert int(after["tol_checks"]) >= int(before["tol_checks"])  # type: ignore[call-overload]
    other = nsvd("solve", path, "--out", run, "--resume", "--tol", "1e-3")
    assert other.exit_code == 2 and "--tol 0.001" in other.stderr
