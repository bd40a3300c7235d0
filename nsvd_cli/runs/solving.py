"""``nsvd solve`` without the printing: settings, the run folder, training, results.h5.

The same path for every kind of operator: the problem's kind builds the operator and its
objective, the training loop runs under this module's session (checkpoints, logs, stop
requests), and the kind reads the trained networks out into a results record.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nsvd_cli import __version__
from nsvd_cli.errors import RunFileError, UnsupportedOption
from nsvd_cli.files import (
    CHECKPOINT_NAME,
    RESULTS_NAME,
    Results,
    RunFileWarning,
    load_checkpoint,
    remove_stale_temporaries,
    run_lock,
    set_aside_previous_run,
    write_results,
)
from nsvd_cli.kinds import Kind, kind_of
from nsvd_cli.runs.logs import MetricsCsv, TensorBoardLog, TrainingLog
from nsvd_cli.runs.record import Session, checkpoint_hook, run_training
from nsvd_cli.spec import Problem
from nsvd_cli.training import LOCAL, Context, ProgressHook, Settings, TrainState
from nsvd_cli.training.loop import Monitor
from nsvd_cli.training.tolerance import BUDGET_FACTOR, BUFFER_MODES


def prepare(
    problem: Problem, steps: int | None = None, seed: int | None = None, tol: float | None = None
) -> Settings:
    """The settings a fresh run of ``problem`` uses (derived by its kind). A run to a
    tolerance (``tol``, or the file's ``solver.tol``) gets ``BUDGET_FACTOR`` times the
    default step count as its budget unless the steps are given, and trains
    ``BUFFER_MODES`` functions above the wanted modes (where its kind can check a tolerance;
    elsewhere the tolerance is refused later)."""
    kind = kind_of(problem)
    settings = kind.derive_settings(problem)
    if tol is not None:
        settings.optimiser.tol = tol
    if settings.optimiser.tol is not None:
        if problem.solver.steps is None:
            settings.optimiser.steps *= BUDGET_FACTOR
        if kind.options.tol:
            settings.network.buffer_modes = BUFFER_MODES
    if steps is not None:
        settings.optimiser.steps = steps
    if seed is not None:
        settings.seed = seed
    return settings


def resume_settings(run_dir: Path, problem: Problem, steps: int | None = None) -> Settings:
    """The settings a checkpointed run was started with (``steps`` may extend it)."""
    payload = load_checkpoint(run_dir)
    if payload.get("problem_yaml") != problem.source_text:
        if not isinstance(payload.get("problem_yaml"), str) or "settings" not in payload:
            raise RunFileError(f"{run_dir / CHECKPOINT_NAME}: not an nsvd checkpoint")
        raise RunFileError(
            f"{run_dir / 'checkpoint.pt'}: the checkpoint belongs to a different problem file;"
            " resume with the file the run was started from"
        )
    settings = Settings.from_dict(payload["settings"])
    if steps is not None:
        settings.optimiser.steps = steps
    return settings


def solve(
    problem: Problem,
    settings: Settings,
    run_dir: Path,
    device: torch.device,
    resume: bool = False,
    on_progress: Callable[[TrainState, float], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
    context: Context = LOCAL,
    tensorboard: bool = False,
    max_time: float | None = None,
) -> tuple[Results | None, bool]:
    """Train (or continue) and write RUN_DIR/results.h5. Returns (results, complete); in a
    distributed job only rank 0 writes files and returns results (the others: None).
    Rank 0 logs every recorded step to RUN_DIR/metrics.csv (and, with ``tensorboard``, to
    RUN_DIR/tensorboard/). A run to a tolerance (``settings.optimiser.tol``) also ends after
    ``max_time`` seconds of this call's training.

    A fresh run in a folder that holds an earlier one first moves that one's files aside
    (``RunFileWarning``); temporaries left by a killed writer are deleted.
    """
    with contextlib.ExitStack() as stack:
        failure = None
        if context.main:
            try:
                _make_folder(run_dir)
                # Locked before anything in the folder is touched: a second solve on a
                # folder in use is refused without moving the running job's files.
                stack.enter_context(run_lock(run_dir))
                _prepare_folder(run_dir, resume)
                checks = kind_of(problem).options.tol  # the kinds with interval checks
                logs = _training_logs(problem, run_dir, tensorboard, checks)
                for log in logs:
                    stack.callback(log.close)
                on_progress = _chain(on_progress, *logs)
            except RunFileError as exc:
                failure = str(exc)
        failure = context.broadcast_object(failure)  # every rank stops, or none
        if failure is not None:
            raise RunFileError(failure)
        limits = Limits(stop, max_time)
        return _solve(problem, settings, run_dir, device, resume, on_progress, limits, context)
    raise AssertionError("unreachable")  # ExitStack does not swallow exceptions


@dataclass(frozen=True)
class Limits:
    """What ends training early: a stop request, and (runs to a tolerance) a time limit."""

    stop: Callable[[], bool]
    max_time: float | None = None


def interval_monitor(kind: Kind, compiled: Any, settings: Settings) -> Monitor | None:
    """The kind's interval check during training: what a run to a tolerance decides on (an
    error where there can be none), and what any other run shows where its kind has one."""
    if settings.optimiser.tol is None and not kind.options.tol:
        return None
    try:
        return kind.monitor(compiled)
    except ValueError as exc:
        if settings.optimiser.tol is None:
            return None  # no intervals for this problem: nothing to show
        raise UnsupportedOption(f"solver.tol: {exc}") from None


def _training_logs(
    problem: Problem, run_dir: Path, tensorboard: bool, checks: bool
) -> list[TrainingLog]:
    symbol = kind_of(problem).symbol
    logs: list[TrainingLog] = [MetricsCsv(run_dir, problem.modes, symbol, checks)]
    if tensorboard:
        logs.append(TensorBoardLog(run_dir, symbol))
    return logs


def _chain(*hooks: ProgressHook | None) -> ProgressHook:
    present = [h for h in hooks if h is not None]

    def call(state: TrainState, loss: float) -> None:
        for hook in present:
            hook(state, loss)

    return call


def _make_folder(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFileError(f"{run_dir}: cannot create the run folder ({exc.strerror})") from exc


def _prepare_folder(run_dir: Path, resume: bool) -> None:
    remove_stale_temporaries(run_dir)
    if not resume and (aside := set_aside_previous_run(run_dir)) is not None:
        warnings.warn(
            f"{run_dir} held an earlier run; its files were moved to {aside}",
            RunFileWarning,
            stacklevel=3,
        )


def _solve(
    problem: Problem,
    settings: Settings,
    run_dir: Path,
    device: torch.device,
    resume: bool,
    on_progress: Callable[[TrainState, float], None] | None,
    limits: Limits,
    context: Context,
) -> tuple[Results | None, bool]:
    def payload(s: TrainState) -> dict[str, Any]:
        return {
            "problem_yaml": problem.source_text,
            "settings": settings.to_dict(),
            "train": s.state_dict(),
            "version": __version__,
            "world_size": context.world,
        }

    checkpoint = checkpoint_hook(run_dir, payload, context)
    kind = kind_of(problem)
    compiled = kind.build(problem, settings)
    objective = kind.objective(compiled, device, context)
    monitor = interval_monitor(kind, compiled, settings)
    deadline = None if limits.max_time is None else time.perf_counter() + limits.max_time
    session = Session(
        run_dir, device, resume, on_progress, limits.stop, checkpoint, context, monitor, deadline
    )
    state, complete = run_training(compiled, session, objective)
    if not context.main:
        return None, complete
    results = kind.record(compiled, state, device, complete)
    write_results(run_dir / RESULTS_NAME, results)
    return results, complete
