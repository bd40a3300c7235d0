"""The commands' steps for singular problems (integral operators): train into a run folder,
reload, compare with the reference, sample the singular functions on grids."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from . import metrics, nystrom
from .expr_compile import compile_numpy
from .guard import check_readout
from .io import (
    RESULTS_NAME,
    GridReference,
    Results,
    SingularArrays,
)
from .io import write_results as write_results_file
from .problem import Settings
from .readout import Ritz, orthogonality, unit_coefficients
from .reference import (
    degenerate_levels,
    level_states,
    singular_function_callable,
)
from .run_record import (
    EVAL_SEED_OFFSET,
    Run,
    Session,
    against_fields,
    build_results,
    comparison_reference,
    reference_record,
    run_training,
)
from .singular import (
    EVAL_BLOCK,
    CompiledSingular,
    Side,
    SingularObjective,
    SingularPair,
    SingularReadout,
    build_singular,
    singular_readout,
)
from .spec import BoxDomain, Problem
from .spec_models import GaussianDomain
from .train import TrainState


def solve_singular(
    problem: Problem, settings: Settings, session: Session
) -> tuple[Results | None, bool]:
    compiled = build_singular(problem, settings)
    # Refuses methods without an SVD form.
    objective = SingularObjective(compiled, session.device, session.context)
    state, complete = run_training(compiled, session, objective)
    if not session.context.main:
        return None, complete
    assert isinstance(state.network, SingularPair)
    blocks = max(2, settings.eval_samples // EVAL_BLOCK)
    ro = singular_readout(compiled, state.network, settings.seed + EVAL_SEED_OFFSET, blocks)
    if complete:
        gram = ro.gram_left if ro.gram_left.trace() < ro.gram_right.trace() else ro.gram_right
        check_readout(ro.values, gram, "singular value")
    results = singular_results(problem, settings, state, ro, session.device, complete)
    write_results_file(session.run_dir / RESULTS_NAME, results)
    return results, complete


def singular_results(
    problem: Problem,
    settings: Settings,
    state: TrainState,
    ro: SingularReadout,
    device: torch.device,
    complete: bool,
) -> Results:
    # The version-1 fields hold the left side with the singular values ascending, every
    # per-mode array in that one order; the mode order (largest first) is under /singular_*.
    ascending = Ritz(
        eigenvalues=ro.values.flip(0),
        stderr=ro.stderr.flip(0),
        rotation=ro.left_rotation.flip(1),
        gram=ro.gram_left,
        quotients=ro.native.flip(0),
    )
    results = build_results(problem, settings, state, ascending, device, complete)
    results.native = ro.native.flip(0).cpu().numpy()
    results.singular = SingularArrays(
        values=ro.values.cpu().numpy(),
        stderr=ro.stderr.cpu().numpy(),
        right_rotation=ro.right_rotation.cpu().numpy(),
        right_gram=ro.gram_right.cpu().numpy(),
        cross=ro.cross.cpu().numpy(),
    )
    results.attrs["kind"] = "singular"
    return results


def load_singular(
    problem: Problem, settings: Settings, results: Results, network_state: dict[str, torch.Tensor]
) -> Run:
    compiled = build_singular(problem, settings)
    network = compiled.make_network().double()
    network.load_state_dict(network_state)
    network.eval()
    return Run(problem, compiled, network, results)


def singular_functions(run: Run, side: str, points: torch.Tensor) -> torch.Tensor:
    """The learned left (u_l, at x) or right (v_l, at y) singular functions, unit norm in
    L2 of their side's measure, in mode order."""
    sv = run.results.singular
    assert sv is not None and isinstance(run.network, SingularPair)
    if side == "left":  # the version-1 rotation is ascending: back to mode order
        net, gram = run.network.left, run.results.gram
        rot = run.results.rotation[:, ::-1]
    else:
        net, rot, gram = run.network.right, sv.right_rotation, sv.right_gram
    # The Gram matrix holds L2(measure) products: unit norm in that norm.
    with torch.no_grad():
        return net(points) @ unit_coefficients(rot, gram)


