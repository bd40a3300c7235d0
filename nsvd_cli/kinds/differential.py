"""What the two differential kinds share (eigen: the lowest eigenpairs of
H = -kappa Laplacian + V; drift: the smallest singular values of H + b . grad): one network,
the Rayleigh-Ritz read-out, the learned functions, and the finite-difference reference.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import cast

import numpy as np
import torch

from nsvd_cli.files import IntervalArrays, Results, SingularArrays
from nsvd_cli.kinds.base import EVAL_SEED_OFFSET, FunctionSide, Kind, Run
from nsvd_cli.kinds.records import build_results, interval_arrays
from nsvd_cli.kinds.schrodinger import CompiledProblem
from nsvd_cli.numerics.derivatives import hutchinson_variance
from nsvd_cli.numerics.media import Medium
from nsvd_cli.numerics.networks import ModeNetwork
from nsvd_cli.numerics.weyl import limit_at_infinity, residual_diverges
from nsvd_cli.objectives.batch import (
    Batch,
    evaluate_batch,
    exact_points,
    planned_rule,
    quadrature_modes,
    sample_modes,
)
from nsvd_cli.objectives.intervals import (
    Intervals,
    gap_above,
    residual_intervals,
    unavailable,
)
from nsvd_cli.objectives.methods import get_method
from nsvd_cli.objectives.readout import (
    Ritz,
    orthogonality,
    ritz,
    ritz_squared,
    unit_coefficients,
    without_stderr,
)
from nsvd_cli.spec import Problem
from nsvd_cli.training.guard import check_readout
from nsvd_cli.training.loop import Monitor
from nsvd_cli.training.settings import Settings
from nsvd_cli.training.state import TrainState
from nsvd_cli.training.tolerance import (
    IntervalCheck,
    check_samples,
    explain,
    needs_closer_look,
    widest,
)

NO_MATRIX_INTERVALS = (
    "residual bounds need H u, which with a matrix diffusion takes every second derivative "
    "of the functions; a matrix diffusion is trained and read out in the weak form only"
)
NO_JUMP_INTERVALS = (
    "residual bounds need H u, which across a jump of the diffusion (a Piecewise, Heaviside, "
    "sign, floor or ceiling of the coordinates) holds a delta; such a diffusion is trained "
    "and read out in the weak form only"
)


def no_strong_form(medium: Medium) -> str:
    """Why a weak-only medium has no residual intervals."""
    return NO_MATRIX_INTERVALS if medium.matrix else NO_JUMP_INTERVALS
# The checks of a run to a tolerance read points from streams apart from training's and
# the final read-out's (+ the step: each check its own sample).
CHECK_SEED_OFFSET = 7 * EVAL_SEED_OFFSET


def readout(
    compiled: CompiledProblem, network: torch.nn.Module, settings: Settings, shift: float
) -> tuple[Ritz, np.ndarray, Intervals | None]:
    """Rayleigh-Ritz in float64 on a fresh sample that training never saw, the method's
    own estimate of each learned function's energy on the same sample, and (eigenproblems)
    the residual intervals of the Ritz values from the same sample."""
    seed = settings.seed + EVAL_SEED_OFFSET
    batch = _float64_batch(compiled, network, settings.readout.eval_samples, seed)
    n = batch.h.shape[0]
    exact = exact_points(compiled)  # a quadrature rule: no Monte-Carlo error
    if settings.want == "smallest-singular":
        r = ritz_squared(batch.h, batch.hh)
        r = without_stderr(r) if exact else r
        square = batch.hh.T @ batch.hh / n
        native = native_energies(settings.method, shift, settings.transform.scale, r.gram, square)
        return r, native.clamp_min(0.0).sqrt().cpu().numpy(), unavailable(r.stderr.shape[0], (
            "the residual A* u - s v of a singular pair (u = A v / s) needs A* A v, fourth "
            "derivatives that the drift kind does not form"))
    r = ritz(batch.h, batch.hh)
    r = without_stderr(r) if exact else r
    energy = batch.h.T @ batch.hh / n
    native = native_energies(settings.method, shift, settings.transform.scale, r.gram, energy)
    modes = compiled.problem.modes  # buffer functions above them are not reported
    intervals = _intervals(batch, r, diverging(compiled), modes, continuum(compiled), exact)
    return r.first(modes), native[:modes].cpu().numpy(), intervals


def _float64_batch(
    compiled: CompiledProblem, network: torch.nn.Module, samples: int, seed: int
) -> Batch:
    net64 = copy.deepcopy(network).double()
    if exact_points(compiled):  # a 1-D box or a planar region: a quadrature rule
        return quadrature_modes(compiled, net64)
    device = next(net64.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    return sample_modes(compiled, net64, samples, gen)


def _intervals(
    batch: Batch, r: Ritz, diverges: str | None, modes: int, threshold: float | None,
    exact: bool = False,
) -> Intervals:
    """The wanted modes' intervals; Ritz pairs above them (buffer functions) only give the
    highest wanted level its gap (``gap_above``) and never join its cluster. ``exact``: the
    batch is a quadrature rule (deterministic intervals)."""
    u, hu = batch.h @ r.rotation, batch.hh @ r.rotation
    values, stderr = r.eigenvalues, r.stderr
    ceiling = None
    if u.shape[1] > modes:
        rest = slice(modes, None)
        buffer = residual_intervals(
            u[:, rest], hu[:, rest], values[rest], stderr[rest], diverges, exact=exact
        )
        ceiling = gap_above(buffer, values[rest], threshold)
    wanted = slice(0, modes)
    return residual_intervals(
        u[:, wanted], hu[:, wanted], values[wanted], stderr[wanted], diverges, ceiling, exact
    )


def continuum(compiled: CompiledProblem) -> float | None:
    """The continuum threshold of a whole-space problem (the lowest limit of V along rays
    that do not confine), or None."""
    if compiled.settings.sampler.domain != "whole-space":
        return None
    gen = torch.Generator().manual_seed(compiled.settings.seed)
    return limit_at_infinity(compiled.operator.potential, compiled.dim, gen)


def diverging(compiled: CompiledProblem) -> str | None:
    """Why ||H u|| is infinite for the problem's potential (no intervals then), or None.
    The exact cusp factor keeps H u bounded at a Coulomb centre."""
    if compiled.settings.network.cusp:
        return None
    gen = torch.Generator().manual_seed(compiled.settings.seed)
    return residual_diverges(compiled.operator.potential, compiled.dim, gen)


def interval_check(compiled: CompiledProblem) -> Monitor:
    """The check of the current networks' intervals during training (deciding when a run to
    a tolerance stops; shown by any other run): a fresh read-out of ``check_samples`` points,
    its own stream per step, apart from training's and the final read-out's; near the
    tolerance, again on the final read-out's number of points (``needs_closer_look``).
    Raises ValueError where the problem can have no intervals."""
    if compiled.settings.want == "smallest-singular":
        raise ValueError("the smallest singular values of a drift problem have no intervals")
    diverges = diverging(compiled)
    if diverges is not None:
        raise ValueError(f"no error intervals can be computed: {diverges}")
    if compiled.operator.medium_weak_only:
        why = no_strong_form(compiled.operator.medium)
        raise ValueError(f"no error intervals can be computed: {why}")

    threshold = continuum(compiled)
    settings = compiled.settings
    samples = check_samples(settings.optimiser.tol)

    def read(state: TrainState, n: int) -> IntervalCheck:
        seed = settings.seed + CHECK_SEED_OFFSET + state.step
        batch = _float64_batch(compiled, state.network, n, seed)
        exact = exact_points(compiled)
        r = ritz(batch.h, batch.hh)
        r = without_stderr(r) if exact else r
        found = _intervals(batch, r, None, compiled.problem.modes, threshold, exact)
        arrays = interval_arrays(found)
        widths = [float(w) for w in arrays.relative_half_width()]
        points = batch.h.shape[0]  # a quadrature rule's own count, whatever n asked
        return IntervalCheck(state.step, widths, [float(e) for e in arrays.residual], points)

    def check(state: TrainState) -> IntervalCheck:
        found = read(state, samples)
        final = settings.readout.eval_samples
        # A quadrature read-out is the final one already: a closer look would repeat it.
        if not exact_points(compiled) and needs_closer_look(found, settings.optimiser.tol, final):
            return read(state, final)
        return found

    return check


def tolerance_attrs(state: TrainState, intervals: IntervalArrays | None) -> dict[str, object]:
    """What a run to a tolerance records on ``/`` of results.h5: the tolerance, whether the
    final read-out's intervals meet it (``tol_met``), how the run ended and why."""
    tolerance = state.tolerance
    assert tolerance is not None
    widths = [] if intervals is None else [float(w) for w in intervals.relative_half_width()]
    final = widest(widths)
    return {
        "tol": tolerance.tol,
        "tol_met": bool(final <= tolerance.tol),
        "tol_outcome": tolerance.outcome or "interrupted",
        "tol_checks": len(tolerance.checks),
        "tol_note": explain(tolerance, final, state.step),
    }


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
    x = compiled.sampler.to(p.device, p.dtype).sample(s.optimiser.batch_size, gen)
    return hutchinson_variance(cast(ModeNetwork, network), x, s.hutchinson_probes, gen)


