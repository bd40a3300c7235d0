"""The medium of a general second-order operator: -div(A grad u) + V u = lambda rho u.

``A`` (the diffusion) is a scalar field k(x) or a symmetric positive definite matrix field,
``rho`` (the weight) a positive scalar field. Two facts keep the rest of nsvd unchanged:

* A weight is a change of frame. With g = sqrt(rho) h and S = rho^{-1/2} H rho^{-1/2},
  <g_l, g_m> = <h_l, rho h_m>, <g_l, S g_m> = <h_l, H h_m> and
  ||S g - eta g||^2 = ||rho^{-1/2} (H h - eta rho h)||^2, so the Ritz values, the residual
  intervals (Kato-Temple holds for the symmetric S) and every method's Gram matrix come out
  of the unweighted code fed ``(sqrt(rho) h, H h / sqrt(rho))`` (:meth:`MediumValues.frame`).
* The strong form of a scalar diffusion needs only first derivatives of k:
  -div(k grad psi) = -k lap psi - grad k . grad psi, from the jets the Laplacian engines
  already compute. A matrix diffusion's strong form needs the whole Hessian of every
  function, and a diffusion that jumps (a layered medium) has a delta in grad k at the
  interface; both are trained and read out in the weak (energy) form, which needs only
  A grad psi and holds across a jump (the flux A grad psi . n is then continuous).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Field = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class MediumValues:
    """The medium at a batch of points."""

    diffusion: torch.Tensor | None  # (B,) scalar k or (B, d, d) matrix A; None: constant
    gradient: torch.Tensor | None  # (B, d): grad k (a scalar diffusion only)
    weight: torch.Tensor | None  # (B,) rho; None: 1

    @property
    def matrix(self) -> bool:
        return self.diffusion is not None and self.diffusion.dim() == 3

    def flux(self, grad: torch.Tensor) -> torch.Tensor:
        """A grad for gradients of shape (B, d, L) (the constant factor is the caller's)."""
        if self.diffusion is None:
            return grad
        if self.matrix:
            return torch.einsum("bij,bjl->bil", self.diffusion, grad)
        return self.diffusion[:, None, None] * grad

    def frame(self, h: torch.Tensor, hh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(sqrt(rho) h, H h / sqrt(rho)): values whose plain products are rho's inner
        products and whose residuals are measured in the rho^{-1} norm (module docstring)."""
        if self.weight is None:
            return h, hh
        root = self.weight.sqrt().unsqueeze(-1)
        return h * root, hh / root

    def weighted(self, h: torch.Tensor) -> torch.Tensor:
        """sqrt(rho) h: the values whose Gram matrix is <h_l, rho h_m>."""
        return h if self.weight is None else h * self.weight.sqrt().unsqueeze(-1)

    def at(self, index: slice) -> MediumValues:
        return MediumValues(*(None if t is None else t[index] for t in (
            self.diffusion, self.gradient, self.weight)))


NO_MEDIUM = MediumValues(None, None, None)


def joined(parts: list[MediumValues]) -> MediumValues:
    """The values of consecutive chunks of points as one batch."""
    first = parts[0]
    return MediumValues(*(None if getattr(first, name) is None else torch.cat(
        [getattr(p, name) for p in parts]) for name in ("diffusion", "gradient", "weight")))


@dataclass(frozen=True)
class Medium:
    """The fields of the medium (compiled expressions); a field left None is constant
    (the operator's ``kinetic`` factor, weight 1)."""

    diffusion: Field | None = None  # (B, d) -> (B,) or (B, d, d)
    gradient: Field | None = None  # (B, d) -> (B, d): grad k (a scalar diffusion)
    weight: Field | None = None  # (B, d) -> (B,)
    matrix: bool = False  # the diffusion is a d x d matrix (weak form only)
    jumps: bool = False  # a scalar diffusion that may jump (weak form only)

    @property
    def weak_only(self) -> bool:
        """No strong form: a matrix needs every second derivative, a jump a delta in k'."""
        return self.matrix or self.jumps

    def values(self, x: torch.Tensor) -> MediumValues:
        with torch.no_grad():
            return MediumValues(*(None if f is None else f(x) for f in (
                self.diffusion, self.gradient, self.weight)))


def effective_kappa(values: MediumValues, kinetic: float, dim: int) -> torch.Tensor | float:
    """The local kinetic coefficient of the Weyl count, det(kinetic A)^{1/d} / rho: the
    phase-space volume {xi : xi^T A xi <= E rho - V} is that of an isotropic kappa with
    (E - V / rho) in place of E - V."""
    kappa: torch.Tensor | float = kinetic
    if values.diffusion is not None:
        a = values.diffusion
        det = torch.linalg.det(a).clamp_min(0.0) ** (1.0 / dim) if values.matrix else a
        kappa = kinetic * det
    if values.weight is not None:
        kappa = kappa / values.weight
    return kappa
