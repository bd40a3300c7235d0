"""RUN_DIR/metrics.csv, TensorBoard logging and the live table of estimates during solve."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import oscillator
from rich.console import Console
from typer.testing import CliRunner

from nsvd_cli.cli import app
from nsvd_cli.cli import solve as cli_solve
from nsvd_cli.cli.progress import estimates_table, training_progress
from nsvd_cli.files.results import read_results
from nsvd_cli.runs import prepare, solve
from nsvd_cli.runs.logs import MetricsCsv, read_metrics
from nsvd_cli.spec.load import parse_problem
from nsvd_cli.training.state import Snapshot, TrainState

SMALL = oscillator(
    "logs-oscillator",
    solver={"steps": 300, "batch_size": 64, "eval_samples": 2048, "checkpoint_every": 100,
            "hidden": 8},
)


def _problem(tmp_path: Path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    return path


def test_metrics_csv_has_every_recorded_step_once_after_a_resume(tmp_path: Path) -> None:
    problem = _problem(tmp_path)
    run = tmp_path / "run"
    runner = CliRunner()
    assert runner.invoke(app, ["solve", str(problem), "--out", str(run)]).exit_code == 0
    first = read_metrics(run / "metrics.csv")
    assert first["step"] == [100.0, 200.0, 300.0]
    # Continue the finished run for 200 more steps: the log continues, nothing repeated.
    result = runner.invoke(
        app, ["solve", str(problem), "--out", str(run), "--resume"] + ["--steps", "500"]
    )
    assert result.exit_code == 0, result.output
    log = read_metrics(run / "metrics.csv")
    assert log["step"] == [100.0, 200.0, 300.0, 400.0, 500.0]
    results = read_results(run / "results.h5")
    h = results.history
    np.testing.assert_array_equal(log["step"], h["step"])
    np.testing.assert_allclose(log["loss"], h["loss"], rtol=1e-15)
    np.testing.assert_allclose(log["E_1"], h["eigenvalues"][:, 1], rtol=1e-15)
    np.testing.assert_allclose(log["learning_rate"], h["learning_rate"], rtol=1e-15)
    assert all(0 < lr <= 1e-2 for lr in log["learning_rate"])
    assert all(b > a for a, b in zip(log["elapsed_s"], log["elapsed_s"][1:]))


def _state(steps: list[int]) -> TrainState:
    net = torch.nn.Linear(1, 1)
    state = TrainState(net, torch.optim.SGD(net.parameters(), lr=0.1), torch.Generator())
    state.history = [Snapshot(s, -float(s), 0.0, [s + 0.5, s + 1.5], s / 10, 0.1) for s in steps]
    return state


def test_metrics_csv_follows_a_roll_back(tmp_path: Path) -> None:
    """After a roll-back shortens the history, the file is rewritten from it."""
    log = MetricsCsv(tmp_path, modes=2)
    for steps in ([10], [10, 20], [10, 20, 30], [10, 20], [10, 20, 30]):
        log(_state(steps), 0.0)
        assert read_metrics(tmp_path / "metrics.csv")["step"] == [float(s) for s in steps]
    assert read_metrics(tmp_path / "metrics.csv")["E_1"] == [11.5, 21.5, 31.5]


def test_tensorboard_logging(tmp_path: Path) -> None:
    pytest.importorskip("torch.utils.tensorboard")
    problem = _problem(tmp_path)
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["solve", str(problem), "--out", str(run), "--tensorboard"])
    assert result.exit_code == 0, result.output
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert {"loss", "learning_rate", "E/0", "E/1"} <= set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Scalars("E/1")] == [100, 200, 300]


def test_tensorboard_missing_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(cli_solve, "tensorboard_available", lambda: False)
    result = CliRunner().invoke(
        app, ["solve", str(_problem(tmp_path)), "--out", str(tmp_path / "r"), "--tensorboard"]
    )
    assert result.exit_code == 2
    assert "nsvd[tensorboard]" in result.output
    assert not (tmp_path / "r").exists()


def test_estimates_table_shows_reference_and_relative_errors() -> None:
    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(estimates_table([0.51, 1.5, 9.0], [0.5, 1.5, 2.5], "E", step=300))
    text = console.file.getvalue()
    assert "step 300" in text and "rel. error" in text
    assert "2.00e-02" in text  # |0.51 - 0.5| / 0.5
    assert "0.00e+00" in text
    assert "2.60e+00" in text  # 6.5 / 2.5
    plain = Console(file=io.StringIO(), width=100, color_system=None)
    plain.print(estimates_table([0.51], None, "s"))
    assert "reference" not in plain.file.getvalue()


def test_estimates_table_shows_the_last_checks_intervals() -> None:
    from nsvd_cli.training.tolerance import IntervalCheck

    check = IntervalCheck(3000, [1e-3, float("nan"), 2e-2], [0.1, 0.2, 0.3])
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(estimates_table([0.5, 1.5, 2.5], [0.5, 1.5, 2.5], "E", 3100, 2, check))
    text = console.file.getvalue()
    assert "intervals at step 3000" in text and "interval ± (rel.)" in text
    assert "1.00e-03" in text and "none" in text  # a mode without an interval says so
    assert "1 more" in text and "2.00e-02" not in text  # rows past max_rows summarised


def test_live_view_during_solve_shows_current_estimates(tmp_path: Path) -> None:
    problem = parse_problem(SMALL)
    settings = prepare(problem)
    console = Console(file=io.StringIO(), width=120, force_terminal=True, color_system=None)
    with training_progress(
        settings.optimiser.steps, enabled=True, reference=[0.5, 1.5], console=console
    ) as hook:
        results, complete = solve(
            problem, settings, tmp_path / "run", torch.device("cpu"), on_progress=hook
        )
    assert complete and results is not None
    text = console.file.getvalue()
    assert "current estimates at step 300" in text
    assert "reference" in text and "rel. error" in text
    assert "300/300" in text
    last = text[text.rindex("current estimates at step 300") :]
    # The table's last estimates are the run's final recorded ones.
    final = results.history["eigenvalues"][-1]
    assert all(f"{v:.8g}" in last for v in final if math.isfinite(v))
