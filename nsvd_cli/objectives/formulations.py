"""How one training batch turns into the terms the loss needs.

Every formulation returns ``StepTerms``: the mode values ``f`` (B, L) with their autograd
graph, their Gram matrix ``f^T f / B`` and an estimate of the energy matrix
``E_lm = <psi_l, H psi_m>`` whose *gradient* is that of the true quadratic form,
``dE_lm = <d psi_l, H psi_m> + <psi_l, H d psi_m>``. The methods then build
``<f_l, T f_m> = scale * (shift * G_lm - E_lm)`` from them, so no method knows how the
kinetic term was computed. The formulations:

* strong form (``forward-laplacian``, ``hutchinson``, ``autograd``): ``H~h`` is computed
  pointwise without a graph (the engine of ``derivatives.py``) and held fixed; the graph
  runs through ``f`` only. With ``M = f^T (H~h) / B``, self-adjointness gives
  ``dE = dM + dM^T``, so ``E = M + M^T - sg((M + M^T) / 2)`` has the right value and
  gradient. One no-grad jet pass plus one ordinary forward and backward pass per step.
* weak form (``weak``): first derivatives only, ``E_lm = mean(kappa (grad h_l + h_l grad a)
  . A (grad h_m + h_m grad a) + V h_l h_m)`` with the full graph, valid for decaying functions
  and zero boundary values (every domain here); the only form for a matrix diffusion A.
  The backward pass runs through the first-order jet, which costs about three times its
  forward.

With a weight rho, ``f`` is sqrt(rho) h and the strong form's H~h is divided by sqrt(rho)
(``numerics/media.py``): the Gram matrix is then rho's, the rows and residuals unchanged.

``auto`` resolves to ``forward-laplacian``: it is exact and measured cheapest at every
dimension in ``docs/speed.md``; Hutchinson is an explicit choice because it adds variance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import cast

import torch

from nsvd_cli.numerics import derivatives
from nsvd_cli.numerics.derivatives import JetEngine
from nsvd_cli.numerics.networks import ModeNetwork
from nsvd_cli.numerics.sampling import Sampler
from nsvd_cli.objectives.batch import (
    CompiledOperator,
    batch_fields,
    drift_values,
    medium_values,
    mode_values,
    with_boundary,
)


@dataclass(frozen=True)
class StepTerms:
    f: torch.Tensor  # (B, L), with graph
    # Per half batch: <psi_l, H psi_m> with the gradient into psi_l only (the row). Methods
    # that need unbiased products of cross terms with one side held (NeuralEF) use them
    # as they are; the whole-batch energy below is derived from them.
    rows: tuple[torch.Tensor, torch.Tensor]
    # Per function, ||(H - eta_l) psi_l||^2 / ||psi_l||^2 with the graph (``residual_form``
    # only; eta_l its Rayleigh quotient, held fixed).
    residuals: torch.Tensor | None = None

    @cached_property
    def gram(self) -> torch.Tensor:
        """(L, L) f^T f / B, with graph."""
        return self.f.T @ self.f / self.f.shape[0]

    @cached_property
    def energy(self) -> torch.Tensor:
        """(L, L): value ~ <psi_l, H psi_m>, gradient d<psi_l, H psi_m> (both sides)."""
        return symmetric(0.5 * (self.rows[0] + self.rows[1]))


def symmetric(m: torch.Tensor) -> torch.Tensor:
    """From M_lm = <f_l, A f_m> with the gradient into f_l only, for a self-adjoint A: the
    value (M + M^T) / 2 and the gradient dM + dM^T, which is d<f_l, A f_m> because
    <df_m, A f_l> = <f_l, A df_m>."""
    sym = m + m.T
    return sym - (0.5 * sym).detach()


def halves(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two independent half batches (an odd last point is left out)."""
    half = t.shape[0] // 2
    return t[:half], t[half : 2 * half]


