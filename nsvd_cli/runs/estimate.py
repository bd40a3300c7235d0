"""How long a run will train: a few steps timed on the device, before any run folder exists
(``nsvd check --derived``)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from nsvd_cli.kinds import kind_of
from nsvd_cli.spec import Problem
from nsvd_cli.training import LOCAL, TrainState, init_state, train
from nsvd_cli.training.settings import Settings

TIMED_STEPS = 20
WARMUP_STEPS = 3  # the first steps pay for allocations (and a compile, with --compile)


@dataclass(frozen=True)
class StepTime:
    seconds_per_step: float
    steps: int  # the run's step count (a run to a tolerance: its budget)
    device: str
    threads: int
    one_thread: float | None = None  # seconds per step at one thread (CPU, threads > 1)

    @property
    def total(self) -> float:
        return self.seconds_per_step * self.steps


def time_steps(problem: Problem, settings: Settings, device: torch.device) -> StepTime:
    """Train a throw-away copy of the run for ``WARMUP_STEPS + TIMED_STEPS`` steps (no
    checkpoints, no interval checks) and time the last ``TIMED_STEPS``. On a CPU with
    several threads, time one thread as well: on a busy machine it can be many times
    faster (:mod:`nsvd_cli.runs.cpu_load`)."""
    trial = settings.replaced(steps=WARMUP_STEPS + TIMED_STEPS, tol=None, checkpoint_every=10**9)
    threads = torch.get_num_threads()
    per_step = _seconds_per_step(problem, trial, device)
    one_thread = None
    if device.type == "cpu" and threads > 1:
        torch.set_num_threads(1)
        try:
            one_thread = _seconds_per_step(problem, trial, device)
        finally:
            torch.set_num_threads(threads)
    return StepTime(per_step, settings.optimiser.steps, str(device), threads, one_thread)


def _seconds_per_step(problem: Problem, trial: Settings, device: torch.device) -> float:
    kind = kind_of(problem)
    compiled = kind.build(problem, trial)
    state = init_state(compiled, device)
    marks: dict[int, float] = {}

    def mark(st: TrainState, loss: float) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        marks[st.step] = time.perf_counter()

    objective = kind.objective(compiled, device, LOCAL)
    train(compiled, state, device, on_progress=mark, progress_every=1, objective=objective)
    return (marks[WARMUP_STEPS + TIMED_STEPS] - marks[WARMUP_STEPS]) / TIMED_STEPS
