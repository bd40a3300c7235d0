"""NeuralEF (Deng, Shi, Zhu 2022) in the unbiased EigenGame form the NeuralSVD paper ran.

Each output is normalised over the batch, ``g_j = f_j / sqrt(<f_j, f_j>)``, and mode j
maximises its Rayleigh quotient while being penalised for overlapping, through T, with the
earlier modes, which it cannot move:

    loss_j = -R_jj + sum_{i<j} R_ji^2 / sg(R_ii),      R_ji = <g_j, T sg(g_i)>.

The square is estimated without bias from two independent half batches
(``R_ji^2 ~ R1_ji R2_ji``, each with the gradient into mode j only); ``R_jj`` uses the whole
batch with the gradient of the quotient ``<f_j, T f_j> / <f_j, f_j>``. At the optimum the
g_j are the top eigenfunctions of T in order and ``R_jj`` its eigenvalues; nsvd's shared
Rayleigh-Ritz read-out is used for the reported values all the same.
"""

from __future__ import annotations

import torch

from nsvd_cli.objectives.methods.base import LossOutput, Rows


def neuralef_loss(f: torch.Tensor, t: torch.Tensor, rows: Rows) -> LossOutput:
    norms = (f * f).mean(0)  # with graph: part of the quotient's gradient
    quotient = torch.diagonal(t) / norms
    # The penalty divides by the earlier modes' eigenvalues, which the method assumes
    # positive; early in training a quotient can sit near zero or below (T is only positive
    # on the wanted span), so its size is floored at 1% of the largest.
    size = quotient.detach().abs()
    held = size.clamp_min(1e-2 * float(size.max()) + 1e-30)
    half = f.shape[0] // 2
    f1, f2 = f[:half], f[half : 2 * half]
    n1 = (f1.detach() ** 2).mean(0)
    n2 = (f2.detach() ** 2).mean(0)
    # R_h[j, i] = rows_h[j, i] / sqrt(|f_j|^2 |sg f_i|^2) on half h; gradient into j only.
    r1 = rows[0] / torch.sqrt((f1 * f1).mean(0).unsqueeze(1) * n1.unsqueeze(0))
    r2 = rows[1] / torch.sqrt((f2 * f2).mean(0).unsqueeze(1) * n2.unsqueeze(0))
    lower = torch.tril(torch.ones_like(t), diagonal=-1)
    penalty = (lower * r1 * r2 / held.unsqueeze(0)).sum(1)
    per_mode = -quotient + penalty
    return LossOutput(per_mode.sum(), per_mode.detach())