Readout = Callable[
    [CompiledProblem, torch.nn.Module, Settings, float], tuple[Ritz, np.ndarray, "Intervals | None"]
]


def record(
    compiled: CompiledProblem,
    state: TrainState,
    device: torch.device,
    complete: bool,
    read: Readout | None = None,
) -> Results:
    """The read-out of a trained network (``read``, default :func:`readout`) as a results
    record (values ascending: the lowest eigenvalues, or the smallest singular values)."""
    settings = compiled.settings
    singular = settings.want == "smallest-singular"
    read = readout if read is None else read
    ritz_result, native, intervals = read(compiled, state.network, settings, state.shift)
    # What read out, whatever the checkpoint said (a region's mesher may have failed; a run
    # started before /settings had the key).
    settings.readout.quadrature = planned_rule(compiled) if exact_points(compiled) else ""
    if complete:  # an interrupted run's values are written as they are, marked incomplete
        what = "singular value" if singular else "eigenvalue"
        check_readout(ritz_result.eigenvalues, ritz_result.gram, what)
    results = build_results(compiled.problem, settings, state, ritz_result, device, complete)
    results.native = native
    if intervals is not None:
        results.intervals = interval_arrays(intervals)
    if state.tolerance is not None:
        results.attrs.update(tolerance_attrs(state, results.intervals))
    if singular:
        results.singular = SingularArrays(results.eigenvalues, results.stderr)
        results.attrs["kind"] = "smallest-singular"
    if settings.derivatives == "hutchinson" and not singular:
        results.attrs["hutchinson_relative_variance"] = hutchinson_report(compiled, state.network)
    return results


