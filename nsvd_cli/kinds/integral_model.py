"""Singular problems: an integral operator compiled to torch, its training objective and its
read-out. Nothing here knows about files or screens.

Two networks learn the left functions f_l (on the output coordinates x) and the right
functions g_l (on the input coordinates y); the nested two-sided LoRA objective of
``methods/svd.py`` orders them so that pair l is the l-th singular pair with
||f_l|| ||g_l|| = s_l. The reported singular values are those of T restricted to the two
learned spans (``readout.singular_ritz``), measured on fresh points.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from nsvd_cli.expr.compiler import compile_torch
from nsvd_cli.kinds.schrodinger import apply_solver_overrides
from nsvd_cli.numerics.integral import (
    IntegralOperator,
    Measure,
    SingularMoments,
    image_moments,
)
from nsvd_cli.numerics.networks import NetworkConfig, build_network
from nsvd_cli.numerics.sampling import GaussianMixture, UniformBox
from nsvd_cli.objectives.methods.base import LossOutput
from nsvd_cli.objectives.methods.svd import SVD_LOSSES
from nsvd_cli.objectives.readout import singular_ritz
from nsvd_cli.spec.load import BoxDomain, Problem
from nsvd_cli.spec.models import GaussianDomain
from nsvd_cli.training.distributed import LOCAL, Context, rank_batch
from nsvd_cli.training.guard import Check
from nsvd_cli.training.settings import Settings
from nsvd_cli.training.state import DTYPES, MOMENT_DECAY, TrainState

# Points per side in one read-out block: the cost grows with it (blocks x EVAL_BLOCK^2
# kernel values), the variance does not (it is set by the total number of points).
EVAL_BLOCK = 256
GAUSSIAN_WINDOW = 4.0  # exports cover +- 4 standard deviations of a Gaussian measure
# Points for a Gaussian measure come from a Gaussian this much wider, with importance
# weights (at most PROPOSAL_WIDTH^d): kernels that grow in the tails keep a small variance.
PROPOSAL_WIDTH = 1.5


@dataclass(frozen=True)
class Side:
    """One side of the operator: its coordinates, measure and network input normalisation."""

    coordinates: tuple[str, ...]
    measure: Measure
    center: tuple[float, ...]
    scale: tuple[float, ...]
    window_lo: tuple[float, ...]
    window_hi: tuple[float, ...]


def _side(coordinates: list[str], domain: BoxDomain | GaussianDomain) -> Side:
    d = len(coordinates)
    if isinstance(domain, BoxDomain):
        lo = tuple(float(domain.box[c][0]) for c in coordinates)
        hi = tuple(float(domain.box[c][1]) for c in coordinates)
        box = UniformBox(
            torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64)
        )
        center = tuple((a + b) / 2 for a, b in zip(lo, hi))
        half = tuple((b - a) / 2 for a, b in zip(lo, hi))
        return Side(
            tuple(coordinates), Measure(box, math.exp(box.log_volume)), center, half, lo, hi
        )
    s = float(domain.gaussian.scale)

    def gaussian(scale: float) -> GaussianMixture:
        return GaussianMixture(
            torch.zeros(d, dtype=torch.float64), torch.full((1, d), scale, dtype=torch.float64)
        )

    measure = Measure(gaussian(PROPOSAL_WIDTH * s), 1.0, target=gaussian(s))
    w = GAUSSIAN_WINDOW * s
    return Side(tuple(coordinates), measure, (0.0,) * d, (s,) * d, (-w,) * d, (w,) * d)


class SingularPair(nn.Module):
    """The left network (f on x) and the right network (g on y), trained as one module."""

    def __init__(self, left: nn.Module, right: nn.Module) -> None:
        super().__init__()
        self.left = left
        self.right = right


@dataclass
class CompiledSingular:
    problem: Problem
    settings: Settings
    operator: IntegralOperator
    left: Side
    right: Side

    def _config(self, side: Side) -> NetworkConfig:
        s = self.settings
        return NetworkConfig(
            dim=len(side.coordinates),
            modes=self.problem.modes,
            hidden=s.network.hidden,
            depth=s.network.depth,
            activation=s.network.activation,
            center=side.center,
            scale=side.scale,
            fourier_features=s.network.fourier_features,
            fourier_scale=s.network.fourier_scale,
            fourier_seed=s.seed,
        )

    def make_network(self) -> SingularPair:
        kind = self.settings.network.architecture
        return SingularPair(
            build_network(kind, self._config(self.left)),
            build_network(kind, self._config(self.right)),
        )


def derive_singular_settings(problem: Problem) -> Settings:
    """Defaults for an integral operator: no analysis needed, the measures fix the scales."""
    s = Settings(want="largest-singular")
    s.sampler.domain = "integral"
    # Points per side of the read-out: 2^20 puts its standard error near 1e-3 of the
    # singular values on the shipped problems, in seconds (blocks of 256 x 256 pairs).
    s.readout.eval_samples = 1 << 20
    apply_solver_overrides(problem, s)
    if problem.solver.steps is None:
        s.optimiser.steps = 4000 + 1000 * problem.modes
    return s


def build_singular(problem: Problem, settings: Settings) -> CompiledSingular:
    domain = problem.domain
    assert isinstance(domain, BoxDomain | GaussianDomain)
    input_domain = problem.input_domain()
    assert input_domain is not None
    kernel_expr = problem.kernel_expr()
    assert kernel_expr is not None
    names = [*problem.coordinates, *problem.input_coordinates]
    kernel = compile_torch(kernel_expr, names, problem.parameter_values())
    left = _side(list(problem.coordinates), domain)
    right = _side(problem.input_coordinates, input_domain)
    return CompiledSingular(
        problem, settings, IntegralOperator(kernel, left.measure, right.measure), left, right
    )


class SingularObjective:
    """One batch of the nested two-sided LoRA objective (see ``methods/svd.py``)."""

    def __init__(
        self, compiled: CompiledSingular, device: torch.device, context: Context = LOCAL
    ) -> None:
        s = compiled.settings
        self.settings = s
        self.operator = compiled.operator.to(device, DTYPES[s.dtype])
        self.context = context
        self.batch = rank_batch(s.optimiser.batch_size, context)
        self.last: list[Check] = []
        try:
            self.loss_fn = SVD_LOSSES[s.method]
        except KeyError:
            known = ", ".join(SVD_LOSSES)
            raise ValueError(
                f"method {s.method!r} has no singular value form (known: {known})"
            ) from None

    def loss(self, state: TrainState) -> torch.Tensor:
        net = state.network
        assert isinstance(net, SingularPair)
        x = self.operator.left.sampler.sample(self.batch, state.generator)
        y = self.operator.right.sampler.sample(self.batch, state.generator)
        f, g = self.operator.weighted(net.left(x), net.right(y), x, y)
        if self.context.active:  # the whole job's points: every pair (x_i, y_j) as in one process
            x, y = self.context.gather(x), self.context.gather(y)
            f, g = self.context.gather_rows(f), self.context.gather_rows(g)
        n = f.shape[0]
        f, g = _preconditioned(f, g)
        k = self.operator.matrix(x, y)
        cross = f.T @ (k @ g) / (n * n)
        out: LossOutput = self.loss_fn(f, g, cross)
        moments = SingularMoments(f.T @ f / n, g.T @ g / n, cross)
        _update_singular_moments(state, moments)
        self.last = [
            ("sampled points (left)", x),
            ("sampled points (right)", y),
            ("left network output", f),
            ("right network output", g),
            ("kernel matrix", k),
            ("operator term <f, T g>", cross),
        ]
        return out.loss

    def checks(self) -> list[Check]:
        return self.last

    def after_step(self, state: TrainState) -> None:
        return None

    def values(self, state: TrainState) -> list[float]:
        return current_singular_values(state)


def _preconditioned(f: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Same values; the gradient into pair m divided by its current ||f_m|| ||g_m|| (~ s_m).

    The loss's curvature in f_m is ||g_m||^2 and in g_m ||f_m||^2, both ~ s_m, so without
    this the pairs with small singular values learn s_0 / s_m times slower. A positive
    per-pair scaling does not move the optimum (each pair's own gradient vanishes there).
    """
    with torch.no_grad():
        s = torch.sqrt((f * f).mean(0) * (g * g).mean(0))
        factor = 1.0 / s.clamp_min(1e-3 * float(s.max().clamp_min(1e-30)))
    return f * factor + (f * (1.0 - factor)).detach(), g * factor + (g * (1.0 - factor)).detach()