DEFAULT_QUADRATURE = {1: 2048, 2: 48, 3: 12}  # nodes per axis of the finest rule


def _quadrature_measure(
    domain: BoxDomain | GaussianDomain, names: list[str]
) -> nystrom.QuadratureMeasure:
    if isinstance(domain, GaussianDomain):
        return nystrom.QuadratureMeasure(len(names), gaussian_scale=float(domain.gaussian.scale))
    lo = tuple(float(domain.box[c][0]) for c in names)
    hi = tuple(float(domain.box[c][1]) for c in names)
    return nystrom.QuadratureMeasure(len(names), lo, hi)


def quadrature_reference(
    problem: Problem, points: int | None = None, extra: int = 4
) -> GridReference:
    """The Nystrom reference of an integral operator: ``modes + extra`` largest singular
    values (descending) with their estimated errors."""
    dim = max(len(problem.coordinates), len(problem.input_coordinates))
    if dim > nystrom.MAX_DIM:
        raise ValueError(
            f"{dim} coordinates: quadrature references are limited to d <= {nystrom.MAX_DIM}"
        )
    domain, input_domain = problem.domain, problem.input_domain()
    assert isinstance(domain, BoxDomain | GaussianDomain) and input_domain is not None
    kernel_expr = problem.kernel_expr()
    assert kernel_expr is not None
    names = [*problem.coordinates, *problem.input_coordinates]
    kernel = compile_numpy(kernel_expr, names, problem.parameter_values())
    left = _quadrature_measure(domain, list(problem.coordinates))
    right = _quadrature_measure(input_domain, problem.input_coordinates)
    n = points or DEFAULT_QUADRATURE[dim]
    started = time.perf_counter()
    spectrum = nystrom.solve(kernel, left, right, problem.modes + extra, n)
    return reference_record(
        problem,
        spectrum,
        "Nystrom: Gauss-Legendre (box) / Gauss-Hermite (Gaussian) rules, dense SVD",
        "largest-singular",
        started,
    )


def evaluate_singular(
    run: Run, samples: int = 1 << 16, against: GridReference | None = None
) -> dict[str, Any]:
    """``nsvd eval`` for a singular problem: value errors, and per side orthogonality and
    subspace distances against the reference singular functions (closed form only)."""
    sv = run.results.singular
    assert sv is not None
    reference = comparison_reference(run, against)
    learned = np.asarray(sv.values, dtype=np.float64)
    rel = metrics.relative_errors(learned, reference)
    native = np.asarray(run.results.native, dtype=np.float64)[::-1]  # to mode order
    gram_left = torch.from_numpy(run.results.gram)
    gram_right = torch.from_numpy(sv.right_gram)
    out: dict[str, Any] = {
        "problem": run.problem.name,
        "kind": "singular",
        "method": str(run.results.settings.get("method", "neuralsvd-sequential")),
        # Version-1 keys, ascending like an eigenvalue list.
        "eigenvalues": learned[::-1].tolist(),
        "stderr": np.asarray(sv.stderr)[::-1].tolist(),
        "reference": reference[::-1].tolist(),
        "relative_errors": rel[::-1].tolist(),
        "max_relative_error": float(rel.max()),
        "mean_relative_error": float(rel.mean()),
        "orthogonality": max(orthogonality(gram_left), orthogonality(gram_right)),
        "left_orthogonality": orthogonality(gram_left),
        "right_orthogonality": orthogonality(gram_right),
        # Mode order: the largest singular value first.
        "singular_values": learned.tolist(),
        "singular_value_stderr": np.asarray(sv.stderr).tolist(),
        "reference_singular_values": reference.tolist(),
        "singular_value_relative_errors": rel.tolist(),
        "native_singular_values": native.tolist(),
        "native_relative_errors": metrics.relative_errors(native, reference).tolist(),
        "native_eigenvalues": None,
        "subspace_distance": None,
        "subspace_distances": None,
        "subspace_distance_all": None,
        "left_subspace_distance": None,
        "right_subspace_distance": None,
        "angle_distance": None,
        "angle_distances": None,
        **against_fields(against, reference),
        "steps": int(run.results.attrs.get("steps", 0)),
        "train_seconds": float(run.results.attrs.get("train_seconds", float("nan"))),
    }
    if against is not None:  # a grid reference holds no functions
        return out
    sides = {side: _side_distances(run, reference, side, samples) for side in ("left", "right")}
    if all(v is not None for v in sides.values()):
        left, right = sides["left"], sides["right"]
        assert left is not None and right is not None
        out["left_subspace_distance"] = float(np.mean(left[0]))
        out["right_subspace_distance"] = float(np.mean(right[0]))
        out["subspace_distances"] = [0.5 * (a + b) for a, b in zip(left[0], right[0])]
        out["subspace_distance"] = float(np.mean(out["subspace_distances"]))
        out["subspace_distance_all"] = 0.5 * (left[1] + right[1])
        out["angle_distances"] = [0.5 * (a + b) for a, b in zip(left[2], right[2])]
        out["angle_distance"] = float(np.mean(out["angle_distances"]))
    return out


