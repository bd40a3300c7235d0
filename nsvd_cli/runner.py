"""The steps behind the commands: solve a problem into a run folder, reload a run, compare it
with its reference, sample its eigenfunctions on a grid. No printing: the CLI does that."""

from __future__ import annotations

import contextlib
import copy
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__, metrics
from . import grid_reference as grid
from .batch import evaluate_batch, sample_modes
from .derivatives import hutchinson_variance
from .distributed import LOCAL, Context
from .guard import check_readout
from .io import (
    CHECKPOINT_NAME,
    RESULTS_NAME,
    GridReference,
    Results,
    RunFileError,
    RunFileWarning,
    SingularArrays,
    load_checkpoint,
    network_state,
    read_results,
    remove_stale_temporaries,
    run_lock,
    set_aside_previous_run,
    write_results,
)
from .methods import get_method
from .problem import CompiledProblem, Settings, build, derive_settings, region_field
from .readout import (
    Ritz,
    normalized_gram,
    orthogonality,
    ritz,
    ritz_squared,
    unit_coefficients,
)
from .reference import (
    degenerate_levels,
    eigenfunction_callable,
    level_states,
    singular_function_callable,
)
from .run_logs import MetricsCsv, TensorBoardLog, TrainingLog
from .run_record import (
    EVAL_SEED_OFFSET,
    Run,
    Session,
    against_fields,
    build_results,
    checkpoint_hook,
    comparison_reference,
    first_line,
    reference_record,
    run_training,
)
from .singular import derive_singular_settings
from .singular_runner import (
    evaluate_singular,
    load_singular,
    quadrature_reference,
    solve_singular,
)
from .spec import Problem, parse_problem
from .train import ProgressHook, TrainState


def prepare(problem: Problem, steps: int | None = None, seed: int | None = None) -> Settings:
    derive = derive_singular_settings if problem.is_singular else derive_settings
    settings = derive(problem)
    if steps is not None:
        settings.steps = steps
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
        settings.steps = steps
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
) -> tuple[Results | None, bool]:
    """Train (or continue) and write RUN_DIR/results.h5. Returns (results, complete); in a
    distributed job only rank 0 writes files and returns results (the others: None).
    Rank 0 logs every recorded step to RUN_DIR/metrics.csv (and, with ``tensorboard``, to
    RUN_DIR/tensorboard/).

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
                logs = _training_logs(problem, run_dir, tensorboard)
                for log in logs:
                    stack.callback(log.close)
                on_progress = _chain(on_progress, *logs)
            except RunFileError as exc:
                failure = str(exc)
        failure = context.broadcast_object(failure)  # every rank stops, or none
        if failure is not None:
            raise RunFileError(failure)
        return _solve(problem, settings, run_dir, device, resume, on_progress, stop, context)
    raise AssertionError("unreachable")  # ExitStack does not swallow exceptions


def _training_logs(problem: Problem, run_dir: Path, tensorboard: bool) -> list[TrainingLog]:
    symbol = "s" if problem.singular_values_wanted else "E"
    logs: list[TrainingLog] = [MetricsCsv(run_dir, problem.modes, symbol)]
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
    stop: Callable[[], bool],
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
    session = Session(run_dir, device, resume, on_progress, stop, checkpoint, context)
    if problem.is_singular:
        return solve_singular(problem, settings, session)
    compiled = build(problem, settings)
    state, complete = run_training(compiled, session)
    if not context.main:
        return None, complete
    ritz_result, native = readout(compiled, state.network, settings, state.shift)
    if complete:  # an interrupted run's values are written as they are, marked incomplete
        what = "singular value" if settings.want == "smallest-singular" else "eigenvalue"
        check_readout(ritz_result.eigenvalues, ritz_result.gram, what)
    results = build_results(problem, settings, state, ritz_result, device, complete)
    results.native = native
    if settings.want == "smallest-singular":
        results.singular = SingularArrays(results.eigenvalues, results.stderr)
        results.attrs["kind"] = "smallest-singular"
    if settings.derivatives == "hutchinson" and settings.want == "lowest":
        results.attrs["hutchinson_relative_variance"] = hutchinson_report(compiled, state.network)
    write_results(run_dir / RESULTS_NAME, results)
    return results, complete


def readout(
    compiled: CompiledProblem, network: torch.nn.Module, settings: Settings, shift: float
) -> tuple[Ritz, np.ndarray]:
    """Rayleigh-Ritz in float64 on a fresh sample that training never saw, and the method's
    own estimate of each learned function's energy on the same sample."""
    net64 = copy.deepcopy(network).double()
    device = next(net64.parameters()).device
    gen = torch.Generator(device=device).manual_seed(settings.seed + EVAL_SEED_OFFSET)
    batch = sample_modes(compiled, net64, settings.eval_samples, gen)
    n = batch.h.shape[0]
    if settings.want == "smallest-singular":
        r = ritz_squared(batch.h, batch.hh)
        square = batch.hh.T @ batch.hh / n
        native = native_energies(settings.method, shift, settings.scale, r.gram, square)
        return r, native.clamp_min(0.0).sqrt().cpu().numpy()
    r = ritz(batch.h, batch.hh)
    energy = batch.h.T @ batch.hh / n
    native = native_energies(settings.method, shift, settings.scale, r.gram, energy)
    return r, native.cpu().numpy()


