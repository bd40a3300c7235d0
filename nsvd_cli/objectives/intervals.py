"""Error intervals for Ritz values from their residuals, estimated on the read-out sample.

For a normalised trial function u with Rayleigh quotient eta and residual
eps = ||(H - eta) u||, two classical bounds hold for a self-adjoint H:

- Weinstein / Krylov-Bogoliubov: some eigenvalue lies in [eta - eps, eta + eps].
- Kato-Temple: if (alpha, beta) holds exactly one eigenvalue lambda and eta lies in it,
  eta - eps^2 / (beta - eta) <= lambda <= eta + eps^2 / (eta - alpha). With eta the l-th
  Ritz value, min-max gives lambda_l <= eta as the upper end.

A cluster of Ritz values whose intervals overlap (a degenerate level, or states not yet
resolved) gets the block version (Kahan): for orthonormal U with R = H U - U diag(eta),
there are k eigenvalues within ||R||_2 of the k Ritz values, so the cluster's states share
one interval, and its Kato-Temple form uses ||R||_2^2 over the gap to the next cluster.

Every integral here is a Monte-Carlo mean over the read-out sample (the sample-frame values
u and H~u of ``objectives.readout``): eps^2 = mean((H~u - eta u)^2) / mean(u^2), with its
standard error from the delta method. The reported interval holds at ``CONFIDENCE``: the
Ritz value is taken at its two-sided 97.5% limits and the residual at its one-sided 97.5%
upper limit, so by the union bound both hold with probability >= 95%. The gap beta is
itself estimated (the lower end of the next cluster's interval): a Kato-Temple interval is
labelled as resting on it.

Where ||H u|| is infinite (a Coulomb singularity in 2-D without the exact cusp) the sample
mean of the squared residual does not converge: a few points next to the singularity hold
most of it, and its standard error means nothing. A mode whose largest single point holds
more than ``MAX_SHARE`` of the squared residual's sum is unavailable (the share, not a
number, is reported). With a finite variance the largest share falls like log(n) / n: on a
learned 1-D oscillator it was 0.7% to 3.9% of 2^18 points; on a 2-D hydrogen atom without
the cusp one point near the nucleus held 6% on one sample and 56% on another. That check is
only a safety net: where the kind knows that ||H u|| is infinite (``weyl.residual_diverges``)
it passes the reason and every mode is unavailable. (A tail-index estimate cannot tell these
apart: the oscillator's residual has a stretched-exponential tail that Hill's estimator
reads as k > 1.)

Singular values (``BlockResiduals``) use the same bounds on the Jordan-Wielandt operator
J = [[0, T], [T*, 0]], whose eigenvalues are +-s_i (and 0): the Ritz pair (u, v) with
singular value s gives the unit vector w = (u, v) / sqrt(2) with <w, J w> = s and
||(J - s) w||^2 = (||T v - s u||^2 + ||T* u - s v||^2) / 2. The largest singular values are
the lowest eigenvalues of -J, so the caller passes -s (ascending) and flips the interval.
Their residuals need ||T v||^2, an integral of a product of two integrals: each read-out
block estimates it without bias (the pairs of distinct points, not the squares of one
estimate), and the blocks' spread gives its standard error.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Protocol

import torch

CONFIDENCE = 0.95
# Two-sided 97.5% for the Ritz value (each side 1.25%) and one-sided 97.5% for the residual:
# the interval fails only if one of the two does (union bound: at most 5%).
Z_VALUE = 2.2414
Z_RESIDUAL = 1.9600
# A residual estimate whose largest point holds more than this share rests on that point.
MAX_SHARE = 0.25

WEINSTEIN = "weinstein"
KATO_TEMPLE = "kato-temple"
BLOCK = "block"
BLOCK_KATO_TEMPLE = "block-kato-temple"
UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Intervals:
    """Per mode (ascending Ritz values): the interval, the residual it rests on, and how."""

    low: torch.Tensor  # (L,) nan where unavailable
    high: torch.Tensor  # (L,)
    residual: torch.Tensor  # (L,) eps_l = ||(H - eta_l) u_l|| / ||u_l||, estimate
    residual_stderr: torch.Tensor  # (L,)
    max_share: torch.Tensor  # (L,) the largest point's share of the squared residual's sum
    level: torch.Tensor  # (L,) int: modes of one cluster share an index (and interval)
    methods: tuple[str, ...]  # per mode: weinstein | kato-temple | block | ... | unavailable
    reason: str | None = None  # why some mode has no interval
    confidence: float = CONFIDENCE

    @property
    def available(self) -> torch.Tensor:
        return torch.tensor([m != UNAVAILABLE for m in self.methods])


def residual_norms(u: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """eps^2 per column of u (n, L) with residuals r = H~u - E u, and its standard error
    (delta method for a ratio)."""
    n = u.shape[0]
    norm = (u * u).mean(0)
    eps2 = (r * r).mean(0) / norm
    spread = (r * r - eps2 * u * u).std(0)
    return eps2, spread / (n**0.5 * norm)


def largest_share(x: torch.Tensor) -> torch.Tensor:
    """Per column of the non-negative samples x (n, L): the largest value over the sum (0 for
    an all-zero column, nan for one with a non-finite value)."""
    total = x.sum(0)
    share = x.max(0).values / total.clamp_min(1e-300)
    return torch.where(total == 0, torch.zeros_like(total), share)


class Residuals(Protocol):
    """Estimates of the normalised residuals' squared norms (and of a block's ||R||_2^2)."""

    eps2: torch.Tensor  # (L,) ||(H - eta_l) u_l||^2 / ||u_l||^2
    eps2_stderr: torch.Tensor  # (L,)
    max_share: torch.Tensor  # (L,) the largest sample's share of the estimate

    def block(self, members: list[int]) -> tuple[float, float]:
        """||R||_2^2 of these modes' normalised residuals, and its standard error."""
        ...


