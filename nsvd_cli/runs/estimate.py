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

    @property
    def total(self) -> float:
        return self.seconds_per_step * self.steps


def time_steps(problem: Problem, settings: Settings, device: torch.device) -> StepTime:
    """Train a throw-away copy of the run for ``WARMUP_STEPS + TIMED_STEPS`` steps (no
    checkpoints, no interval checks) and time the last ``TIMED_STEPS``."""
    trial = settings.replaced(steps=WARMUP_STEPS + TIMED_STEPS, tol=None, checkpoint_every=10**9)
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
    per_step = (marks[WARMUP_STEPS + TIMED_STEPS] - marks[WARMUP_STEPS]) / TIMED_STEPS
    return StepTime(per_step, settings.optimiser.steps, str(device), torch.get_num_threads())
