"""What every training method provides: a loss from a batch's mode values and operator matrix,
and the method's own reading of the eigenvalues.

A loss receives ``f`` (B, L), the batch values of the learned functions with their graph,
``t`` (L, L), an estimate of ``<f_l, T f_m>`` whose gradient is that of the true quadratic
form, and ``rows``, the same per half batch with the gradient into ``f_l`` only (see
``formulations.py``). It never sees how T was applied.

Most methods are a pure function of the batch (``Stateless``). A method that keeps running
averages across steps (SpIN) holds them itself and hands them to the checkpoint through
``state_dict``; the training loop treats both alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch


@dataclass(frozen=True)
class LossOutput:
    loss: torch.Tensor  # scalar to backpropagate
    per_mode: torch.Tensor  # detached, for logging


Rows = tuple[torch.Tensor, torch.Tensor]
"""Per half batch, <f_l, T f_m> with the gradient into f_l only (see formulations.py)."""

LossFn = Callable[[torch.Tensor, torch.Tensor, Rows], LossOutput]

NativeReadout = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(G, t) -> the method's own estimate of T's eigenvalue for each learned function, from the
Gram matrix G = <f_l, f_m> and t = <f_l, T f_m> (nsvd reports Rayleigh-Ritz values for every
method; this is what the method itself would report)."""


# Weight of the newest batch in SpIN's running averages (Pfau et al.'s value).
DEFAULT_MOVING_AVERAGE = 0.01


@dataclass(frozen=True)
class MethodOptions:
    moving_average: float = DEFAULT_MOVING_AVERAGE


class Method(Protocol):
    def __call__(self, f: torch.Tensor, t: torch.Tensor, rows: Rows) -> LossOutput: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Stateless:
    """A method that is a pure function of the batch."""

    loss: LossFn

    def __call__(self, f: torch.Tensor, t: torch.Tensor, rows: Rows) -> LossOutput:
        return self.loss(f, t, rows)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


MethodFactory = Callable[[torch.nn.Module, MethodOptions], Method]


@dataclass(frozen=True)
class MethodSpec:
    make: MethodFactory
    native_eigenvalues: NativeReadout


def stateless(loss: LossFn) -> MethodFactory:
    def make(network: torch.nn.Module, options: MethodOptions) -> Method:
        return Stateless(loss)

    return make