def row_products(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """mean(a_l b_m) over the batch with b held fixed: gradient into the row's a_l only."""
    return a.T @ b.detach() / a.shape[0]


def operator_rows(
    terms: StepTerms, shift: float, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per half: <f_l, T f_m> for T = scale * (shift - H), gradient into f_l only."""
    f1, f2 = halves(terms.f)
    return (
        scale * (shift * row_products(f1, f1) - terms.rows[0]),
        scale * (shift * row_products(f2, f2) - terms.rows[1]),
    )


Formulation = Callable[
    [CompiledOperator, Sampler, torch.nn.Module, torch.Tensor, torch.Generator], StepTerms
]


def held_rows(f: torch.Tensor, hh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per half batch, mean(f_l (H~h)_m) with H~h held fixed: the strong form's rows."""
    (f1, f2), (hh1, hh2) = halves(f), halves(hh)
    return row_products(f1, hh1), row_products(f2, hh2)


def held_matrix(f: torch.Tensor, af: torch.Tensor) -> torch.Tensor:
    """<f_l, A f_m> for a self-adjoint A from batch values f (graph) and A f (held fixed)."""
    return symmetric(f.T @ af / f.shape[0])


def strong_form(engine: JetEngine) -> Formulation:
    def terms(
        compiled: CompiledOperator,
        sampler: Sampler,
        network: torch.nn.Module,
        x: torch.Tensor,
        generator: torch.Generator,
    ) -> StepTerms:
        envelope, v, b = batch_fields(compiled, sampler, x)
        m = medium_values(compiled, x)
        with torch.no_grad():
            h = with_boundary(b, engine(cast(ModeNetwork, network), x, generator))
            hh = compiled.operator.apply(h, envelope, v, m=m)
        f, hh = m.frame(mode_values(network, x, None if b is None else b.value), hh)
        return StepTerms(f, held_rows(f, hh))

    return terms


def squared_residuals(h: torch.Tensor, hh: torch.Tensor) -> torch.Tensor:
    """Per column: mean((H~h - eta h)^2) / mean(h^2), with eta = mean(h H~h) / mean(h^2)
    held fixed (the residual's minimum over eta, so its gradient in eta is zero anyway)."""
    norm = (h * h).mean(0)
    eta = ((h * hh).mean(0) / norm).detach()
    return ((hh - eta * h) ** 2).mean(0) / norm


def residual_form(
    compiled: CompiledOperator,
    sampler: Sampler,
    network: torch.nn.Module,
    x: torch.Tensor,
    generator: torch.Generator,
) -> StepTerms:
    """The strong form's terms plus each function's squared residual, which needs the graph
    through the exact jet (about 1.7x a strong-form step: docs/method.md, "Refining the
    residuals"). The energy rows hold H~h fixed as the strong form does."""
    envelope, v, b = batch_fields(compiled, sampler, x)
    m = medium_values(compiled, x)
    h = with_boundary(b, cast(ModeNetwork, network).jet(x))
    f, hh = m.frame(h.value, compiled.operator.apply(h, envelope, v, m=m))
    return StepTerms(f, held_rows(f, hh), squared_residuals(f, hh))


def weak_form(
    compiled: CompiledOperator,
    sampler: Sampler,
    network: torch.nn.Module,
    x: torch.Tensor,
    generator: torch.Generator,
) -> StepTerms:
    envelope, v, b = batch_fields(compiled, sampler, x)
    m = medium_values(compiled, x)
    h = with_boundary(b, cast(ModeNetwork, network).jet(x, order=1))
    half = x.shape[0] // 2
    first, second = (
        compiled.operator.weak_energy(h.at(p), envelope.at(p), v[p], m.at(p))
        for p in (slice(0, half), slice(half, 2 * half))
    )
    return StepTerms(m.weighted(h.value), (first, second))


def squared_form(
    compiled: CompiledOperator,
    sampler: Sampler,
    network: torch.nn.Module,
    x: torch.Tensor,
    generator: torch.Generator,
) -> StepTerms:
    """For the smallest singular values of A = H + b . grad: the quadratic form of A^*A,
    <psi_l, A^*A psi_m> = <A psi_l, A psi_m>, from A~h with its graph (second-order jets),
    so A^*A itself (fourth derivatives) is never formed. Rows per half batch carry the
    gradient into psi_l only, like every formulation."""
    envelope, v, b = batch_fields(compiled, sampler, x)
    h = with_boundary(b, cast(ModeNetwork, network).jet(x))
    ah = compiled.operator.apply(h, envelope, v, drift_values(compiled, x))
    a1, a2 = halves(ah)
    return StepTerms(h.value, (row_products(a1, a1), row_products(a2, a2)))


AUTO = "forward-laplacian"
FORMULATION_NAMES = ("auto", "forward-laplacian", "hutchinson", "weak", "autograd")


def get_formulation(name: str, hutchinson_probes: int = 8) -> Formulation:
    """The formulation registered under ``name`` (``auto`` picks the default)."""
    registry: dict[str, Callable[[], Formulation]] = {
        "forward-laplacian": lambda: strong_form(derivatives.forward_laplacian),
        "hutchinson": lambda: strong_form(derivatives.hutchinson(hutchinson_probes)),
        "autograd": lambda: strong_form(derivatives.autograd),
        "weak": lambda: weak_form,
    }
    key = AUTO if name == "auto" else name
    try:
        return registry[key]()
    except KeyError:
        raise ValueError(
            f"unknown derivatives {name!r} (known: {', '.join(FORMULATION_NAMES)})"
        ) from None
