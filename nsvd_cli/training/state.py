"""The training state: everything that decides the next step, round-tripping through
``state_dict`` so that a resumed run continues bit for bit; and the training dtypes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from nsvd_cli.objectives.methods import Method
from nsvd_cli.objectives.readout import ritz_from_moments
from nsvd_cli.training.settings import Settings
from nsvd_cli.training.tolerance import ToleranceState

# "tf32": float32 tensors with TensorFloat-32 matrix products on CUDA (about 10 mantissa
# bits in products: faster on recent GPUs, for quick runs); on CPU it is float32.
# "bf16-mixed": float32 parameters and loss; the network and the operator terms are
# evaluated under bfloat16 autocast (8 mantissa bits). The read-out is float64 always.
DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "tf32": torch.float32,
    "bf16-mixed": torch.float32,
}
MOMENT_DECAY = 0.95


class Trainable(Protocol):
    """What ``init_state`` needs: an eigenproblem or a singular problem, compiled."""

    settings: Settings

    def make_network(self) -> torch.nn.Module: ...


@dataclass
class Snapshot:
    step: int
    loss: float
    shift: float
    eigenvalues: list[float]
    elapsed: float
    # Checkpoints written before the learning rate was logged load with NaN.
    learning_rate: float = float("nan")
    # A run to a tolerance: the check made at this step (relative interval half-widths and
    # residuals per mode); empty at other steps.
    widths: list[float] = field(default_factory=list)
    residuals: list[float] = field(default_factory=list)


@dataclass
class TrainState:
    network: torch.nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    step: int = 0
    shift: float = 0.0
    gram: torch.Tensor | None = None  # running E[h h^T]
    energy: torch.Tensor | None = None  # running E[h (H~h)^T]; singular problems: <f, T g^T>
    right_gram: torch.Tensor | None = None  # singular problems: running <g, g^T>
    method: Method | None = None  # built by init_state; may hold running averages (SpIN)
    elapsed: float = 0.0
    history: list[Snapshot] = field(default_factory=list)
    # Divergence roll-backs so far, the learning-rate factor they left, and what blew up.
    rollbacks: int = 0
    lr_scale: float = 1.0
    divergences: list[str] = field(default_factory=list)
    tolerance: ToleranceState | None = None  # a run to a tolerance (solver.tol)

    def state_dict(self) -> dict[str, Any]:
        return {
            "network": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "step": self.step,
            "shift": self.shift,
            "gram": self.gram,
            "energy": self.energy,
            "right_gram": self.right_gram,
            "elapsed": self.elapsed,
            "method": self.method.state_dict() if self.method is not None else {},
            "history": [vars(s) for s in self.history],
            "rollbacks": self.rollbacks,
            "lr_scale": self.lr_scale,
            "divergences": list(self.divergences),
            "tolerance": None if self.tolerance is None else self.tolerance.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"].cpu())
        self.step = int(state["step"])
        self.shift = float(state["shift"])
        self.gram = state["gram"]
        self.energy = state["energy"]
        self.right_gram = state.get("right_gram")
        self.elapsed = float(state["elapsed"])
        if self.method is not None:
            self.method.load_state_dict(state.get("method", {}))
        self.history = [Snapshot(**s) for s in state["history"]]
        self.rollbacks = int(state.get("rollbacks", 0))
        self.lr_scale = float(state.get("lr_scale", 1.0))
        self.divergences = list(state.get("divergences", []))
        tolerance = state.get("tolerance")
        self.tolerance = None if tolerance is None else ToleranceState.from_dict(tolerance)

    def current_eigenvalues(self, functions: int | None = None) -> list[float]:
        """Ritz values of the running moments, of the first ``functions`` learned functions
        (None: all)."""
        if self.gram is None or self.energy is None:
            return []
        lead = slice(0, functions)
        e, _ = ritz_from_moments(self.gram[lead, lead].double(), self.energy[lead, lead].double())
        return [float(v) for v in e]