def _update_singular_moments(state: TrainState, m: SingularMoments) -> None:
    new = (m.gram_left.detach(), m.gram_right.detach(), m.cross.detach())
    if state.gram is None or state.right_gram is None or state.energy is None:
        state.gram, state.right_gram, state.energy = (t.clone() for t in new)
        return
    for running, value in zip((state.gram, state.right_gram, state.energy), new):
        running.mul_(MOMENT_DECAY).add_(value, alpha=1 - MOMENT_DECAY)


def current_singular_values(state: TrainState) -> list[float]:
    if state.gram is None or state.right_gram is None or state.energy is None:
        return []
    r = singular_ritz(state.gram.double(), state.right_gram.double(), state.energy.double())
    return [float(v) for v in r.values]


@dataclass(frozen=True)
class SingularReadout:
    """Singular values of T on the learned spans, and how to form the singular functions."""

    values: torch.Tensor  # (L,) descending
    stderr: torch.Tensor  # (L,)
    left_rotation: torch.Tensor  # (L, L): column l = coefficients of u_l in f
    right_rotation: torch.Tensor  # (L, L): column l = coefficients of v_l in g
    gram_left: torch.Tensor
    gram_right: torch.Tensor
    cross: torch.Tensor
    native: torch.Tensor  # (L,) ||f_l|| ||g_l||, the method's own reading
    # (blocks, L, L): per block, the Gram matrix of the Ritz pairs' residuals on the
    # Jordan-Wielandt operator (``objectives.intervals``): unbiased, one estimate per block.
    residual_grams: torch.Tensor
    # ||k||_HS^2 = sum of all s_i^2 (the kernel's mean square over the pairs), and its
    # standard error: what the learned values leave of it bounds the next singular value.
    hilbert_schmidt: tuple[float, float]


