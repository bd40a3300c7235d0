"""NeuralSVD for operators that are not self-adjoint: left functions f, right functions g.

The low-rank approximation objective

    L(f, g) = -2 sum_l <f_l, T g_l> + sum_{l,m} <f_l, f_m> <g_l, g_m>

is minimised when f_l g_l^T spans the best rank-L approximation of T; with nesting, pair l
is the l-th singular pair, each scaled so that ||f_l|| ||g_l|| = s_l (the split of s_l
between the two sides is free, so the read-out uses the product). Nesting as for the
eigenproblem:

* sequential: pair m receives the gradient of L(f_1..f_m, g_1..g_m) with the earlier pairs
  held fixed, i.e. of
      -2 <f_m, T g_m> + <f_m, f_m> <g_m, g_m> + 2 sum_{l<m} <sg f_l, f_m> <sg g_l, g_m>;
* joint: sum_l c_l L(f_1..f_l, g_1..g_l) with uniform c_l: per-pair weights
  w_l = sum_{k>=l} c_k on the linear terms and min(w_l, w_m) on the quadratic ones.

Unbiasedness: f is evaluated on points x and g on independent points y, so the products of
the two Gram matrices are products of independent estimates and need no half batches;
``cross`` must estimate <f_l, T g_m> without bias (for an integral operator, the double
mean of f_l(x_i) k(x_i, y_j) g_m(y_j) over all pairs) with its gradient into both sides.
"""

from __future__ import annotations

import torch

from nsvd_cli.objectives.methods.base import LossOutput


def _lower(n: int, like: torch.Tensor) -> torch.Tensor:
    return torch.tril(torch.ones(n, n, dtype=like.dtype, device=like.device), diagonal=-1)


def svd_sequential_loss(f: torch.Tensor, g: torch.Tensor, cross: torch.Tensor) -> LossOutput:
    """f (Bx, L), g (By, L) with graphs; cross (L, L) ~ <f_l, T g_m>."""
    n = f.shape[1]
    # A[m, l] = <f_m, sg f_l>: the gradient goes into the later pair m only when l < m.
    af = f.T @ f.detach() / f.shape[0]
    ag = g.T @ g.detach() / g.shape[0]
    own = (f * f).mean(0) * (g * g).mean(0)
    quad = own + 2.0 * (_lower(n, f) * af * ag).sum(1)
    per_mode = -2.0 * torch.diagonal(cross) + quad
    return LossOutput(per_mode.sum(), per_mode.detach())


def svd_joint_loss(f: torch.Tensor, g: torch.Tensor, cross: torch.Tensor) -> LossOutput:
    n = f.shape[1]
    w = torch.arange(n, 0, -1, dtype=f.dtype, device=f.device) / n
    mask = torch.minimum(w.unsqueeze(0), w.unsqueeze(1))
    gf = f.T @ f / f.shape[0]
    gg = g.T @ g / g.shape[0]
    per_mode = -2.0 * w * torch.diagonal(cross) + (mask * gf * gg).sum(1)
    return LossOutput(per_mode.sum(), per_mode.detach())


SVD_LOSSES = {
    "neuralsvd-sequential": svd_sequential_loss,
    "neuralsvd-joint": svd_joint_loss,
}