def load(problem: Problem, settings: Settings, results: Results, kind: Kind) -> Run:
    """The run with its float64 network, rebuilt from a results file by its own kind (a
    kind may build differently: Neumann walls carry no wall factor)."""
    return Run.rebuilt(problem, kind.build(problem, settings), results, kind)


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


def left_functions(run: Run, x: torch.Tensor) -> torch.Tensor:
    """For the smallest singular values of A: u_l = A v_l / s_l at x (unit L2 norm), with
    v_l the learned right functions (``ritz_functions``); exact derivatives."""
    sampler = run.compiled.sampler
    batch = evaluate_batch(run.compiled, sampler, run.network, x)
    coefficients = unit_coefficients(run.results.rotation, run.results.gram)
    s = torch.from_numpy(np.asarray(run.results.eigenvalues))
    amplitude = torch.exp(sampler.log_amplitude(x) - 0.5 * sampler.log_volume)
    return batch.hh @ coefficients / s * amplitude.unsqueeze(-1)


def sides(run: Run, names: tuple[str, ...]) -> list[FunctionSide]:
    """The run's function families over its export window: "eigen", or "right" (the
    network's functions v) and "left" (A v / s)."""
    sampler = run.compiled.sampler
    settings = run.settings

    weight = run.compiled.operator.medium.weight

    def sample(n: int, gen: torch.Generator) -> tuple[torch.Tensor, np.ndarray]:
        # With a weight rho, the sample-frame values carry sqrt(rho): plain means are then
        # rho's inner products, in which the functions are orthonormal.
        x = sampler.sample(n, gen)
        factor = torch.exp(-sampler.log_amplitude(x) + 0.5 * sampler.log_volume)
        if weight is not None:
            factor = factor * weight(x).sqrt()
        return x, factor.numpy()

    inside = None
    if run.problem.region_expr() is not None and run.compiled.boundary is not None:
        boundary = run.compiled.boundary

        def inside(x: torch.Tensor) -> torch.Tensor:
            return boundary(x).value

    def left(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return left_functions(run, x).detach()

    def right(x: torch.Tensor) -> torch.Tensor:
        return ritz_functions(run, x)

    functions: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "eigen": right,
        "right": right,
        "left": left,
    }
    coords = tuple(run.problem.coordinates)
    lo, hi = tuple(settings.readout.export_lo), tuple(settings.readout.export_hi)
    return [
        FunctionSide(n, coords, lo, hi, functions[n], sample, inside, jets=n == "left")
        for n in names
    ]


def left_orthogonality(run: Run, samples: int) -> float:
    """Orthogonality of the left functions u = A v / s, on fresh points of the sampler."""
    sampler = run.compiled.sampler
    gen = torch.Generator().manual_seed(run.settings.seed + 3 * EVAL_SEED_OFFSET)
    x = sampler.sample(samples, gen)
    inv_sqrt_p = torch.exp(-sampler.log_amplitude(x) + 0.5 * sampler.log_volume)
    u = left_functions(run, x) * inv_sqrt_p.unsqueeze(-1)
    return orthogonality(u.T @ u / u.shape[0])
