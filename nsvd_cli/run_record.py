"""What a finished run is made of: the reloaded run, and the results record of a training.

Shared by the eigenproblem and singular-problem runners (``runner``, ``singular_runner``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__, metrics
from .distributed import LOCAL, Context, rank_seed
from .grid_reference import GridSpectrum
from .io import (
    CHECKPOINT_NAME,
    GridReference,
    Results,
    RunFileError,
    load_checkpoint,
    network_arrays,
    save_checkpoint,
)
from .problem import Settings
from .readout import Ritz
from .reference import reference_eigenvalues
from .spec import Problem
from .train import Objective, ProgressHook, Trainable, TrainState, init_state, train

EVAL_SEED_OFFSET = 1_000_003


@dataclass
class Run:
    """A finished run reloaded from its results file."""

    problem: Problem
    compiled: Any  # CompiledProblem or CompiledSingular
    network: torch.nn.Module  # float64, CPU
    results: Results


def build_results(
    problem: Problem,
    settings: Settings,
    state: TrainState,
    r: Ritz,
    device: torch.device,
    complete: bool,
) -> Results:
    modes = problem.modes
    hist = state.history

    def padded(values: list[float]) -> list[float]:
        return (values + [float("nan")] * modes)[:modes]

    history = {
        "step": np.array([s.step for s in hist], dtype=np.int64),
        "loss": np.array([s.loss for s in hist], dtype=np.float64),
        "shift": np.array([s.shift for s in hist], dtype=np.float64),
        "elapsed": np.array([s.elapsed for s in hist], dtype=np.float64),
        "learning_rate": np.array([s.learning_rate for s in hist], dtype=np.float64),
        "eigenvalues": np.array([padded(s.eigenvalues) for s in hist], dtype=np.float64).reshape(
            len(hist), modes
        ),
    }
    attrs: dict[str, Any] = {
        "nsvd_version": __version__,
        "torch_version": str(torch.__version__),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "seed": settings.seed,
        "steps": state.step,
        "steps_planned": settings.steps,
        "method": settings.method,
        "train_seconds": state.elapsed,
        "complete": complete,
        "shift": state.shift,
        "scale": settings.scale,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "problem_name": problem.name,
        "coordinates": json.dumps(list(problem.coordinates)),
        # Non-finite steps undone (guard.py): how many, the learning-rate factor they left.
        "rollbacks": state.rollbacks,
        "learning_rate_scale": state.lr_scale,
        "divergences": json.dumps(state.divergences),
    }
    return Results(
        eigenvalues=r.eigenvalues.cpu().numpy(),
        stderr=r.stderr.cpu().numpy(),
        problem_yaml=problem.source_text,
        settings=settings.to_dict(),
        network=network_arrays(state.network.state_dict()),
        rotation=r.rotation.cpu().numpy(),
        gram=r.gram.cpu().numpy(),
        quotients=r.quotients.cpu().numpy(),
        history=history,
        attrs=attrs,
    )


def comparison_reference(run: Run, against: GridReference | None) -> np.ndarray:
    """The values ``nsvd eval`` compares with, in mode order: the first ``modes`` of a grid
    reference, else the problem's closed form."""
    modes = run.problem.modes
    if against is not None:
        if len(against.eigenvalues) < modes:
            raise RunFileError(
                f"the reference holds {len(against.eigenvalues)} values, the run {modes} modes"
            )
        return np.asarray(against.eigenvalues[:modes], dtype=np.float64)
    reference = reference_eigenvalues(run.problem)
    if reference is None:
        raise RunFileError(
            f"problem {run.problem.name!r} has no reference to compare with; compute one with"
            " `nsvd reference PROBLEM` and pass it to `nsvd eval --against FILE`"
        )
    return reference


def against_fields(against: GridReference | None, reference: np.ndarray) -> dict[str, Any]:
    """``reference_error`` (the grid's own estimate, relative) and ``reference_reliable``."""
    if against is None:
        return {"reference_error": None, "reference_reliable": None}
    modes = len(reference)
    err = np.asarray(against.error[:modes], dtype=np.float64)
    reliable = json.loads(str(against.attrs.get("reliable", "null")))
    return {
        "reference_error": metrics.relative_errors(err + reference, reference).tolist(),
        "reference_reliable": None if reliable is None else reliable[:modes],
    }


def reference_record(
    problem: Problem,
    spectrum: GridSpectrum,
    method: str,
    kind: str,
    started: float,
    **extra: str,
) -> GridReference:
    """A grid or quadrature spectrum as the file ``nsvd reference`` writes."""
    attrs = {
        "nsvd_version": __version__,
        "method": method,
        "kind": kind,
        "points": json.dumps(list(spectrum.points)),
        **extra,
        "observed_order": json.dumps(spectrum.order.tolist()),
        "reliable": json.dumps([bool(v) for v in spectrum.reliable]),
        "seconds": time.perf_counter() - started,
        "problem_name": problem.name,
    }
    return GridReference(spectrum.eigenvalues, spectrum.error, problem.source_text, attrs)


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


def run_training(
    compiled: Trainable, session: Session, objective: Objective | None = None
) -> tuple[TrainState, bool]:
    """Start or resume, train to ``settings.steps`` (or a stop), write the final checkpoint;
    return the state and whether the run is complete."""
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
    )
    session.checkpoint(state)
    return state, state.step >= compiled.settings.steps


def start_state(
    compiled: Trainable, device: torch.device, run_dir: Path, resume: bool, context: Context
) -> TrainState:
    """A fresh training state (this rank's sampler stream), or the run's checkpoint."""
    state = init_state(compiled, device)
    state.generator.manual_seed(rank_seed(compiled.settings.seed, context))
    if resume:
        restore(state, run_dir, context)
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
        raise RunFileError(
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


def first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split("\n")[:2])
    return " ".join(text.split())[:300]
