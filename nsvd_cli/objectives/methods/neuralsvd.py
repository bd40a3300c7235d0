"""NeuralSVD for self-adjoint operators (f = g): the nested LoRA objective.

For functions f_1..f_L and an operator T, the low-rank approximation objective is

    L(f_1..f_L) = -2 sum_l <f_l, T f_l> + sum_{l,m} <f_l, f_m>^2,

minimised by the top-L eigenfunctions, scaled so that ||f_l||^2 = lambda_l. Nesting orders
them:

* sequential: f_m receives the gradient of L(f_1..f_m) with f_1..f_{m-1} held fixed, i.e. of
      -2 <f_m, T f_m> + <f_m, f_m>^2 + 2 sum_{l<m} <sg f_l, f_m>^2;
* joint: the gradient of sum_l c_l L(f_1..f_l) with uniform c_l, i.e. per-mode weights
      w_l = sum_{k>=l} c_k on the linear terms and M_lm = min(w_l, w_m) on the quadratic ones.

Estimates from one batch: the quadratic term uses two independent half batches
(E[G1_lm G2_lm] = <f_l, f_m>^2, unbiased); the linear term is the diagonal of ``t``, the
batch estimate of <f_l, T f_m> (built by ``formulations.py`` so that its gradient is
d<f_l, T f_l>, whether or not the graph runs through the Laplacian).
Each mode's gradient is divided by its current ||f_m||^2 (detached). That is a
positive per-mode preconditioner: every mode's own gradient vanishes at the solution, so it
does not move the optimum, but it stops small eigenvalues (the top shells of a Coulomb
problem) from being starved by large ones.
"""

from __future__ import annotations

import torch

from nsvd_cli.objectives.methods.base import LossOutput, Rows


def _scale_gradient(f: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Same values as f; gradient into column m multiplied by factor[m]."""
    return f * factor + (f * (1.0 - factor)).detach()


def _mode_preconditioner(f: torch.Tensor) -> torch.Tensor:
    norms = (f.detach() ** 2).mean(0)
    return 1.0 / norms.clamp_min(1e-3 * float(norms.max().clamp_min(1e-30)))


def _preconditioned(f: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """f and the linear terms diag(t) with the gradient into mode m scaled by 1/||f_m||^2.

    Each linear term depends on its own mode only, so scaling its gradient is the same as
    scaling the gradient into that mode, whatever the graph behind ``t``.
    """
    factor = _mode_preconditioner(f)
    return _scale_gradient(f, factor), _scale_gradient(torch.diagonal(t), factor)


def sequential_loss(f: torch.Tensor, t: torch.Tensor, rows: Rows | None = None) -> LossOutput:
    f, linear = _preconditioned(f, t)
    half = f.shape[0] // 2
    f1, f2 = f[:half], f[half : 2 * half]
    # A[m, l] = <f_m, sg f_l>: gradient only into the later mode m when l < m.
    a1 = f1.T @ f1.detach() / half
    a2 = f2.T @ f2.detach() / half
    g1 = (f1 * f1).mean(0)
    g2 = (f2 * f2).mean(0)
    lower = torch.tril(torch.ones_like(a1), diagonal=-1)
    quad = g1 * g2 + 2.0 * (lower * a1 * a2).sum(1)
    per_mode = -2.0 * linear + quad
    return LossOutput(per_mode.sum(), per_mode.detach())


def joint_loss(f: torch.Tensor, t: torch.Tensor, rows: Rows | None = None) -> LossOutput:
    f, linear = _preconditioned(f, t)
    n_modes = f.shape[1]
    w = torch.arange(n_modes, 0, -1, dtype=f.dtype, device=f.device) / n_modes
    mask = torch.minimum(w.unsqueeze(0), w.unsqueeze(1))
    half = f.shape[0] // 2
    f1, f2 = f[:half], f[half : 2 * half]
    g1 = f1.T @ f1 / half
    g2 = f2.T @ f2 / half
    per_mode = -2.0 * w * linear + (mask * g1 * g2).sum(1)
    return LossOutput(per_mode.sum(), per_mode.detach())
