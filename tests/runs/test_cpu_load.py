"""The busy-machine warning: other processes' load against torch's thread team."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from nsvd_cli.cli.check_report import derived
from nsvd_cli.runs import prepare
from nsvd_cli.runs.cpu_load import (
    _cpu_times,
    contention_advice,
    other_load,
    usable_cores,
)
from nsvd_cli.runs.estimate import StepTime
from nsvd_cli.spec.load import parse_problem
from tests.helpers import oscillator

STAT = Path("/proc/stat")


def test_a_team_larger_than_the_free_cores_is_warned_about() -> None:
    advice = contention_advice(threads=2, cores=2, load=1.0)
    assert advice is not None and "OMP_NUM_THREADS=1" in advice and "1.0 of 2" in advice
    assert "OMP_NUM_THREADS=6" in str(contention_advice(threads=16, cores=16, load=10.2))


@pytest.mark.parametrize(
    ("threads", "cores", "load"), [(2, 2, 0.3), (1, 2, 2.0), (2, 2, None), (4, 16, 8.0)]
)
def test_no_warning_where_every_thread_finds_a_core(
    threads: int, cores: int, load: float | None
) -> None:
    assert contention_advice(threads, cores, load) is None


def test_cpu_times_sum_the_given_cores_only(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text(
        "cpu  30 0 30 140 0 0 0 0 0 0\n"
        "cpu0 10 0 10 80 0 0 0 0 0 0\n"  # 20 busy of 100
        "cpu1 20 0 20 60 0 0 0 0 0 0\n"  # 40 busy of 100
        "intr 5 6 7\n"
    )
    assert _cpu_times(stat, {0, 1}) == (60.0, 200.0)
    assert _cpu_times(stat, {1}) == (40.0, 100.0)
    assert _cpu_times(stat, {5}) is None
    assert _cpu_times(tmp_path / "missing", {0}) is None
    assert other_load({0}, tmp_path / "missing", seconds=0.0) is None


@pytest.mark.skipif(not STAT.exists(), reason="needs Linux /proc/stat")
def test_a_busy_process_beside_shows_as_load() -> None:
    cores = usable_cores()
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # let it start spinning
        load = other_load(cores, seconds=0.3)
    finally:
        hog.kill()
        hog.wait()
    assert load is not None and 0.7 <= load <= len(cores) + 1e-9


def _timing(seconds: float, one_thread: float | None) -> StepTime:
    return StepTime(seconds, 30000, "cpu", 2, one_thread)


def test_check_advises_one_thread_only_where_it_is_clearly_faster() -> None:
    settings = prepare(parse_problem(oscillator("timed")))
    rows = dict(derived(settings, _timing(0.100, 0.010)))
    assert "OMP_NUM_THREADS=1" in rows["one thread"] and "10 ms per step" in rows["one thread"]
    rows = dict(derived(settings, _timing(0.010, 0.016)))
    assert rows["one thread"] == "16 ms per step"
    assert "one thread" not in dict(derived(settings, _timing(0.010, None)))
