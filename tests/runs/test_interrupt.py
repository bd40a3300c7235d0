"""`nsvd solve` as a real process: signals, SIGKILL at random moments, and resuming.

Slow (each process imports torch); CI runs a bounded number of kills, NSVD_KILLS sets it.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import oscillator

from nsvd_cli.files.atomic import CHECKPOINT_NAME, PREVIOUS_CHECKPOINT_NAME, RESULTS_NAME
from nsvd_cli.files.checkpoint import load_checkpoint, read_checkpoint
from nsvd_cli.files.results import read_results

pytestmark = pytest.mark.slow

# A wide network makes each checkpoint a few MB, so writes take long enough to be hit.
PROBLEM = oscillator(
    "kill-oscillator",
    solver={"steps": "STEPS", "batch_size": 128, "eval_samples": 4096,
            "checkpoint_every": "EVERY", "hidden": 384},
    reference=False,
)
# One thread: identical arithmetic in every process, so resumed runs can match bit for bit.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "200"}


def _problem(tmp_path: Path, steps: int, every: int) -> Path:
    path = tmp_path / "problem.yaml"
    path.write_text(PROBLEM.replace("STEPS", str(steps)).replace("EVERY", str(every)))
    return path


def _start(problem: Path, run: Path, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    log = run.parent / f"{run.name}-{time.monotonic_ns()}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nsvd_cli", "solve", str(problem), "--out", str(run), *extra],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=ENV,
        )
    return proc, log


def _wait_for(log: Path, text: str, proc: subprocess.Popen[bytes], limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while text not in log.read_text(errors="replace"):
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"no {text!r} in {log}"
        time.sleep(0.02)


def _wait_for_a_step(metrics: Path, proc: subprocess.Popen[bytes], limit: float = 120) -> None:
    """Until metrics.csv holds a recorded step (a fixed sleep found none on a loaded machine)."""
    deadline = time.monotonic() + limit
    while not metrics.exists() or len(metrics.read_text().splitlines()) < 2:
        assert proc.poll() is None, "the run ended before its first recorded step"
        assert time.monotonic() < deadline, f"no recorded step in {metrics}"
        time.sleep(0.05)


def _step(run: Path) -> int:
    return int(load_checkpoint(run)["train"]["step"])


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_saves_a_checkpoint_and_incomplete_results(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    problem = _problem(tmp_path, steps=1_000_000, every=100_000)
    run = tmp_path / "run"
    proc, log = _start(problem, run)
    _wait_for(log, "run folder:", proc)
    _wait_for_a_step(run / "metrics.csv", proc)  # into training, however busy the machine
    proc.send_signal(sig)
    assert proc.wait(timeout=120) == code, log.read_text()
    text = log.read_text()
    assert f"--out {run} --resume" in text and "marked incomplete" in text
    results = read_results(run / RESULTS_NAME)
    assert results.attrs["complete"] is np.False_ or results.attrs["complete"] == 0
    stopped = int(results.attrs["steps"])
    assert 0 < stopped < 1_000_000 and _step(run) == stopped
    # The resume command it printed works (a short extension to finish).
    proc, log = _start(problem, run, "--resume", "--steps", str(stopped + 20))
    assert proc.wait(timeout=120) == 0, log.read_text()
    assert bool(read_results(run / RESULTS_NAME).attrs["complete"])


def _check_files(run: Path) -> None:
    """Whatever a kill left is a complete file: every checkpoint present passes its checksum
    (a torn one would make the loader warn or fail) and results.h5, if written, reads."""
    for name in (CHECKPOINT_NAME, PREVIOUS_CHECKPOINT_NAME):
        if (run / name).exists():
            read_checkpoint(run / name)
    if (run / RESULTS_NAME).exists():
        read_results(run / RESULTS_NAME)


def test_sigkill_at_random_moments_then_resume_equals_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    steps, every = 400, 5
    problem = _problem(tmp_path, steps, every)
    reference = tmp_path / "reference"
    proc, log = _start(problem, reference)
    assert proc.wait(timeout=600) == 0, log.read_text()
    expected = read_results(reference / RESULTS_NAME)

    kills = int(os.environ.get("NSVD_KILLS", "4"))
    rng = random.Random(20261127)
    run = tmp_path / "run"
    during_write = 0
    killed = 0
    for attempt in range(kills + 8):
        # --resume before any checkpoint exists starts from step 0 (with a warning).
        proc, log = _start(problem, run, "--resume")
        _wait_for(log, "run folder:", proc)
        if attempt % 2 == 1 or (killed >= kills and during_write == 0):
            # Kill the moment a temporary file appears: mid-write of a checkpoint.
            deadline = time.monotonic() + 30
            while not any(run.glob("*.tmp-*")) and proc.poll() is None:
                assert time.monotonic() < deadline
                time.sleep(0.0002)
        else:
            time.sleep(rng.uniform(0.0, 2.0))
        if proc.poll() is not None:
            break  # finished before the kill
        proc.kill()
        proc.wait()
        killed += 1
        during_write += any(run.glob("*.tmp-*"))  # the writer died before its rename
        _check_files(run)
        if killed >= kills and during_write:
            break
    print(f"kills: {killed}, of which during a checkpoint write: {during_write}")
    assert killed >= 2 and during_write >= 1, (killed, during_write)
    proc, log = _start(problem, run, "--resume")
    assert proc.wait(timeout=600) == 0, log.read_text()
    assert not any(run.glob("*.tmp-*")), "stale temporaries left behind"
    got = read_results(run / RESULTS_NAME)
    assert got.attrs["steps"] == steps and bool(got.attrs["complete"])
    np.testing.assert_array_equal(got.eigenvalues, expected.eigenvalues)
    np.testing.assert_array_equal(got.stderr, expected.stderr)
    for name, value in expected.network.items():
        np.testing.assert_array_equal(got.network[name], value, err_msg=name)
    with h5py.File(run / RESULTS_NAME) as f:
        assert f["eigenvalues"].shape == (2,)
