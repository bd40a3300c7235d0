"""What every training method provides: a loss from a batch's mode values and operator matrix.

A loss receives ``f`` (B, L), the batch values of the learned functions with their graph,
``t`` (L, L), an estimate of ``<f_l, T f_m>`` whose gradient is that of the true quadratic
form, and ``rows``, the same per half batch with the gradient into ``f_l`` only (see
``formulations.py``). It never sees how T was applied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LossOutput:
    loss: torch.Tensor  # scalar to backpropagate
    per_mode: torch.Tensor  # detached, for logging


Rows = tuple[torch.Tensor, torch.Tensor]
"""Per half batch, <f_l, T f_m> with the gradient into f_l only (see formulations.py)."""

LossFn = Callable[[torch.Tensor, torch.Tensor, Rows], LossOutput]
