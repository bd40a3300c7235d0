"""The results record of a training and the file of a reference spectrum, as the kinds
build them (the files layer writes them)."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import torch

from nsvd_cli import __version__
from nsvd_cli.files import GridReference, IntervalArrays, Results, network_arrays
from nsvd_cli.objectives.intervals import Intervals
from nsvd_cli.objectives.readout import Ritz
from nsvd_cli.references.grid import GridSpectrum
from nsvd_cli.spec import Problem
from nsvd_cli.training.settings import Settings
from nsvd_cli.training.state import TrainState


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
        "steps_planned": settings.optimiser.steps,
        "method": settings.method,
        "train_seconds": state.elapsed,
        "complete": complete,
        "shift": state.shift,
        "scale": settings.transform.scale,
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


def first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split("\n")[:2])
    return " ".join(text.split())[:300]


def interval_arrays(intervals: Intervals, negated: bool = False) -> IntervalArrays:
    """Intervals as stored, in the intervals' mode order; ``negated``: they were formed for
    -s (the largest singular values as the lowest eigenvalues of -J), so each is flipped
    back to the singular values' side."""
    low, high = intervals.low.cpu().numpy(), intervals.high.cpu().numpy()
    return IntervalArrays(
        low=-high if negated else low,
        high=-low if negated else high,
        residual=intervals.residual.cpu().numpy(),
        residual_stderr=intervals.residual_stderr.cpu().numpy(),
        max_share=intervals.max_share.cpu().numpy(),
        level=intervals.level.cpu().numpy(),
        methods=list(intervals.methods),
        confidence=intervals.confidence,
        reason=intervals.reason,
    )
