"""Cheap a-priori facts about a Schrödinger problem, used to derive every default.

Nothing here is tuned to a particular problem: the energy window and the length scales of
the wanted states come from the semiclassical (Weyl) phase-space count

    N(E) = omega_d / (2 pi)^d * integral ((E - V(x)) / kappa)_+^{d/2} dx,

the number of states below E to leading order, and from the semiclassical position density
rho_E(x) ~ (E - V(x))_+^{d/2} of all states below E. In whole space the integral is sampled
with log-uniform radii (x = r u, r = e^t), which covers every length scale from 1e-4 to 1e4
with the same effort and works in any dimension (weights r^d kept in log space).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

Field = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SpectrumEstimate:
    lowest: float  # Weyl estimate of E_1
    highest: float  # Weyl estimate of E_L (L = wanted modes)
    rms_lowest: tuple[float, ...]  # per-coordinate rms extent of rho_{E_1}
    rms_highest: tuple[float, ...]  # per-coordinate rms extent of rho_{E_L}
    center: tuple[float, ...]  # mean position under rho_{E_L}
    # Principal axes of rho_{E_L} (columns, orthonormal) and the rms extents along them;
    # the coordinate axes when the coordinates are (nearly) uncorrelated.
    axes: tuple[tuple[float, ...], ...] = ()
    axis_rms_lowest: tuple[float, ...] = ()
    axis_rms_highest: tuple[float, ...] = ()


def _log_weyl_terms(
    v: torch.Tensor, log_w: torch.Tensor, energy: float, kappa: float | torch.Tensor, d: int
) -> torch.Tensor:
    gap = (energy - v) / kappa
    inside = gap > 0
    out = torch.full_like(v, -math.inf)
    out[inside] = log_w[inside] + 0.5 * d * torch.log(gap[inside])
    return out


def _finite_sample(
    v: torch.Tensor, kappa: float | torch.Tensor, points: torch.Tensor, log_weights: torch.Tensor
) -> tuple[torch.Tensor, float | torch.Tensor, torch.Tensor, torch.Tensor]:
    """The sample's points with a finite potential and a positive, finite kappa; an empty
    one is an error in words, not a reduction over nothing."""
    ok = torch.isfinite(v)
    if isinstance(kappa, torch.Tensor):
        ok &= torch.isfinite(kappa) & (kappa > 0)
        kappa = kappa[ok].to(torch.float64)
    if not bool(ok.any()):
        raise ValueError(
            "no point of the domain's sample has a finite potential and a positive, finite "
            "kinetic coefficient: the spectrum cannot be estimated"
        )
    return v[ok], kappa, points[ok], log_weights[ok]


def weyl_estimate(
    potential: Field,
    kappa: float | torch.Tensor,
    dim: int,
    modes: int,
    points: torch.Tensor,
    log_weights: torch.Tensor,
    weight: torch.Tensor | None = None,
) -> SpectrumEstimate:
    """Bisect N(E) = 1 and N(E) = modes on a fixed weighted sample of the domain.

    ``points`` with ``log_weights`` must estimate integrals over the domain:
    integral g dx ~ sum_i exp(log_weights_i) g(points_i). A medium gives ``kappa`` per
    point (``media.effective_kappa``) and the weight rho: the count is then over
    E - V / rho, the phase-space volume of H u = E rho u.
    """
    v = potential(points).to(torch.float64)
    v, kappa, points, log_weights = _finite_sample(
        v if weight is None else v / weight, kappa, points, log_weights)
    log_const = (
        0.5 * dim * math.log(math.pi) - math.lgamma(0.5 * dim + 1) - dim * math.log(2 * math.pi)
    )

    def log_count(energy: float) -> float:
        terms = _log_weyl_terms(v, log_weights, energy, kappa, dim)
        return float(torch.logsumexp(terms, 0)) + log_const

    def solve(count: float) -> float:
        target = math.log(count)
        lo = float(v.min())
        # The median, not the standard deviation: a steep wall's values reach 1e300 on
        # the far sample, where a variance overflows (the doubling below finds the root).
        span = max(float((v - lo).median()), 1e-6) + abs(lo)
        hi = lo + span
        for _ in range(200):
            if log_count(hi) >= target:
                break
            hi = lo + 2.0 * (hi - lo)
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            if log_count(mid) < target:
                lo = mid
            else:
                hi = mid
        return hi

    def moments(energy: float) -> tuple[torch.Tensor, torch.Tensor]:
        terms = _log_weyl_terms(v, log_weights, energy, kappa, dim)
        w = torch.softmax(terms, 0).unsqueeze(-1)
        mean = (w * points).sum(0)
        centred = points - mean
        return mean, (w * centred).T @ centred

    e1 = solve(1.0)
    el = solve(float(max(modes, 1)))
    _, cov1 = moments(e1)
    mean, covl = moments(el)
    rms1, rmsl = torch.diagonal(cov1).sqrt(), torch.diagonal(covl).sqrt()
    # The weighted mean is noisy (a few far points carry large weights); an offset small
    # against the extent is noise, and centring a symmetric problem matters for its
    # ground state, so snap those to the origin.
    center = tuple(float(c) if abs(c) > 0.2 * r else 0.0 for c, r in zip(mean, rmsl))
    axes = principal_axes(covl)
    along1 = torch.diagonal(axes.T @ cov1 @ axes).clamp_min(0).sqrt()
    alongl = torch.diagonal(axes.T @ covl @ axes).clamp_min(0).sqrt()
    return SpectrumEstimate(
        e1,
        el,
        _floats(rms1),
        _floats(rmsl),
        center,
        tuple(_floats(row) for row in axes),
        _floats(along1),
        _floats(alongl),
    )


def _floats(t: torch.Tensor) -> tuple[float, ...]:
    return tuple(float(v) for v in t)


CORRELATION_THRESHOLD = 0.1


def principal_axes(cov: torch.Tensor) -> torch.Tensor:
    """Orthonormal eigenvectors of a covariance (columns), largest extent first.

    Below ``CORRELATION_THRESHOLD`` of correlation between every pair of coordinates the
    coordinate axes are kept: Monte-Carlo noise must not tilt a separable problem's frame.
    """
    d = cov.shape[0]
    rms = torch.diagonal(cov).clamp_min(1e-300).sqrt()
    corr = cov / (rms.unsqueeze(0) * rms.unsqueeze(1))
    off = corr - torch.diag(torch.diagonal(corr))
    if d == 1 or float(off.abs().max()) < CORRELATION_THRESHOLD:
        return torch.eye(d, dtype=cov.dtype)
    _, vectors = torch.linalg.eigh(cov)
    vectors = vectors.flip(-1)
    # A deterministic sign: each axis points along its largest component's positive side.
    signs = torch.sign(vectors.gather(0, vectors.abs().argmax(0, keepdim=True)))
    return vectors * signs


def log_radial_points(
    dim: int, n: int, generator: torch.Generator, r_min: float = 1e-4, r_max: float = 1e4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Points x = r u, log r uniform, u uniform on the sphere; log weights for integral dx."""
    t = torch.rand(n, generator=generator, dtype=torch.float64)
    log_r = math.log(r_min) + t * (math.log(r_max) - math.log(r_min))
    u = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    u = u / u.norm(dim=1, keepdim=True)
    x = torch.exp(log_r).unsqueeze(-1) * u
    log_sphere = math.log(2.0) + 0.5 * dim * math.log(math.pi) - math.lgamma(0.5 * dim)
    log_w = log_sphere + math.log(math.log(r_max / r_min)) + dim * log_r - math.log(n)
    return x, log_w


