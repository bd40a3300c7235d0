"""Integral operators (T g)(x) = integral k(x, y) g(y) dnu(y) and their Monte-Carlo moments.

T maps L2(nu) on the input side (coordinates y) to L2(mu) on the output side (coordinates
x). Each measure is given as a sampler of the probability mu / |mu| and the total mass |mu|
(the volume of a box for Lebesgue measure, 1 for a Gaussian measure). With independent
points x_i ~ mu / |mu| (i <= n) and y_j ~ nu / |nu| (j <= m),

    <f_l, f_k>_mu      ~ |mu| mean_i f_l(x_i) f_k(x_i)
    <g_l, g_k>_nu      ~ |nu| mean_j g_l(y_j) g_k(y_j)
    <f_l, T g_k>_mu    ~ |mu| |nu| mean_{i,j} f_l(x_i) k(x_i, y_j) g_k(y_j)

are all unbiased: the last is a mean over every (x_i, y_j) pair, and x and y are
independent. The masses (and importance weights, when points come from a proposal) are
folded into the function values (``f~ = sqrt(|mu| w) f``) and the kernel matrix, so the
losses and read-outs only ever see plain batch means.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from nsvd_cli.numerics.sampling import Sampler

KernelField = Callable[[torch.Tensor], torch.Tensor]  # (..., d_x + d_y) -> (...)


class Density(Protocol):
    def log_density(self, x: torch.Tensor) -> torch.Tensor: ...

    def to(self, device: torch.device | str, dtype: torch.dtype) -> Density: ...


@dataclass
class Measure:
    """A finite measure mu: its total mass, and where the points come from.

    Points are drawn from ``sampler``; when ``target`` is given (the normalised measure's
    density) the sampler is only a proposal and each point carries the importance weight
    w = target / proposal. A proposal wider than a Gaussian measure keeps the estimators'
    variance finite and small where kernels grow in the tails (a heavy-tailed kernel such as
    the Gaussian dependence kernel otherwise makes the cross term's variance explode).
    """

    sampler: Sampler
    mass: float
    target: Density | None = None

    @property
    def dim(self) -> int:
        return self.sampler.dim

    def to(self, device: torch.device | str, dtype: torch.dtype) -> Measure:
        target = None if self.target is None else self.target.to(device, dtype)
        return Measure(self.sampler.to(device, dtype), self.mass, target)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """Importance weights of points from the sampler (ones when it is the measure)."""
        if self.target is None:
            return x.new_ones(x.shape[0])
        proposal: Density = self.sampler  # type: ignore[assignment]
        return torch.exp(self.target.log_density(x) - proposal.log_density(x))


@dataclass
class SingularMoments:
    """Batch estimates of the three matrices the SVD objective is made of."""

    gram_left: torch.Tensor  # (L, L) <f_l, f_k>
    gram_right: torch.Tensor  # (L, L) <g_l, g_k>
    cross: torch.Tensor  # (L, L) <f_l, T g_k>


@dataclass
class IntegralOperator:
    kernel: KernelField
    left: Measure  # mu, the output side (x)
    right: Measure  # nu, the input side (y)

    def to(self, device: torch.device | str, dtype: torch.dtype) -> IntegralOperator:
        return IntegralOperator(
            self.kernel, self.left.to(device, dtype), self.right.to(device, dtype)
        )

    def matrix(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """sqrt(|mu| w_i) k(x_i, y_j) sqrt(|nu| w_j) for every pair: (n, m); with the values
        of ``weighted`` on both sides, the pair mean is |mu| |nu| mean w_i f k w_j g."""
        n, m = x.shape[0], y.shape[0]
        pairs = torch.cat(
            [x.unsqueeze(1).expand(n, m, x.shape[1]), y.unsqueeze(0).expand(n, m, y.shape[1])],
            dim=-1,
        )
        k = self.kernel(pairs)
        # A kernel singular on a set of measure zero (log|x - y|) is hit with probability 0;
        # zeroing such a point keeps it from turning the whole batch into NaN.
        k = torch.where(torch.isfinite(k), k, torch.zeros_like(k))
        k = k * math.sqrt(self.left.mass * self.right.mass)
        if self.left.target is None and self.right.target is None:
            return k
        wx, wy = self.left.weights(x).sqrt(), self.right.weights(y).sqrt()
        return wx.unsqueeze(1) * k * wy.unsqueeze(0)

    def weighted(
        self, f: torch.Tensor, g: torch.Tensor, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Values times sqrt(mass * weight): plain means of products of these (and of the
        matching ``matrix``) are then the inner products of L2(mu) and L2(nu)."""
        wx = (self.left.weights(x) * self.left.mass).sqrt().unsqueeze(1)
        wy = (self.right.weights(y) * self.right.mass).sqrt().unsqueeze(1)
        return f * wx, g * wy

    def moments(self, f: torch.Tensor, g: torch.Tensor, k: torch.Tensor) -> SingularMoments:
        """From weighted values f (n, L) at x, g (m, L) at y and the kernel matrix k (n, m)."""
        n, m = f.shape[0], g.shape[0]
        return SingularMoments(f.T @ f / n, g.T @ g / m, f.T @ (k @ g) / (n * m))


def image_moments(
    f: torch.Tensor, g: torch.Tensor, k: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """<T g_l, T g_k>_mu and <T* f_l, T* f_k>_nu, (L, L) each, from the weighted values and
    kernel matrix of ``moments`` (at least two points per side).

    (T g)(x_i) is estimated by the mean over the y_j, and the square of a mean is biased by
    its variance; the pairs of distinct points j != j' are not: subtracting the j = j' terms
    leaves sum_{j != j'} k_ij g_j k_ij' g_j' / (m (m - 1)), an unbiased estimate of
    (T g)(x_i)^2 (likewise for T* f at y_j over the x_i)."""
    n, m = f.shape[0], g.shape[0]
    tg, tf = k @ g, k.T @ f  # (n, L) and (m, L): m (T g)(x_i) and n (T* f)(y_j)
    k2 = k * k
    image_g = (tg.T @ tg - g.T @ (k2.sum(0).unsqueeze(1) * g)) / (n * m * (m - 1))
    image_f = (tf.T @ tf - f.T @ (k2.sum(1).unsqueeze(1) * f)) / (m * n * (n - 1))
    return image_g, image_f