class PointResiduals:
    """Residuals from the sample-frame values u and H~u at the read-out points (n, L)."""

    def __init__(
        self, u: torch.Tensor, hu: torch.Tensor, values: torch.Tensor, exact: bool = False
    ) -> None:
        # exact: the points are a quadrature rule (numerics/quadrature.py), whose means carry
        # no Monte-Carlo error and no heavy-tail risk.
        self.exact = exact
        self.r = hu - u * values
        self.norm = (u * u).mean(0)
        self.eps2, self.eps2_stderr = residual_norms(u, self.r)
        self.max_share = largest_share(self.r * self.r)
        if exact:
            self.eps2_stderr = torch.zeros_like(self.eps2)
            self.max_share = torch.zeros_like(self.eps2)

    def block(self, members: list[int]) -> tuple[float, float]:
        index = torch.tensor(members, device=self.r.device)
        scaled = self.r[:, index] / self.norm[index].sqrt()
        gram = scaled.T @ scaled / self.r.shape[0]
        evals, evecs = torch.linalg.eigh(0.5 * (gram + gram.T))
        along = (scaled @ evecs[:, -1]) ** 2
        spread = 0.0 if self.exact else float(along.std() / self.r.shape[0] ** 0.5)
        return float(evals[-1]), spread


class BlockResiduals:
    """Residuals from K independent unbiased estimates (K, L, L) of the normalised
    residuals' Gram matrix <r_l, r_m> (one per read-out block): their mean and spread."""

    def __init__(self, grams: torch.Tensor) -> None:
        self.grams = 0.5 * (grams + grams.transpose(1, 2))
        count = grams.shape[0]
        diagonal = torch.diagonal(self.grams, dim1=1, dim2=2)  # (K, L)
        self.eps2 = diagonal.mean(0)
        self.eps2_stderr = diagonal.std(0) / count**0.5
        self.max_share = largest_share(diagonal.abs())

    def block(self, members: list[int]) -> tuple[float, float]:
        index = torch.tensor(members, device=self.grams.device)
        sub = self.grams[:, index][:, :, index]
        evals, evecs = torch.linalg.eigh(sub.mean(0))
        top = evecs[:, -1]
        along = torch.einsum("i,kij,j->k", top, sub, top)
        return float(evals[-1]), float(along.std() / sub.shape[0] ** 0.5)


