"""From a validated problem file to torch callables, with every default derived from it.

Two steps, kept apart so a finished run can be rebuilt exactly:

* ``derive_settings(problem)`` looks at the problem (domain, potential, dimension, modes)
  and fills in everything the file left open: sampling scales, operator shift and scale,
  network size, steps, batch, learning rate. The result is plain JSON-able data and is
  stored with the run.
* ``build(problem, settings)`` turns problem + settings into callables (sampler, boundary
  factor, operator, network). It is cheap and deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nsvd_cli.expr import compile_torch
from nsvd_cli.kinds.base import MemoryNeed, element_bytes
from nsvd_cli.kinds.medium_fields import compile_medium, weyl_estimate
from nsvd_cli.kinds.schrodinger_checks import (
    check_estimate,
    check_potential_values,
    check_region_inside_bounds,
    domain_bounds,
    region_field,
    unusable_potential,
)
from nsvd_cli.numerics import weyl as analysis
from nsvd_cli.numerics.derivatives import reference_jet
from nsvd_cli.numerics.jets import Jet
from nsvd_cli.numerics.memory import readout_bytes, training_step_bytes
from nsvd_cli.numerics.networks import NetworkConfig, build_network
from nsvd_cli.numerics.operators import (
    JetField,
    Schrodinger,
    box_factor,
    cusp_factor,
    product_factor,
)
from nsvd_cli.numerics.sampling import GaussianMixture, Sampler, UniformBox, UniformRegion
from nsvd_cli.objectives.batch import RULE_NAMES, planned_points
from nsvd_cli.spec.load import Problem, located_error
from nsvd_cli.spec.medium import diffusion_kind, has_switches, jump_points, kink_points
from nsvd_cli.training.settings import Settings

ANALYSIS_SEED = 12345
ANALYSIS_POINTS = 50_000


@dataclass
class CompiledProblem:
    problem: Problem
    settings: Settings
    operator: Schrodinger
    sampler: Sampler
    boundary: JetField | None

    @property
    def dim(self) -> int:
        return len(self.problem.coordinates)

    def network_config(self) -> NetworkConfig:
        s = self.settings
        return NetworkConfig(
            dim=self.dim,
            modes=self.problem.modes + s.network.buffer_modes,
            hidden=s.network.hidden,
            depth=s.network.depth,
            activation=s.network.activation,
            center=tuple(s.network.input_center),
            scale=tuple(s.network.input_scale),
            radial_feature=s.network.radial_feature,
            # The Bohr radius of the cusp: beyond it the input is |x| as without a factor.
            radial_softening=1.0 / abs(s.network.cusp) if s.network.cusp else 0.0,
            fourier_features=s.network.fourier_features,
            fourier_scale=s.network.fourier_scale,
            fourier_seed=s.seed,
            envelope=s.network.envelope,
            kinks=tuple(s.network.kinks),
        )

    def make_network(self) -> torch.nn.Module:
        return build_network(self.settings.network.architecture, self.network_config())

    def boundary_jet(self, x: torch.Tensor) -> Jet | None:
        return None if self.boundary is None else self.boundary(x)


def _potential_field(problem: Problem) -> analysis.Field:
    return compile_torch(problem.potential_expr(), problem.symbols(), problem.parameter_values())


def _drift_field(problem: Problem) -> analysis.Field | None:
    exprs = problem.drift_exprs()
    if exprs is None:
        return None
    parts = [compile_torch(e, problem.symbols(), problem.parameter_values()) for e in exprs]
    return lambda x: torch.stack([p(x) for p in parts], dim=-1)


def _geometric_scales(lo: list[float], hi: list[float], ratio: float = 3.0) -> list[list[float]]:
    """Mixture components from the ground state's extent to twice the top state's."""
    top = [2.0 * h for h in hi]
    spread = max(t / max(b, 1e-12) for t, b in zip(top, lo))
    k = 1 + max(0, math.ceil(math.log(max(spread, 1.0)) / math.log(ratio)))
    if k == 1:
        return [top]
    return [[b * (t / b) ** (j / (k - 1)) for b, t in zip(lo, top)] for j in range(k)]


def _rms_mean(values: list[float]) -> float:
    return math.sqrt(sum(v * v for v in values) / len(values))


def derive_settings(problem: Problem) -> Settings:
    """Fill every open choice from the problem itself (see the module docstring).

    Raises :class:`ProblemError` (file, line, key) when the potential or region gives
    nothing to derive the settings from: NaN everywhere, an empty region, a potential that
    overflows or is unbounded below."""
    kappa = problem.kinetic_value()
    potential = _potential_field(problem)
    gen = torch.Generator().manual_seed(ANALYSIS_SEED)
    kind, lo, hi = domain_bounds(problem)
    s = Settings()
    s.sampler.domain = kind
    s.sampler.bounds_lo, s.sampler.bounds_hi = lo, hi

    if kind == "whole-space":
        est = _whole_space_settings(problem, s, potential, kappa, gen)
    else:
        est = _bounded_settings(problem, s, potential, kappa, gen)
    _operator_scale(problem, s, est)
    _coulomb_cusp(problem, s, potential, kappa)
    apply_solver_overrides(problem, s)
    return s


def _coulomb_cusp(problem: Problem, s: Settings, potential: analysis.Field, kappa: float) -> None:
    """Where V = -Z/r at the origin (d >= 2, no drift), the functions carry the exact cusp
    factor of rate Z / (kappa (d - 1)): H psi is then bounded, so residual intervals exist
    even in 2-D, and the network need not learn a kink. (The |x| input, which would add a
    cusp of its own, is softened at the origin then: ``network_config``.)"""
    d = len(problem.coordinates)
    if d < 2 or problem.drift_exprs() is not None:
        return
    charge = analysis.coulomb_charge(potential, d, torch.Generator().manual_seed(ANALYSIS_SEED))
    if charge is not None:
        s.network.cusp = charge / (kappa * (d - 1))


def _whole_space_settings(
    problem: Problem, s: Settings, potential: analysis.Field, kappa: float, gen: torch.Generator
) -> analysis.SpectrumEstimate:
    """Sampling scales, input normalisation, export window and shift for the whole space."""
    d = len(problem.coordinates)
    pts, log_w = analysis.log_radial_points(d, ANALYSIS_POINTS, gen)
    check_potential_values(problem, potential(pts))
    est = weyl_estimate(problem, potential, kappa, pts, log_w)
    check_estimate(problem, est, whole_space=True)
    s.sampler.center = list(est.center)
    # Gaussians aligned with the principal axes of the classically allowed region (the
    # coordinate axes unless the coordinates are correlated): a rotated anisotropic
    # problem then sees the same sampler as its separable twin.
    rotated = any(est.axes[i][j] != float(i == j) for i in range(d) for j in range(d))
    if rotated:
        s.sampler.axes = [list(row) for row in est.axes]
        lo_rms, hi_rms = list(est.axis_rms_lowest), list(est.axis_rms_highest)
    else:
        lo_rms, hi_rms = list(est.rms_lowest), list(est.rms_highest)
    s.sampler.scales = _geometric_scales(lo_rms, hi_rms)
    s.network.input_center = list(est.center)
    # The geometric middle of the length scales: the smallest states (a Coulomb ground
    # state) stay resolvable while the largest stay O(1) in input units.
    span = [math.sqrt(a * b) for a, b in zip(s.sampler.scales[0], s.sampler.scales[-1])]
    s.network.input_scale = span if not rotated else [_rms_mean(span)] * d
    s.readout.export_lo = [c - 4.0 * r for c, r in zip(est.center, est.rms_highest)]
    s.readout.export_hi = [c + 4.0 * r for c, r in zip(est.center, est.rms_highest)]
    s.network.radial_feature = analysis.singular_at_origin(potential, d, gen)
    v_inf = analysis.limit_at_infinity(potential, d, gen)
    if v_inf is not None and est.highest < v_inf:
        # Bound states below a continuum threshold: shift to the threshold, as the
        # paper does for hydrogen (T = -H). Every bound state is then a positive
        # eigenvalue of T and the continuum sits below all of them.
        s.transform.shift = 0.0 if abs(v_inf) < 1e-6 * max(abs(est.lowest), 1.0) else v_inf
    return est


def _bounded_settings(
    problem: Problem, s: Settings, potential: analysis.Field, kappa: float, gen: torch.Generator
) -> analysis.SpectrumEstimate:
    """The same for a box or a region (uniform sampling inside the bounds)."""
    kind, lo, hi = s.sampler.domain, s.sampler.bounds_lo, s.sampler.bounds_hi
    lo_t = torch.tensor(lo, dtype=torch.float64)
    hi_t = torch.tensor(hi, dtype=torch.float64)
    pts, log_w = analysis.uniform_points(lo_t, hi_t, ANALYSIS_POINTS, gen)
    if kind == "region":
        region = region_field(problem)
        inside = region(pts) > 0
        if not bool(inside.any()):
            raise located_error(
                problem,
                ("domain", "region"),
                f"the region is empty: the expression is > 0 at none of {len(pts)} "
                "points of the bounds",
            )
        check_region_inside_bounds(problem, region, lo, hi, gen)
        s.sampler.region_acceptance = max(float(inside.double().mean()), 1e-6)
        pts, log_w = pts[inside], log_w[inside]
    check_potential_values(problem, potential(pts))
    est = weyl_estimate(problem, potential, kappa, pts, log_w)
    check_estimate(problem, est, whole_space=False)
    s.network.input_center = [(a + b) / 2 for a, b in zip(lo, hi)]
    s.network.input_scale = [(b - a) / 2 for a, b in zip(lo, hi)]
    s.readout.export_lo, s.readout.export_hi = lo, hi
    return est


def _operator_scale(problem: Problem, s: Settings, est: analysis.SpectrumEstimate) -> None:
    """T = scale * (shift - H): the scale that puts the wanted spectrum in (0, 1]."""
    s.transform.energy_estimate = [est.lowest, est.highest]
    shift = s.transform.shift
    top = shift if shift is not None else est.highest + 0.5 * (est.highest - est.lowest)
    s.transform.scale = 1.0 / max(top - est.lowest, 1e-12)
    s.want = problem.wanted
    if s.want == "lowest" and shift is None:
        # The adaptive shift follows the learned span's Ritz values. When two functions
        # collapse onto one state (seen on a 2-mode oscillator) it would drop under the next
        # wanted level, whose T-eigenvalue then turns negative: it can never be learned.
        # The Weyl estimates keep it above, at the converged shift's own margin over the
        # estimated top level (``_adaptive_shift``): the `top` of the scale. The estimate of
        # E_L alone is no floor: with Dirichlet walls Weyl's leading term places E_L low
        # (layered-rod-1d: 281 for 294.7), and the L-th state could never be learned.
        s.transform.shift_floor = top
    if s.want == "smallest-singular":
        # T = scale * (shift - A^*A): its eigenvalues are squares of H's scale (the drift
        # adds to them); the shift adapts to the learned span.
        s.transform.shift = None
        s.transform.scale = 1.0 / max(top * top, 1e-12)
        # The squared spectrum spreads far more than H's, and a fresh network's smooth
        # functions have small A^*A Ritz values: floor the adaptive shift at the Weyl
        # estimate's square (above the wanted s_L^2 for moderate drifts).
        s.transform.shift_floor = top * top
    if not (math.isfinite(s.transform.scale) and s.transform.scale > 0):
        raise unusable_potential(problem, f"the operator scale comes out as {s.transform.scale}")


def apply_solver_overrides(problem: Problem, s: Settings) -> None:
    """Keys given in the file's solver block win over derived values."""
    solver = problem.solver
    modes = problem.modes
    s.method = solver.method
    s.seed = solver.seed
    s.network.hidden = solver.hidden or (128 if modes > 4 else 64)
    s.network.depth = solver.depth or 3
    s.optimiser.steps = solver.steps or _default_steps(problem)
    s.optimiser.batch_size = solver.batch_size or 1024
    s.optimiser.learning_rate = solver.learning_rate or 1e-3
    s.dtype = solver.dtype or "float32"
    if solver.eval_samples:
        s.readout.eval_samples = solver.eval_samples
    if solver.checkpoint_every:
        s.optimiser.checkpoint_every = solver.checkpoint_every
    s.derivatives = solver.derivatives
    s.diffusion = diffusion_kind(problem)
    if s.weak_only and s.derivatives == "auto":
        s.derivatives = "weak"  # no strong form (``spec/medium.py``)
    s.network.kinks = list(kink_points(problem))
    s.hutchinson_probes = solver.hutchinson_probes
    s.compile = solver.compile
    s.spin_decay = solver.spin_decay
    s.optimiser.tol = solver.tol
    s.optimiser.refine_steps = solver.refine_steps or 0
    if solver.shift is not None:
        s.transform.shift = solver.shift
    if solver.scale is not None:
        s.transform.scale = solver.scale
    if solver.sampling_scales:
        s.sampler.scales = [[float(v)] * len(problem.coordinates) for v in solver.sampling_scales]
    _apply_network(problem, s)


