"""Training methods by name. A method is a loss on batch values f and the matrix <f, T f>;
the read-out of eigenvalues (Rayleigh-Ritz on the learned span) is shared by all of them."""

from __future__ import annotations

from .base import LossFn, LossOutput
from .neuralef import neuralef_loss
from .neuralsvd import joint_loss, sequential_loss

METHODS: dict[str, LossFn] = {
    "neuralsvd-sequential": sequential_loss,
    "neuralsvd-joint": joint_loss,
    "neuralef": neuralef_loss,
}


def get_method(name: str) -> LossFn:
    try:
        return METHODS[name]
    except KeyError:
        known = ", ".join(METHODS)
        raise ValueError(f"method {name!r} is not available yet (available: {known})") from None


__all__ = ["METHODS", "LossFn", "LossOutput", "get_method"]
