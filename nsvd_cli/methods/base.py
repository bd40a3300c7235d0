"""What every training method provides: a loss from a batch's mode values and operator matrix.

A loss receives ``f`` (B, L), the batch values of the learned functions with their graph, and
``t`` (L, L), an estimate of ``<f_l, T f_m>`` whose gradient is that of the true quadratic
form (see ``formulations.py``). It never sees how T was applied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LossOutput:
    loss: torch.Tensor  # scalar to backpropagate
    per_mode: torch.Tensor  # detached, for logging


LossFn = Callable[[torch.Tensor, torch.Tensor], LossOutput]
