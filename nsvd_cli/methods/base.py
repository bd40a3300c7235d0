"""What every training method provides: a loss from batch values of f and (detached) T f."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LossOutput:
    loss: torch.Tensor  # scalar to backpropagate
    per_mode: torch.Tensor  # detached, for logging


LossFn = Callable[[torch.Tensor, torch.Tensor], LossOutput]