def singular_readout(
    compiled: CompiledSingular,
    network: SingularPair,
    seed: int,
    blocks: int,
    block_points: int = EVAL_BLOCK,
) -> SingularReadout:
    """Rayleigh-Ritz in float64 on ``blocks`` fresh blocks of ``block_points`` per side.

    Every block's moments are unbiased, so their mean is too; its variance is dominated by
    the total number of points (the cross term's projections onto x and y), not by the
    block size, which only sets the cost (blocks x block_points^2 kernel values). The
    standard error is the delta method over blocks with the pooled Ritz coefficients a_l,
    b_l held fixed (s_l is stationary in them, as an eigenvalue is): with a_l^T F a_l =
    b_l^T G b_l = 1 on the pooled moments, the influence of block k on s_l is

        a_l^T C_k b_l - (s_l / 2) (a_l^T F_k a_l + b_l^T G_k b_l).
    """
    net = copy.deepcopy(network).double()
    device = next(net.parameters()).device
    op = compiled.operator.to(device, torch.float64)
    gen = torch.Generator(device=device).manual_seed(seed)
    per_block: list[SingularMoments] = []
    images: list[tuple[torch.Tensor, torch.Tensor]] = []
    squares: list[torch.Tensor] = []
    with torch.no_grad():
        for _ in range(max(2, blocks)):
            x = op.left.sampler.sample(block_points, gen)
            y = op.right.sampler.sample(block_points, gen)
            f, g = op.weighted(net.left(x), net.right(y), x, y)
            k = op.matrix(x, y)
            per_block.append(op.moments(f, g, k))
            images.append(image_moments(f, g, k))
            squares.append((k * k).mean())
    gram_left = torch.stack([m.gram_left for m in per_block])
    gram_right = torch.stack([m.gram_right for m in per_block])
    cross = torch.stack([m.cross for m in per_block])
    r = singular_ritz(gram_left.mean(0), gram_right.mean(0), cross.mean(0))
    a, b = r.left, r.right

    def form(u: torch.Tensor, m: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.einsum("il,kij,jl->kl", u, m, v)

    influence = form(a, cross, b) - 0.5 * r.values * (
        form(a, gram_left, a) + form(b, gram_right, b)
    )
    stderr = influence.std(0) / math.sqrt(len(per_block))
    native = torch.sqrt(torch.diagonal(gram_left.mean(0)) * torch.diagonal(gram_right.mean(0)))
    residuals = _residual_grams(
        a, b, r.values, (gram_left, gram_right, cross),
        torch.stack([m for m, _ in images]), torch.stack([n for _, n in images]),
    )
    return SingularReadout(
        r.values, stderr, a, b, gram_left.mean(0), gram_right.mean(0), cross.mean(0), native,
        residuals, _mean_and_stderr(torch.stack(squares)),
    )


def _mean_and_stderr(samples: torch.Tensor) -> tuple[float, float]:
    return float(samples.mean()), float(samples.std() / math.sqrt(samples.shape[0]))


def next_singular_bound(ro: SingularReadout, z: float) -> float:
    """An upper bound on the singular value after the learned ones, at confidence z on
    each estimate: each Ritz value is at most its singular value (interlacing), so
    s_{L+1}^2 <= ||k||_HS^2 - sum_{l <= L} s_l^2."""
    total, total_se = ro.hilbert_schmidt
    learned = ((ro.values - z * ro.stderr).clamp_min(0.0) ** 2).sum()
    return max(total + z * total_se - float(learned), 0.0) ** 0.5


def _residual_grams(
    a: torch.Tensor,
    b: torch.Tensor,
    values: torch.Tensor,
    moments: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    image_g: torch.Tensor,
    image_f: torch.Tensor,
) -> torch.Tensor:
    """Per block (K, L, L): <w_l, w_m> for w_l = ((T v_l - s_l u_l), (T* u_l - s_l v_l)) / sqrt 2,
    with u = f a, v = g b; from the blocks' moments F, G, C (K, L, L each) and the images
    <T g, T g>, <T* f, T* f>. Each is a quadratic form in one block's unbiased moments."""
    gram_f, gram_g, cross = moments
    s = torch.diag(values)
    acb = a.T @ cross @ b  # (K, L, L): <u_l, T v_m>
    right = b.T @ image_g @ b - acb.transpose(1, 2) @ s - s @ acb + s @ (a.T @ gram_f @ a) @ s
    left = a.T @ image_f @ a - acb @ s - s @ acb.transpose(1, 2) + s @ (b.T @ gram_g @ b) @ s
    return 0.5 * (right + left)