def clusters(low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Level index per mode: consecutive modes whose intervals overlap share one."""
    level = torch.zeros(low.shape[0], dtype=torch.long)
    reach = float(high[0]) if low.shape[0] else 0.0
    for i in range(1, low.shape[0]):
        joined = float(low[i]) <= reach
        level[i] = level[i - 1] if joined else level[i - 1] + 1
        reach = max(reach, float(high[i])) if joined else float(high[i])
    return level


def residual_intervals(
    u: torch.Tensor,
    hu: torch.Tensor,
    values: torch.Tensor,
    stderr: torch.Tensor,
    diverges: str | None = None,
    ceiling: float | None = None,
    exact: bool = False,
) -> Intervals:
    """Confidence intervals for the eigenvalues that the Ritz values ``values`` (ascending,
    with standard errors ``stderr``) of the Ritz functions sampled as u, H~u (n, L) approach;
    ``diverges``: why ||H u|| is known to be infinite (then no mode gets an interval);
    ``ceiling``: an estimate of the lowest point of the spectrum above all of them (from
    buffer functions, ``gap_above``), which gives the highest level its Kato-Temple gap;
    ``exact``: the points are a quadrature rule, so the intervals are deterministic
    (confidence 1, no Monte-Carlo margins).

    Float64 in, float64 out, on u's device."""
    found = intervals_from(PointResiduals(u, hu, values, exact), values, stderr, diverges, ceiling)
    return dataclasses.replace(found, confidence=1.0) if exact else found


def intervals_from(
    residuals: Residuals,
    values: torch.Tensor,
    stderr: torch.Tensor,
    diverges: str | None = None,
    ceiling: float | None = None,
) -> Intervals:
    """The intervals of ``residual_intervals`` from any estimate of the residuals."""
    eps2, eps2_se, max_share = residuals.eps2, residuals.eps2_stderr, residuals.max_share
    eps_up = (eps2 + Z_RESIDUAL * eps2_se).clamp_min(0.0).sqrt()
    lo_value, hi_value = values - Z_VALUE * stderr, values + Z_VALUE * stderr
    level = clusters((lo_value - eps_up).cpu(), (hi_value + eps_up).cpu())
    levels = _levels(residuals, level, eps_up, lo_value, hi_value, max_share)
    low = torch.full_like(values, float("nan"))
    high = torch.full_like(values, float("nan"))
    methods = [UNAVAILABLE] * values.shape[0]
    reason = diverges
    for c, this in enumerate(levels):
        if diverges is not None:
            break
        if not this.usable:
            reason = reason or _why_unusable(float(max_share[this.members].max()))
            continue
        lower, upper = this.low - this.radius, this.high + this.radius
        method = BLOCK if len(this.members) > 1 else WEINSTEIN
        after = levels[c + 1] if c + 1 < len(levels) else None
        beta = ceiling if after is None else None
        if after is not None and after.usable and after.low - after.radius > this.high:
            beta = after.low - after.radius  # the lowest the next level can be: an estimate
        if beta is not None and beta > this.high:
            temple = this.low - this.radius**2 / (beta - this.high)
            if temple > lower:
                lower, upper = temple, this.high  # min-max: lambda_l <= its Ritz value
                method = BLOCK_KATO_TEMPLE if len(this.members) > 1 else KATO_TEMPLE
        for i in this.members:
            low[i], high[i], methods[i] = lower, upper, method
    return Intervals(
        low,
        high,
        eps2.clamp_min(0.0).sqrt(),
        eps2_se / (2 * eps2.clamp_min(1e-300).sqrt()),
        max_share,
        level,
        tuple(methods),
        reason,
    )


def unavailable(modes: int, reason: str) -> Intervals:
    """No interval for any mode, and why (a kind whose residuals cannot be estimated)."""
    nan = torch.full((modes,), float("nan"), dtype=torch.float64)
    return Intervals(
        nan, nan.clone(), nan.clone(), nan.clone(), nan.clone(),
        torch.arange(modes), (UNAVAILABLE,) * modes, reason,
    )  # fmt: skip


def gap_above(
    buffer: Intervals, buffer_values: torch.Tensor, threshold: float | None
) -> float | None:
    """The lowest the spectrum above the wanted modes can be (an estimate), from the
    intervals of buffer Ritz pairs trained above them: the lowest buffer interval's lower
    end, or the continuum threshold where it is lower. A buffer function whose Ritz value is
    at or above the threshold (or absent: not finite) found no bound state below it, so the
    threshold serves; a buffer mode below it without an interval leaves the gap unknown
    (None), and so does no threshold with no buffer interval."""
    ends = [] if threshold is None else [threshold]
    for i, value in enumerate(buffer_values.tolist()):
        if threshold is not None and not (math.isfinite(value) and value < threshold):
            continue  # in the continuum, or no function there
        if buffer.methods[i] == UNAVAILABLE:
            return None
        ends.append(float(buffer.low[i]))
    return min(ends) if ends else None


def _why_unusable(share: float) -> str:
    if not math.isfinite(share):
        return "a Ritz value or its residual is not finite (the learned span lacks a direction)"
    return (
        f"one read-out point holds {share:.0%} of a residual's estimate: it does not converge "
        "(a singularity the learned functions do not cancel?)"
    )


@dataclass(frozen=True)
class _Level:
    members: list[int]
    low: float  # lowest lower confidence limit of its Ritz values
    high: float  # highest upper one
    radius: float  # upper confidence limit of its (block) residual
    usable: bool  # no member's residual rests on one point


def _levels(
    residuals: Residuals,
    level: torch.Tensor,
    eps_up: torch.Tensor,
    lo_value: torch.Tensor,
    hi_value: torch.Tensor,
    share: torch.Tensor,
) -> list[_Level]:
    found = []
    for c in range(int(level.max()) + 1 if level.numel() else 0):
        members = (level == c).nonzero().flatten().tolist()
        index = torch.tensor(members, device=eps_up.device)
        if len(members) == 1:
            radius = float(eps_up[members[0]])
        else:
            square, square_se = residuals.block(members)
            radius = max(square + Z_RESIDUAL * square_se, 0.0) ** 0.5
        # nan compares false: a non-finite share makes the level unusable too
        usable = bool((share[index] <= MAX_SHARE).all()) and math.isfinite(radius)
        found.append(
            _Level(
                members,
                float(lo_value[index].min()),
                float(hi_value[index].max()),
                radius,
                usable,
            )
        )
    return found