def uniform_points(
    lo: torch.Tensor, hi: torch.Tensor, n: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    u = torch.rand(n, lo.shape[0], generator=generator, dtype=torch.float64)
    x = lo + u * (hi - lo)
    log_w = torch.full((n,), float(torch.log(hi - lo).sum()) - math.log(n), dtype=torch.float64)
    return x, log_w


def limit_at_infinity(
    potential: Field, dim: int, generator: torch.Generator, rtol: float = 1e-3
) -> float | None:
    """The continuum threshold: the lowest of V's limits along rays to infinity, ignoring
    the rays on which V grows without bound (they confine); None when no ray has a limit,
    or one falls or oscillates without one.

    Bound states lie below this threshold and the continuum above it, so it is the natural
    shift for problems like hydrogen (the same limit everywhere) and a Morse well (the
    dissociation limit on one side, a wall on the other). Checked on rays in 64 random
    directions at radii 1e4, 1e6 and 1e8.
    """
    u = torch.randn(64, dim, generator=generator, dtype=torch.float64)
    u = u / u.norm(dim=1, keepdim=True)
    near, mid, far = (potential(radius * u) for radius in (1e4, 1e6, 1e8))
    if bool(torch.isnan(far).any() or (far == -math.inf).any()):
        return None
    scale = torch.clamp(far.abs().nan_to_num(posinf=1.0), min=1.0)
    settled = torch.isfinite(far) & ((mid - far).abs() <= rtol * scale)
    growing = (far == math.inf) | ((far > mid) & (mid > near) & ~settled)
    if not bool((settled | growing).all()) or not bool(settled.any()):
        return None
    return float(far[settled].min())


def singular_at_origin(potential: Field, dim: int, generator: torch.Generator) -> bool:
    """Whether |V| blows up at the origin (Coulomb-like): compare radii 1e-6 and 1e-3."""
    u = torch.randn(32, dim, generator=generator, dtype=torch.float64)
    u = u / u.norm(dim=1, keepdim=True)
    near = potential(1e-6 * u).abs()
    mid = potential(1e-3 * u).abs()
    if not bool(torch.isfinite(near).all()):
        return True
    return bool(near.median() > 30.0 * (mid.median() + 1e-12))


def singularity_exponent(potential: Field, dim: int, generator: torch.Generator) -> float:
    """a in |V| ~ r^-a at the origin (0 where V stays bounded), from radii 1e-6 and 1e-4."""
    u = torch.randn(32, dim, generator=generator, dtype=torch.float64)
    u = u / u.norm(dim=1, keepdim=True)
    near = potential(1e-6 * u).abs().median()
    mid = potential(1e-4 * u).abs().median()
    if not bool(torch.isfinite(near)):
        return math.inf
    if float(mid) <= 0.0 or float(near) <= float(mid):
        return 0.0
    return float(torch.log(near / mid)) / math.log(100.0)


def coulomb_charge(potential: Field, dim: int, generator: torch.Generator) -> float | None:
    """Z where V = -Z/r + (bounded) near the origin, the same Z in every direction; None
    for any other behaviour there (bounded, another power, an angular factor).

    r V(r u) at r = 1e-7 and 1e-6 on 32 rays must agree to 1e-3 of Z: the bounded part then
    moves it by at most ~1e-6 |V_reg|, far below that.
    """
    u = torch.randn(32, dim, generator=generator, dtype=torch.float64)
    u = u / u.norm(dim=1, keepdim=True)
    near = 1e-7 * potential(1e-7 * u)
    mid = 1e-6 * potential(1e-6 * u)
    if not bool(torch.isfinite(near).all() and torch.isfinite(mid).all()):
        return None
    charge = -float(near.median())
    if abs(charge) < 1e-9:
        return None
    spread = max(float((near - near.median()).abs().max()), float((mid - near).abs().max()))
    return charge if spread <= 1e-3 * abs(charge) else None


def residual_diverges(potential: Field, dim: int, generator: torch.Generator) -> str | None:
    """Why ||(H - E) u|| is infinite for a function u that does not vanish at the origin
    (a learned function that misses the exact cusp), or None when it is finite: |V u|^2 ~
    r^-2a is integrable near 0 in d dimensions only when 2a < d. (A network with the
    exact Coulomb cusp factor, ``operators.cusp_factor``, has a bounded H u: the kind
    does not ask then.)"""
    a = singularity_exponent(potential, dim, generator)
    if 2.0 * a < dim - 0.1:
        return None
    return (
        f"the potential grows like r^-{a:.2g} at the origin, so in {dim}-D ||H u|| is infinite "
        "for a learned function without the exact cusp (network.cusp gives it for V = -Z/r); "
        "no residual bound exists"
    )