def _side_distances(
    run: Run, reference: np.ndarray, side: str, samples: int
) -> tuple[list[float], float, list[float]] | None:
    problem = run.problem
    levels = degenerate_levels(reference)
    states = [level_states(problem, float(reference[idx[0]])) for idx in levels]
    funcs = [[singular_function_callable(problem, s, side) for s in group] for group in states]
    if any(f is None for group in funcs for f in group):
        return None
    compiled: CompiledSingular = run.compiled
    measure = compiled.operator.left if side == "left" else compiled.operator.right
    offset = 2 * EVAL_SEED_OFFSET + (0 if side == "left" else 1)
    gen = torch.Generator().manual_seed(compiled.settings.seed + offset)
    x = measure.sampler.sample(samples, gen)
    # Sample-frame values (times sqrt of the importance weight): plain means are L2 products.
    root_w = measure.weights(x).sqrt().numpy()[:, None]
    learned = singular_functions(run, side, x).numpy() * root_w
    xs = x.numpy()
    blocks = [np.stack([f(xs) for f in group], axis=1) * root_w for group in funcs]
    return metrics.level_distances(learned, levels, blocks)


def _axes(side: Side, points: int) -> dict[str, np.ndarray]:
    return {
        name: np.linspace(lo, hi, points)
        for name, lo, hi in zip(side.coordinates, side.window_lo, side.window_hi)
    }


def export_singular(
    run: Run, points: int, chunk: int = 65536
) -> tuple[dict[str, tuple[dict[str, np.ndarray], np.ndarray]], np.ndarray]:
    """Left and right singular functions on regular grids over each side's domain (a
    Gaussian measure: +- 4 standard deviations): {"left": (axes, values), "right": ...}."""
    compiled: CompiledSingular = run.compiled
    out = {}
    for side, geometry in (("left", compiled.left), ("right", compiled.right)):
        axes = _axes(geometry, points)
        mesh = np.meshgrid(*axes.values(), indexing="ij")
        pts = torch.from_numpy(np.stack([m.ravel() for m in mesh], axis=1))
        vals = torch.cat(
            [singular_functions(run, side, pts[i : i + chunk]) for i in range(0, len(pts), chunk)]
        )
        shape = (run.problem.modes,) + tuple(len(a) for a in axes.values())
        out[side] = (axes, vals.T.reshape(shape).numpy())
    sv = run.results.singular
    assert sv is not None
    return out, np.asarray(sv.values)
