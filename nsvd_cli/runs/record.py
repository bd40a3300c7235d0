"""One training session of ``nsvd solve``, whatever the kind: start or resume, train under
the run's hooks, checkpoint (every rank's sampler stream), and restore a checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nsvd_cli.errors import ResumeMismatch, RunFileError
from nsvd_cli.files.atomic import CHECKPOINT_NAME
from nsvd_cli.files.checkpoint import load_checkpoint, save_checkpoint
from nsvd_cli.kinds.records import first_line
from nsvd_cli.training.distributed import LOCAL, Context, rank_seed
from nsvd_cli.training.loop import (
    Monitor,
    Objective,
    ProgressHook,
    Trainable,
    init_state,
    train,
)
from nsvd_cli.training.state import TrainState
from nsvd_cli.training.tolerance import BUDGET, TIME


@dataclass(frozen=True)
class Session:
    """How one ``solve`` trains, whatever the problem: where, on what, and its hooks."""

    run_dir: Path
    device: torch.device
    resume: bool
    on_progress: ProgressHook | None
    stop: Callable[[], bool]
    checkpoint: Callable[[TrainState], None]
    context: Context = LOCAL
    monitor: Monitor | None = None  # a run to a tolerance: the kind's interval check
    deadline: float | None = None  # --max-time, as a time.perf_counter() value


def run_training(
    compiled: Trainable, session: Session, objective: Objective | None = None
) -> tuple[TrainState, bool]:
    """Start or resume, train to ``settings.optimiser.steps`` (or a stop, or a tolerance's
    end), write the final checkpoint; return the state and whether the run is complete."""
    state = start_state(compiled, session.device, session.run_dir, session.resume, session.context)
    train(
        compiled,
        state,
        session.device,
        on_progress=session.on_progress,
        on_checkpoint=session.checkpoint,
        stop=session.stop,
        objective=objective,
        context=session.context,
        monitor=session.monitor,
        deadline=session.deadline,
    )
    session.checkpoint(state)
    ended = state.tolerance is not None and state.tolerance.outcome is not None
    return state, ended or state.step >= compiled.settings.optimiser.steps


def start_state(
    compiled: Trainable, device: torch.device, run_dir: Path, resume: bool, context: Context
) -> TrainState:
    """A fresh training state (this rank's sampler stream), or the run's checkpoint."""
    state = init_state(compiled, device)
    state.generator.manual_seed(rank_seed(compiled.settings.seed, context))
    if resume:
        restore(state, run_dir, context)
        tolerance = state.tolerance
        if tolerance is not None and tolerance.outcome in (BUDGET, TIME):
            tolerance.outcome = None  # resumed with more steps or time: keep checking
    return state


def checkpoint_hook(
    run_dir: Path, payload: Callable[[TrainState], dict[str, Any]], context: Context
) -> Callable[[TrainState], None]:
    """Write RUN_DIR's checkpoint (rank 0) with every rank's sampler state, so that a
    resumed job continues every stream. Called on every rank: it gathers."""

    def checkpoint(state: TrainState) -> None:
        generators = context.gather_objects(state.generator.get_state())
        if context.main:
            data = payload(state)
            if context.active:
                data["generators"] = generators
            save_checkpoint(run_dir, data)

    return checkpoint


def restore(state: TrainState, run_dir: Path, context: Context = LOCAL) -> None:
    """Load the run's newest good checkpoint into ``state``, or say why it does not fit
    (another network, or another number of processes: each rank's sampler stream is in it)."""
    payload = load_checkpoint(run_dir)
    path = run_dir / CHECKPOINT_NAME
    written = int(payload.get("world_size", 1))
    if written != context.world:
        raise ResumeMismatch(
            f"{path}: written by a job of {written} process(es), this one has {context.world}; "
            f"resume with torchrun --nproc-per-node={written} (or as one process when 1), or "
            "start a new run with another --out"
        )
    try:
        state.load_state_dict(payload["train"])
        if context.active:
            state.generator.set_state(payload["generators"][context.rank].cpu())
    except (RuntimeError, TypeError, ValueError, KeyError, IndexError) as exc:
        raise RunFileError(
            f"{path}: does not fit this problem's network and settings ({first_line(exc)})"
        ) from exc
