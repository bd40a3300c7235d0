"""Divergence: a training step whose loss, gradients or running estimates are not finite.

The loop asks ``step_health`` once per step, after the backward pass and before the
optimiser moves (one device-to-host sync): a bad step never reaches the weights. When a
step is bad, ``diagnose`` walks the step's quantities in the order they were computed
(parameters, sampled points, network output, operator term, loss, gradients, running
moments) and names the first one that is not finite, which is where the blow-up started.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from nsvd_cli.errors import NsvdError
from nsvd_cli.objectives.readout import GRAM_CUTOFF

# Roll-backs before giving up, and the learning-rate factor applied at each one.
MAX_ROLLBACKS = 3
ROLLBACK_LR_FACTOR = 0.5
# Each roll-back re-seeds the sampler (seed + this * count) so the batch that blew up is
# not replayed exactly.
ROLLBACK_SEED_STRIDE = 1_000_003

Check = tuple[str, torch.Tensor | None]


@dataclass(frozen=True)
class Divergence:
    """Where one step blew up: the step number (1-based, the step being taken) and the first
    non-finite quantity, described."""

    step: int
    term: str
    detail: str

    def describe(self) -> str:
        return f"step {self.step}: {self.term} is not finite ({self.detail})"


class TrainingFailed(NsvdError):
    """A run that cannot give trustworthy values; the message says why."""


class Diverged(TrainingFailed):
    """Training stopped: the step kept blowing up after every allowed roll-back."""

    def __init__(
        self, divergence: Divergence, rollbacks: int = 0, good_step: int = 0, lr_scale: float = 1.0
    ) -> None:
        self.divergence = divergence
        self.rollbacks = rollbacks
        self.good_step = good_step
        self.lr_scale = lr_scale
        super().__init__(self.message())

    def message(self) -> str:
        text = f"training diverged at {self.divergence.describe()}"
        if self.rollbacks:
            text += (
                f"; it still did after {self.rollbacks} roll-back(s) to step {self.good_step} "
                f"with the learning rate lowered to {self.lr_scale:g} x its schedule"
            )
        return text


def step_health(
    loss: torch.Tensor, parameters: Iterable[torch.nn.Parameter], moments: Sequence[torch.Tensor]
) -> torch.Tensor:
    """A 0-d bool tensor on the loss's device: loss, every gradient and every running moment
    finite. A sum over a tensor is non-finite exactly when an entry is (inf - inf = nan)."""
    parts = [loss.detach().reshape(1).float()]
    parts += [p.grad.detach().sum().reshape(1).float() for p in parameters if p.grad is not None]
    parts += [m.detach().sum().reshape(1).float() for m in moments]
    return torch.isfinite(torch.cat(parts)).all()


def describe_nonfinite(t: torch.Tensor) -> str:
    """``"NaN at 3 of 1024 entries"``, with inf counts when there are any."""
    t = t.detach()
    nan = int(torch.isnan(t).sum())
    inf = int(torch.isinf(t).sum())
    kinds = [f"NaN at {nan}" if nan else "", f"inf at {inf}" if inf else ""]
    return " and ".join(k for k in kinds if k) + f" of {t.numel()} entries"


def _first_bad(checks: Sequence[Check]) -> tuple[int, str, str] | None:
    for i, (name, value) in enumerate(checks):
        if value is not None and not bool(torch.isfinite(value.detach()).all()):
            return i, name, describe_nonfinite(value)
    return None


def _largest(checks: Sequence[Check]) -> str:
    """The largest magnitude of each quantity: how close to overflow the step came."""
    parts = [
        f"{name} {float(value.detach().abs().max()):.3g}"
        for name, value in checks
        if value is not None and value.numel()
    ]
    return "; largest magnitudes before it: " + ", ".join(parts) if parts else ""


def diagnose(
    step: int,
    network: torch.nn.Module,
    batch_checks: Sequence[Check],
    loss: torch.Tensor,
    moments: Sequence[Check],
) -> Divergence:
    """The first non-finite quantity of a bad step, in the order the step computed them."""
    params = [(f"network parameter {n}", p) for n, p in network.named_parameters()]
    grads = [(f"gradient of {n}", p.grad) for n, p in network.named_parameters()]
    checks: list[Check] = [*params, *batch_checks, ("loss", loss), *grads, *moments]
    found = _first_bad(checks)
    if found is None:  # a transient that did not reproduce on the host; report the loss
        return Divergence(step, "loss", f"value {float(loss):g}")
    index, term, detail = found
    earlier = batch_checks[: max(0, index - len(params))]
    return Divergence(step, term, detail + _largest(earlier))


class Collapsed(TrainingFailed):
    """The read-out found fewer independent learned functions than modes."""


def check_readout(values: torch.Tensor, gram: torch.Tensor, what: str = "eigenvalue") -> None:
    """Raise ``Collapsed`` when a read-out value is not finite: the Rayleigh-Ritz whitening
    drops directions of the Gram matrix below GRAM_CUTOFF of its largest, so a NaN or inf
    there means the learned functions span fewer dimensions than there are modes."""
    bad = [i for i, v in enumerate(values.tolist()) if not math.isfinite(v)]
    if not bad:
        return
    evals = torch.linalg.eigvalsh(0.5 * (gram + gram.T).double()).flip(0)
    rank = int((evals > GRAM_CUTOFF * evals[0].clamp_min(1e-300)).sum())
    listed = ", ".join(f"{float(e):.2g}" for e in evals)
    raise Collapsed(
        f"the read-out gives no finite {what} for mode(s) {bad}: the learned functions span "
        f"{rank} of {len(values)} dimensions (Gram matrix eigenvalues {listed}), so those "
        "modes were not learned"
    )