def native_energies(
    method: str, shift: float, scale: float, gram: torch.Tensor, energy: torch.Tensor
) -> torch.Tensor:
    """The method's reading of T's eigenvalues, mapped back to H: E = shift - lambda / scale."""
    t = scale * (shift * gram - 0.5 * (energy + energy.T))
    return shift - get_method(method).native_eigenvalues(gram, t) / scale


def hutchinson_report(compiled: CompiledProblem, network: torch.nn.Module) -> float:
    """Relative variance of the trained network's Hutchinson Laplacian (per point and draw)."""
    s = compiled.settings
    p = next(network.parameters())
    gen = torch.Generator(device=p.device).manual_seed(s.seed + EVAL_SEED_OFFSET + 1)
    x = compiled.sampler.to(p.device, p.dtype).sample(s.batch_size, gen)
    return hutchinson_variance(network, x, s.hutchinson_probes, gen)


def load_run(run_dir: Path) -> Run:
    path = run_dir / RESULTS_NAME if run_dir.is_dir() else run_dir
    results = read_results(path)
    problem = parse_problem(results.problem_yaml, str(path) + ":/problem/yaml")
    try:
        settings = Settings.from_dict(results.settings)
        if problem.is_singular:
            return load_singular(problem, settings, results, network_state(results.network))
        compiled = build(problem, settings)
        network = compiled.make_network().double()
        network.load_state_dict(network_state(results.network))
    except (RuntimeError, TypeError, ValueError, KeyError) as exc:
        raise RunFileError(
            f"{path}: its stored network and settings do not fit its problem "
            f"({first_line(exc)}); was the file edited or written by another program?"
        ) from exc
    network.eval()
    return Run(problem, compiled, network, results)


def ritz_functions(run: Run, x: torch.Tensor) -> torch.Tensor:
    """The learned eigenfunctions psi_l(x), unit L2 norm, ordered as run's eigenvalues."""
    sampler = run.compiled.sampler
    with torch.no_grad():
        h = run.network(x)
        b = run.compiled.boundary_jet(x)
        if b is not None:
            h = h * b.value.unsqueeze(-1)
        u = h @ unit_coefficients(run.results.rotation, run.results.gram)
        amplitude = torch.exp(sampler.log_amplitude(x) - 0.5 * sampler.log_volume)
        return u * amplitude.unsqueeze(-1)


DEFAULT_GRID = {1: 2048, 2: 192, 3: 40}


