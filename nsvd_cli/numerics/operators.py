"""Schrödinger operators H = -kappa * Laplacian + V in the sampler's frame.

The network's output ``h`` (already multiplied by the boundary factor) is related to the
physical function by ``psi = e^a h`` (``a`` from the sampler, see ``sampling.py``). The
operator that acts on ``h`` is the similarity transform ``H~ = e^{-a} H e^{a}``::

    H~ h = -kappa * (lap h + 2 grad a . grad h + (lap a + |grad a|^2) h) + V h

so that ``psi H psi / p = h H~ h`` pointwise. Everything here is exact (jets, no finite
differences; Hutchinson jets give unbiased estimates) and batched over all modes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from nsvd_cli.numerics.jets import Derivatives, Jet, radius
from nsvd_cli.numerics.media import NO_MEDIUM, Medium, MediumValues

Field = Callable[[torch.Tensor], torch.Tensor]
JetField = Callable[[torch.Tensor], Jet]


def finite_potential(potential: Field, x: torch.Tensor) -> torch.Tensor:
    """V(x) with non-finite values (a Coulomb centre hit exactly) replaced by 0.

    Such points have probability zero under any sampler here; zeroing keeps one unlucky
    point from turning a whole batch into NaN.
    """
    v = potential(x)
    return torch.where(torch.isfinite(v), v, torch.zeros_like(v))


@dataclass(frozen=True)
class Schrodinger:
    """H = -kinetic Laplacian + V, plus ``drift`` b . grad when given (then A = H + b . grad
    is not self-adjoint, and only its singular values are asked for); with a ``medium``,
    H = -kinetic div(A grad) + V over the weight rho (``media.py``)."""

    kinetic: float
    potential: Field
    drift: Field | None = None  # (B, d) -> (B, d): the vector field b
    medium: Medium = Medium()
    # 1-D: where a coefficient may jump (quadrature read-outs split their panels there)
    jumps_at: tuple[float, ...] = ()
    # a coefficient may jump somewhere (in 2-D and 3-D, where jumps are not located, the
    # read-out keeps sampling: a product rule across a jump is off by about 1e-4)
    may_jump: bool = False

    @property
    def medium_weak_only(self) -> bool:
        return self.medium.weak_only

    def apply(
        self, h: Jet, envelope: Jet, v: torch.Tensor, b: torch.Tensor | None = None,
        m: MediumValues = NO_MEDIUM,
    ) -> torch.Tensor:
        """H~ h for h of value shape (B, L), envelope a of value shape (B,), V of shape (B,);
        with the drift's values ``b`` (B, d) also ``e^{-a} b . grad(e^a h) = b . grad h +
        (b . grad a) h``.

        ``envelope`` is an exact jet; ``h`` may carry Hutchinson tangents, in which case the
        term ``grad a . grad h`` is estimated along the same directions (unbiased); the drift
        needs exact first derivatives.
        """
        assert h.lap is not None, "the strong form needs second-order jets"
        a = envelope.in_frame_of(h).unsqueeze_features()
        cross = 2.0 * h.dot(a)
        assert envelope.lap is not None, "the envelope is an exact second-order jet"
        mult = envelope.lap + (envelope.grad * envelope.grad).sum(1)
        kin = h.lap + cross + mult.unsqueeze(-1) * h.value
        if m.diffusion is not None:
            kin = _scalar_diffusion(kin, h, envelope, m)
        out = -self.kinetic * kin + v.unsqueeze(-1) * h.value
        if b is not None:
            assert h.tangents is None, "a drift needs exact gradients (not Hutchinson)"
            along = torch.einsum("bd,bdl->bl", b, h.grad)
            out = out + along + (b * envelope.grad).sum(1).unsqueeze(-1) * h.value
        return out

    def weak_energy(
        self, h: Jet, envelope: Jet, v: torch.Tensor, m: MediumValues = NO_MEDIUM
    ) -> torch.Tensor:
        """The (L, L) matrix <psi_l, H psi_m> from first derivatives only (the energy form),
        with the gradient into psi_l only (``formulations.symmetric`` gives both sides).

        Integrating by parts, <psi_l, -lap psi_m> = <grad psi_l, grad psi_m> when boundary
        values vanish or the functions decay; per sample (psi = e^a h, p = e^{2a})
        grad psi . grad psi' / p = (grad h + h grad a) . (grad h' + h' grad a); a medium's
        A sits between the two factors.
        """
        assert h.tangents is None, "the weak form needs exact first derivatives"
        u = h.grad + h.value.unsqueeze(1) * envelope.grad.unsqueeze(-1)  # (B, d, L)
        n = h.value.shape[0]
        kinetic = torch.einsum("bdl,bdm->lm", u, m.flux(u.detach())) / n
        potential = (h.value * v.unsqueeze(-1)).T @ h.value.detach() / n
        return self.kinetic * kinetic + potential


def _scalar_diffusion(kin: torch.Tensor, h: Jet, envelope: Jet, m: MediumValues) -> torch.Tensor:
    """e^{-a} div(k grad(e^a h)) from the frame Laplacian ``kin``: k kin + grad k . (grad h +
    h grad a), for a scalar diffusion k (a matrix one is trained in the weak form only)."""
    assert m.diffusion is not None and m.gradient is not None and not m.matrix, (
        "the strong form takes a scalar diffusion (a matrix one is weak-form only)")
    assert h.tangents is None, "a varying diffusion needs exact gradients (not Hutchinson)"
    u = h.grad + h.value.unsqueeze(1) * envelope.grad.unsqueeze(-1)  # (B, d, L)
    along = torch.einsum("bd,bdl->bl", m.gradient, u)
    return m.diffusion.unsqueeze(-1) * kin + along


def box_factor(
    lo: torch.Tensor, hi: torch.Tensor, faces: tuple[tuple[bool, bool], ...] | None = None
) -> JetField:
    """b(x) = prod_i (x_i - lo_i)(hi_i - x_i) / w_i^2, w_i the half width: 1 at the centre.

    It vanishes on every face, so b * network satisfies the Dirichlet condition exactly.
    ``faces`` (per axis: whether its low and high face are Dirichlet) keeps only those
    factors: (x_i - lo_i) / w_i or (hi_i - x_i) / w_i for one face, 1 for none; the other
    walls are free (Neumann, natural in the energy form).
    """
    if faces is not None and not all(low and high for low, high in faces):
        return _face_factor(lo, hi, faces)

    def factor(x: torch.Tensor) -> Jet:
        low, up = lo.to(x), hi.to(x)
        w2 = ((up - low) / 2) ** 2
        q = (x - low) * (up - x) / w2  # (B, d)
        dq = (up + low - 2 * x) / w2
        d2q = -2.0 / w2
        b, d = x.shape
        jet = Jet.constant(x.new_ones(b), d)
        for i in range(d):
            grad = x.new_zeros(b, d)
            grad[:, i] = dq[:, i]  # (B, d): scalar jets keep the coordinate axis last
            jet = jet * Jet(q[:, i], grad, d2q[i].expand(b))
        return jet

    return factor


def _face_factor(
    lo: torch.Tensor, hi: torch.Tensor, faces: tuple[tuple[bool, bool], ...]
) -> JetField:
    def factor(x: torch.Tensor) -> Jet:
        low, up = lo.to(x), hi.to(x)
        w = (up - low) / 2
        b, d = x.shape
        jet = Jet.constant(x.new_ones(b), d)
        for i, (at_low, at_high) in enumerate(faces):
            if not (at_low or at_high):
                continue
            grad = x.new_zeros(b, d)
            if at_low and at_high:
                q = (x[:, i] - low[i]) * (up[i] - x[:, i]) / w[i] ** 2
                grad[:, i] = (up[i] + low[i] - 2 * x[:, i]) / w[i] ** 2
                lap = (-2.0 / w[i] ** 2).expand(b)
            else:
                sign = 1.0 if at_low else -1.0
                q = sign * (x[:, i] - (low[i] if at_low else up[i])) / w[i]
                grad[:, i] = sign / w[i]
                lap = x.new_zeros(b)
            jet = jet * Jet(q, grad, lap)
        return jet

    return factor


def cusp_factor(rate: float) -> JetField:
    """J(x) = exp(-rate * s(r)), s(r) = r / (1 + |rate| r): the exact Coulomb cusp.

    For V = -Z/r + (bounded) and psi = J f with f smooth, the only unbounded terms of
    H psi are (kappa * rate * (d - 1) - Z) J f / r, which vanish for rate = Z / (kappa (d - 1))
    whatever f is: H psi stays bounded, so ||(H - E) psi|| is finite and its Monte-Carlo
    estimate has finite variance. s bends over at r ~ 1 / |rate| (the Bohr radius), so J
    tends to the constant e^{-sign(rate)} instead of imposing a decay rate on the states.
    """
    bend = abs(rate)

    def profile(r: torch.Tensor, second: bool = True) -> Derivatives:
        q = 1.0 / (1.0 + bend * r)
        j = torch.exp(-rate * r * q)
        ds = q * q  # s'(r)
        d2s = -2.0 * bend * q * q * q
        return j, -rate * ds * j, (rate * rate * ds * ds - rate * d2s) * j

    def factor(x: torch.Tensor) -> Jet:
        return radius(Jet.variable(x)).apply(profile)

    return factor


def product_factor(first: JetField | None, second: JetField | None) -> JetField | None:
    """The pointwise product of two optional factors (a wall factor and a cusp factor)."""
    if first is None or second is None:
        return first or second
    a, b = first, second
    return lambda x: a(x) * b(x)
