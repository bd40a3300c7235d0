"""The training loop: sample, evaluate, take an optimiser step; nothing about files or screens.

Callers pass hooks for progress and checkpoints. Everything that decides the next step
(network, optimiser, schedule position, sampler RNG, running moments, the operator shift)
is in ``TrainState`` and round-trips through ``state_dict``, so a resumed run continues
bit-for-bit where it stopped (on the same device and threads).
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from nsvd_cli.objectives.methods import Method, MethodOptions, make_method
from nsvd_cli.training.distributed import LOCAL, Context, rank_seed
from nsvd_cli.training.eigen_objective import (
    DifferentialProblem,
    EigenObjective,
)
from nsvd_cli.training.guard import (
    ROLLBACK_LR_FACTOR,
    ROLLBACK_SEED_STRIDE,
    Check,
    Diverged,
    diagnose,
    step_health,
)
from nsvd_cli.training.settings import Settings
from nsvd_cli.training.state import DTYPES, Snapshot, Trainable, TrainState
from nsvd_cli.training.tolerance import (
    BUDGET,
    TIME,
    IntervalCheck,
    ToleranceState,
    check_every,
    first_cycle,
    is_check_step,
)


def learning_rate_factor(step: int, total: int) -> float:
    """Linear warm-up over 1% of the steps, then cosine decay to 1% of the base rate."""
    warm = max(1, total // 100)
    if step < warm:
        return 0.1 + 0.9 * step / warm
    t = (step - warm) / max(1, total - warm)
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


def init_state(compiled: Trainable, device: torch.device) -> TrainState:
    s = compiled.settings
    torch.manual_seed(s.seed)
    network = compiled.make_network().to(device=device, dtype=DTYPES[s.dtype])
    optimizer = torch.optim.Adam(network.parameters(), lr=s.optimiser.learning_rate)
    generator = torch.Generator(device=device).manual_seed(s.seed)
    shift = s.transform.shift if s.transform.shift is not None else 0.0
    state = TrainState(network, optimizer, generator, shift=shift, method=_method(s, network))
    if s.optimiser.tol is not None:
        state.tolerance = ToleranceState(s.optimiser.tol, first_cycle(s.optimiser.steps))
    return state


def _method(s: Settings, network: torch.nn.Module) -> Method:
    return make_method(s.method, network, MethodOptions(moving_average=s.spin_decay))


ProgressHook = Callable[[TrainState, float], None]
CheckpointHook = Callable[[TrainState], None]
# A run to a tolerance: the kind's read-out of the current networks' intervals.
Monitor = Callable[[TrainState], IntervalCheck]


@dataclass(frozen=True)
class Stopping:
    """When a run stops besides its step budget: a stop request (a signal: the run is
    incomplete), and for a run to a tolerance the kind's check and a wall-clock deadline
    (``time.perf_counter()`` value) after which the run ends complete."""

    requested: Callable[[], bool] = lambda: False
    monitor: Monitor | None = None
    deadline: float | None = None
    check_every: int = 0

    def timed_out(self) -> bool:
        return self.deadline is not None and time.perf_counter() >= self.deadline


@contextmanager
def matmul_precision(dtype: str, device: torch.device) -> Iterator[None]:
    """TF32 products for the duration of training when asked for on CUDA; restored after."""
    if dtype != "tf32" or device.type != "cuda":
        yield
        return
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


class Objective(Protocol):
    """What the loop minimises: one batch's loss, and the running estimates it reports."""

    def loss(self, state: TrainState) -> torch.Tensor:
        """The loss of a fresh batch (with its graph); updates the state's running moments."""
        ...

    def after_step(self, state: TrainState) -> None: ...

    def values(self, state: TrainState) -> list[float]: ...

    def checks(self) -> list[Check]:
        """The last batch's quantities in the order they were computed, for a diagnosis."""
        ...


def train(
    compiled: Trainable,
    state: TrainState,
    device: torch.device,
    on_progress: ProgressHook | None = None,
    on_checkpoint: CheckpointHook | None = None,
    progress_every: int = 100,
    stop: Callable[[], bool] = lambda: False,
    objective: Objective | None = None,
    context: Context = LOCAL,
    monitor: Monitor | None = None,
    deadline: float | None = None,
) -> TrainState:
    """Run steps until ``settings.optimiser.steps`` or ``stop()``; hooks see progress and
    checkpoints. ``monitor`` (the kind's interval check) runs every few steps
    (``tolerance.check_every``) and its numbers go into the history. A run to a tolerance
    (``state.tolerance``) also ends when a check says so or at ``deadline`` (a
    ``time.perf_counter()`` value); its learning rate follows the checks instead of the
    cosine.

    ``objective`` defaults to the eigenproblem of ``compiled``; singular problems pass theirs.
    A step that is not finite rolls the state back to the last checkpoint (or the start)
    with the learning rate halved, at most ``settings.optimiser.max_rollbacks`` times (a
    ``RollbackWarning`` each); after that ``Diverged`` says which term blew up, and where.
    """
    s = compiled.settings
    if state.method is None:
        state.method = _method(s, state.network)
    if objective is None:
        assert isinstance(compiled, DifferentialProblem)
        objective = EigenObjective(compiled, device, context)
    if state.tolerance is not None and monitor is None:
        raise ValueError("a run to a tolerance needs the kind's interval check (monitor)")
    if state.tolerance is not None:
        state.tolerance.budget = s.optimiser.steps
    every = check_every(s.optimiser.steps, s.optimiser.tol)
    stopping = Stopping(stop, monitor, deadline, every)
    good = copy.deepcopy(state.state_dict())

    def keep(st: TrainState) -> None:
        nonlocal good
        good = copy.deepcopy(st.state_dict())
        if on_checkpoint is not None:
            on_checkpoint(st)

    while True:
        try:
            with matmul_precision(s.dtype, device):
                return _loop(
                    s, state, objective, on_progress, keep, progress_every, stopping, context
                )
        except Diverged as exc:
            record = exc.divergence.describe()
            if state.rollbacks >= s.optimiser.max_rollbacks:
                state.divergences.append(record)
                good_step = int(good["step"])
                raise Diverged(exc.divergence, state.rollbacks, good_step, state.lr_scale) from None
            _roll_back(s, state, good, record, context)