def grid_reference(problem: Problem, points: int | None = None, extra: int = 4) -> GridReference:
    """The finite-difference spectrum of a problem (d <= 3), ``modes + extra`` values."""
    dim = len(problem.coordinates)
    if problem.is_singular:
        return quadrature_reference(problem, points, extra)
    grid.check_dimension(dim)  # before deriving settings, which samples the potential
    settings = derive_settings(problem)
    compiled = build(problem, settings)
    if settings.domain == "whole-space":
        # 1.5x the export window (centre +- 6 rms radii of the highest wanted state).
        centre = [0.5 * (lo + hi) for lo, hi in zip(settings.export_lo, settings.export_hi)]
        lo = [c + 1.5 * (v - c) for c, v in zip(centre, settings.export_lo)]
        hi = [c + 1.5 * (v - c) for c, v in zip(centre, settings.export_hi)]
    else:
        lo, hi = settings.bounds_lo, settings.bounds_hi

    def numpy_field(field: Callable[[torch.Tensor], torch.Tensor]) -> grid.PointField:
        def call(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return field(torch.from_numpy(x)).numpy()

        return call

    inside = numpy_field(region_field(problem)) if settings.domain == "region" else None
    drift = compiled.operator.drift
    spec = grid.GridProblem(
        kinetic=compiled.operator.kinetic,
        potential=numpy_field(compiled.operator.potential),
        lo=tuple(lo),
        hi=tuple(hi),
        inside=inside,
        drift=None if drift is None else numpy_field(drift),
        singular=problem.wanted == "smallest-singular",
    )
    n = points or DEFAULT_GRID[dim]
    started = time.perf_counter()
    spectrum = grid.solve(spec, problem.modes + extra, n)
    return reference_record(
        problem,
        spectrum,
        "finite differences, 4th order, ARPACK shift-invert"
        + (" on [[0, A], [A^T, 0]] (singular values)" if spec.singular else ""),
        "smallest-singular" if spec.singular else "eigen",
        started,
        window_lo=json.dumps(list(lo)),
        window_hi=json.dumps(list(hi)),
    )


def evaluate(
    run: Run, samples: int = 1 << 16, against: GridReference | None = None
) -> dict[str, Any]:
    """The comparison of ``nsvd eval``: errors, orthogonality and subspace distances, against
    the problem's closed form or, with ``against``, a grid reference's eigenvalues."""
    if run.problem.is_singular:
        return evaluate_singular(run, samples, against)
    reference = comparison_reference(run, against)
    learned = np.asarray(run.results.eigenvalues, dtype=np.float64)
    rel = metrics.relative_errors(learned, reference)
    gram = torch.from_numpy(run.results.gram)
    out: dict[str, Any] = {
        "problem": run.problem.name,
        "method": str(run.results.settings.get("method", "neuralsvd-sequential")),
        "eigenvalues": learned.tolist(),
        "stderr": np.asarray(run.results.stderr).tolist(),
        "reference": reference.tolist(),
        "relative_errors": rel.tolist(),
        "max_relative_error": float(rel.max()),
        "mean_relative_error": float(rel.mean()),
        "orthogonality": orthogonality(gram),
        "normalized_gram": normalized_gram(gram).tolist(),
        "subspace_distance": None,
        "subspace_distances": None,
        "native_eigenvalues": None,
        "native_relative_errors": None,
        "steps": int(run.results.attrs.get("steps", 0)),
        "train_seconds": float(run.results.attrs.get("train_seconds", float("nan"))),
        "kind": "eigen",
    }
    if run.problem.wanted == "smallest-singular":
        # The values are singular values of A = H + b . grad, ascending (mode order).
        out["kind"] = "smallest-singular"
        out["singular_values"] = out["eigenvalues"]
        out["reference_singular_values"] = out["reference"]
    if run.results.native is not None:
        native = np.asarray(run.results.native, dtype=np.float64)
        out["native_eigenvalues"] = native.tolist()
        out["native_relative_errors"] = metrics.relative_errors(native, reference).tolist()
    out.update(against_fields(against, reference))
    # The network holds the eigenfunctions, or the right singular functions v_l of A; its
    # left ones are u_l = A v_l / s_l.
    sides = ("right", "left") if run.problem.singular_values_wanted else ("eigen",)
    found = (
        {}
        if against is not None
        else {k: _level_distances(run, reference, samples, k) for k in sides}
    )
    distances = found.get(sides[0])
    out["subspace_distance_all"] = None
    out["angle_distances"] = None
    out["angle_distance"] = None
    if distances is not None:
        per_level, whole, angles = distances
        out["subspace_distances"] = per_level
        out["subspace_distance"] = float(np.mean(per_level))
        out["subspace_distance_all"] = whole
        out["angle_distances"] = angles
        out["angle_distance"] = float(np.mean(angles))
    for side in ("left", "right"):
        if side in sides:
            result = found.get(side)
            out[f"{side}_subspace_distance"] = None if result is None else float(np.mean(result[0]))
    if run.problem.singular_values_wanted:
        out["right_orthogonality"] = out["orthogonality"]
        out["left_orthogonality"] = _left_orthogonality(run, samples)
        out["orthogonality"] = max(out["right_orthogonality"], out["left_orthogonality"])
    return out


def _left_orthogonality(run: Run, samples: int) -> float:
    """Orthogonality of the left functions u = A v / s, on fresh points of the sampler."""
    sampler = run.compiled.sampler
    gen = torch.Generator().manual_seed(run.compiled.settings.seed + 3 * EVAL_SEED_OFFSET)
    x = sampler.sample(samples, gen)
    inv_sqrt_p = torch.exp(-sampler.log_amplitude(x) + 0.5 * sampler.log_volume)
    u = left_functions(run, x) * inv_sqrt_p.unsqueeze(-1)
    return orthogonality(u.T @ u / u.shape[0])


def left_functions(run: Run, x: torch.Tensor) -> torch.Tensor:
    """For the smallest singular values of A: u_l = A v_l / s_l at x (unit L2 norm), with
    v_l the learned right functions (``ritz_functions``); exact derivatives."""
    sampler = run.compiled.sampler
    batch = evaluate_batch(run.compiled, sampler, run.network, x)
    coefficients = unit_coefficients(run.results.rotation, run.results.gram)
    s = torch.from_numpy(np.asarray(run.results.eigenvalues))
    amplitude = torch.exp(sampler.log_amplitude(x) - 0.5 * sampler.log_volume)
    return batch.hh @ coefficients / s * amplitude.unsqueeze(-1)


def _level_distances(
    run: Run, reference: np.ndarray, samples: int, side: str
) -> tuple[list[float], float, list[float]] | None:
    """Subspace distances per degenerate level ("avg" in the paper) and for the whole learned
    span ("all"), and each mode's angle to its Procrustes-aligned reference state; ``side``
    is "eigen" (eigenfunctions) or "right" / "left" (singular functions of A)."""
    problem = run.problem
    levels = degenerate_levels(reference)
    states = [level_states(problem, float(reference[idx[0]])) for idx in levels]
    if side == "eigen":
        funcs = [[eigenfunction_callable(problem, s) for s in group] for group in states]
    else:
        funcs = [[singular_function_callable(problem, s, side) for s in g] for g in states]
    if any(f is None for group in funcs for f in group):
        return None
    sampler = run.compiled.sampler
    gen = torch.Generator().manual_seed(run.compiled.settings.seed + 2 * EVAL_SEED_OFFSET)
    x = sampler.sample(samples, gen)
    # Sample-frame values: function / sqrt(p), so plain means are L2(dx) inner products.
    inv_sqrt_p = torch.exp(-sampler.log_amplitude(x) + 0.5 * sampler.log_volume).numpy()
    values = left_functions(run, x) if side == "left" else ritz_functions(run, x)
    learned = values.numpy() * inv_sqrt_p[:, None]
    xs = x.numpy()
    # A level cut by the number of modes is compared with its whole reference span.
    blocks = [np.stack([f(xs) for f in group], axis=1) * inv_sqrt_p[:, None] for group in funcs]
    return metrics.level_distances(learned, levels, blocks)


def grid_axes(run: Run, points: int) -> dict[str, np.ndarray]:
    s = run.compiled.settings
    return {
        name: np.linspace(lo, hi, points)
        for name, lo, hi in zip(run.problem.coordinates, s.export_lo, s.export_hi)
    }


def export_grid(
    run: Run,
    points: int,
    chunk: int = 65536,
    functions: Callable[[Run, torch.Tensor], torch.Tensor] = ritz_functions,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Learned eigenfunctions (or other ``functions`` of the run, such as the left singular
    functions) on a regular grid: values of shape (modes, N, ..., N)."""
    axes = grid_axes(run, points)
    mesh = np.meshgrid(*axes.values(), indexing="ij")
    pts = torch.from_numpy(np.stack([m.ravel() for m in mesh], axis=1))
    values = torch.cat([functions(run, pts[i : i + chunk]) for i in range(0, len(pts), chunk)])
    region = run.compiled.problem.region_expr()
    if region is not None and run.compiled.boundary is not None:
        inside = run.compiled.boundary(pts).value > 0
        values = values * inside.unsqueeze(-1)
    shape = (run.problem.modes,) + tuple(len(a) for a in axes.values())
    return axes, values.T.reshape(shape).numpy()