NETWORK_KINDS = {"shared": "shared-mlp", "disjoint": "disjoint-mlp"}


def _apply_network(problem: Problem, s: Settings) -> None:
    """The ``network`` block; its hidden/depth win over the older ``solver`` keys."""
    net = problem.network
    s.network.architecture = NETWORK_KINDS[net.kind]
    s.network.hidden = net.hidden or s.network.hidden
    s.network.depth = net.depth or s.network.depth
    s.network.activation = net.activation
    if net.cusp is False:
        s.network.cusp = 0.0
    elif net.cusp and not s.network.cusp:
        raise located_error(
            problem, ("network", "cusp"),
            "the cusp factor needs V = -Z/r at the origin (the same Z in every direction, "
            "d >= 2, no drift); this potential is not",
        )
    if net.radial_feature is not None:
        s.network.radial_feature = net.radial_feature
    s.network.fourier_features = net.fourier_features
    s.network.fourier_scale = net.fourier_scale
    s.network.envelope = net.envelope


def _default_steps(problem: Problem) -> int:
    # Each extra mode is one more function to converge inside the shared network; measured
    # on the benchmarks' problems, this keeps the 2D ones within 10 CPU minutes.
    return int(15_000 + 3_500 * problem.modes)


def build(problem: Problem, settings: Settings) -> CompiledProblem:
    potential = _potential_field(problem)
    operator = Schrodinger(
        problem.kinetic_value(), potential, _drift_field(problem), compile_medium(problem),
        jump_points(problem), has_switches(problem),
    )
    boundary: JetField | None = None
    sampler: Sampler
    if settings.sampler.domain == "whole-space":
        axes = settings.sampler.axes
        sampler = GaussianMixture(
            torch.tensor(settings.sampler.center, dtype=torch.float64),
            torch.tensor(settings.sampler.scales, dtype=torch.float64),
            torch.tensor(axes, dtype=torch.float64) if axes else None,
        )
    else:
        lo = torch.tensor(settings.sampler.bounds_lo, dtype=torch.float64)
        hi = torch.tensor(settings.sampler.bounds_hi, dtype=torch.float64)
        box = UniformBox(lo, hi)
        if settings.sampler.domain == "box":
            sampler = box
            boundary = box_factor(lo, hi)
        else:
            region = region_field(problem)
            sampler = UniformRegion(box, region, settings.sampler.region_acceptance)
            # The region expression vanishes on the edge and is positive inside: it is the
            # boundary factor itself, normalised to an O(1) size at the bounds' scale.
            norm = (
                float(
                    region(torch.tensor([settings.network.input_center], dtype=torch.float64))
                    .abs()
                    .max()
                )
                or 1.0
            )

            def boundary(x: torch.Tensor) -> Jet:
                return reference_jet(lambda y: region(y) / norm, x)

    cusp = cusp_factor(settings.network.cusp) if settings.network.cusp else None
    return CompiledProblem(problem, settings, operator, sampler, product_factor(boundary, cusp))


def memory_needs(problem: Problem, settings: Settings) -> list[MemoryNeed]:
    """A differential problem's training step (the batch's jets and graph) and read-out."""
    s = settings
    d, modes = len(problem.coordinates), problem.modes + s.network.buffer_modes
    net = s.network
    step = training_step_bytes(
        s.optimiser.batch_size, d, modes, net.hidden, net.depth, element_bytes(s)
    )
    rule = s.readout.quadrature
    # A region's mesh rule (about 65 000 points) is known once built: the default sample
    # bounds it.
    points = planned_points(rule, d, len(jump_points(problem))) or s.readout.eval_samples
    readout = readout_bytes(points, d, modes, s.network.hidden)
    what = (f"the read-out's quadrature rule ({RULE_NAMES[rule]})" if rule else
            f"the read-out sample (solver.eval_samples = {s.readout.eval_samples})")
    return [
        MemoryNeed(f"the training step (solver.batch_size = {s.optimiser.batch_size})", step,
                   "lower solver.batch_size"),
        MemoryNeed(what, readout, "allow more memory (--max-memory): the rule is fixed"
                   if rule else "lower solver.eval_samples"),
    ]