class RollbackWarning(UserWarning):
    """A non-finite step was undone: the run went back to its last good state."""


def _roll_back(
    s: Settings, state: TrainState, good: dict[str, Any], record: str, context: Context
) -> None:
    rollbacks = state.rollbacks + 1
    lr_scale = state.lr_scale * ROLLBACK_LR_FACTOR
    divergences = [*state.divergences, record]
    state.load_state_dict(copy.deepcopy(good))
    state.rollbacks, state.lr_scale, state.divergences = rollbacks, lr_scale, divergences
    state.generator.manual_seed(rank_seed(s.seed + ROLLBACK_SEED_STRIDE * rollbacks, context))
    warnings.warn(
        f"{record}; rolled back to step {state.step} with the learning rate x{lr_scale:g} "
        f"(roll-back {rollbacks} of at most {s.optimiser.max_rollbacks})",
        RollbackWarning,
        stacklevel=3,
    )


def _moments(state: TrainState) -> list[Check]:
    return [
        ("running Gram matrix (eigenvalue estimates)", state.gram),
        ("running operator matrix (eigenvalue estimates)", state.energy),
        ("running right Gram matrix", state.right_gram),
    ]


def _loop(
    s: Settings,
    state: TrainState,
    objective: Objective,
    on_progress: ProgressHook | None,
    on_checkpoint: CheckpointHook | None,
    progress_every: int,
    stopping: Stopping,
    context: Context = LOCAL,
) -> TrainState:
    optimizer = state.optimizer
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    total = s.optimiser.steps
    started = time.perf_counter() - state.elapsed
    loss_value = float("nan")
    halt = False

    def stop() -> bool:
        return stopping.requested() or stopping.timed_out()

    # One process stops before a step; a distributed job finishes the step every rank is in
    # and stops together (the ranks agree through the gradient all-reduce).
    while not _finished(state, total) and not halt and (context.active or not stop()):
        for group in optimizer.param_groups:
            group["lr"] = s.optimiser.learning_rate * state.lr_scale * _rate(state, total)
        loss = objective.loss(state)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        halt = context.average_gradients(parameters, stop()) if context.active else False
        moments = [m for _, m in _moments(state) if m is not None]
        if not bool(step_health(loss, parameters, moments)):  # before the weights move
            raise Diverged(
                diagnose(state.step + 1, state.network, objective.checks(), loss, _moments(state))
            )
        optimizer.step()
        state.step += 1
        record = state.step % progress_every == 0 or state.step == total
        if record:
            loss_value = float(loss.detach())
        objective.after_step(state)
        check = _check(state, stopping)
        state.elapsed = time.perf_counter() - started
        if record or check is not None:
            _snapshot(state, loss_value, objective, optimizer, check, on_progress)
        if on_checkpoint is not None and state.step % s.optimiser.checkpoint_every == 0:
            on_checkpoint(state)
    _close_tolerance(state, total, stopping)
    return state


def _rate(state: TrainState, total: int) -> float:
    if state.tolerance is not None:
        return state.tolerance.learning_rate_factor(state.step)
    return learning_rate_factor(state.step, total)


def _finished(state: TrainState, total: int) -> bool:
    ended = state.tolerance is not None and state.tolerance.outcome is not None
    return ended or state.step >= total


def _check(state: TrainState, stopping: Stopping) -> IntervalCheck | None:
    """The kind's interval check, every ``stopping.check_every`` steps; a run to a tolerance
    decides on it (every rank reads the same sample, so all reach the same verdict)."""
    monitor = stopping.monitor
    if monitor is None or not is_check_step(state.step, stopping.check_every):
        return None
    check = monitor(state)
    if state.tolerance is not None:
        state.tolerance.record(check)
    return check


def _close_tolerance(state: TrainState, total: int, stopping: Stopping) -> None:
    """Why a run to a tolerance ended, when no check ended it."""
    tolerance = state.tolerance
    if tolerance is None or tolerance.outcome is not None:
        return
    if state.step >= total:
        tolerance.outcome = BUDGET
    elif stopping.timed_out() and not stopping.requested():
        tolerance.outcome = TIME


def _snapshot(
    state: TrainState,
    loss_value: float,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    check: IntervalCheck | None,
    on_progress: ProgressHook | None,
) -> None:
    snap = Snapshot(
        state.step,
        loss_value,
        state.shift,
        objective.values(state),
        state.elapsed,
        optimizer.param_groups[0]["lr"],
    )
    if check is not None:
        snap.widths, snap.residuals = list(check.widths), list(check.residuals)
    state.history.append(snap)
    if on_progress is not None:
        on_progress(state, loss_value)


