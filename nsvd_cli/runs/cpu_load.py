"""Is the CPU shared? torch's thread team against the other processes on the machine.

torch's CPU build runs each kernel on an OpenMP team whose threads spin while they wait
for each other. When other processes hold some of the cores, a team larger than the free
cores waits at every parallel region for a thread the scheduler has set aside: a training
step measured 4.6-7.6x slower at 2 threads beside one busy loop on 2 cores than at one
thread, and 70x beside another training run (docs/threads.md). No OpenMP setting fixes
this on both an idle and a busy machine (passive waiting costs 2.4-4.4x on an idle one),
so the run says what it sees and the user picks the thread count.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

SAMPLE_SECONDS = 0.1  # long against the scheduler's slice (~4 ms), short against a set-up
SLACK = 0.5  # cores of other load tolerated before warning (a shell, a monitor)


def usable_cores() -> set[int]:
    """The cores this process may run on (its affinity); all of them where that is unknown."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def _cpu_times(stat: Path, cores: set[int]) -> tuple[float, float] | None:
    """(busy, total) jiffies summed over ``cores`` from ``/proc/stat``; None where it is not
    there or not understood."""
    busy = total = 0.0
    try:
        for line in stat.read_text().splitlines():
            name, *values = line.split()
            if not (name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores):
                continue
            fields = [float(v) for v in values]
            idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
            busy, total = busy + sum(fields) - idle, total + sum(fields)
    except (OSError, IndexError, ValueError):
        return None
    return (busy, total) if total > 0 else None


def other_load(
    cores: set[int], stat: Path = Path("/proc/stat"), seconds: float = SAMPLE_SECONDS
) -> float | None:
    """How many of ``cores`` other processes keep busy, sampled over ``seconds`` while this
    one sleeps; None where ``/proc/stat`` is not readable (not Linux)."""
    first = _cpu_times(stat, cores)
    time.sleep(seconds)
    second = _cpu_times(stat, cores)
    if first is None or second is None or second[1] <= first[1]:
        return None
    return len(cores) * (second[0] - first[0]) / (second[1] - first[1])


def contention_advice(threads: int, cores: int, load: float | None) -> str | None:
    """A warning when ``threads`` torch threads will not each find a free core among
    ``cores`` with ``load`` cores busy elsewhere; None when they will or nothing is known."""
    if load is None or threads <= 1 or load + threads <= cores + SLACK:
        return None
    free = max(1, round(cores - load))
    return (
        f"other processes keep {load:.1f} of {cores} cores busy and torch runs {threads} "
        f"threads, which wait on each other when one is set aside: training can be many "
        f"times slower. Set OMP_NUM_THREADS={free} (docs/troubleshooting.md)."
    )


def contention_warning(device: torch.device) -> str | None:
    """``contention_advice`` for a run about to train on ``device`` (CPU only)."""
    if device.type != "cpu" or torch.get_num_threads() <= 1:
        return None
    cores = usable_cores()
    return contention_advice(torch.get_num_threads(), len(cores), other_load(cores))
