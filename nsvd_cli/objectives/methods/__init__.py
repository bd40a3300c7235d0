"""Training methods by name. A method is a loss on batch values f and the matrix <f, T f>
(plus any running averages it keeps) and its own reading of the eigenvalues; the reported
eigenvalues (Rayleigh-Ritz on the learned span) are shared by all of them."""

from __future__ import annotations

import torch

from nsvd_cli.objectives.methods.base import (
    LossFn,
    LossOutput,
    Method,
    MethodOptions,
    MethodSpec,
    stateless,
)
from nsvd_cli.objectives.methods.neuralef import neuralef_loss
from nsvd_cli.objectives.methods.neuralsvd import joint_loss, sequential_loss
from nsvd_cli.objectives.methods.spin import make_spin, spin_eigenvalues


def _squared_norms(gram: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """NeuralSVD: at the optimum ||f_l||^2 is the l-th eigenvalue of T."""
    return torch.diagonal(gram)


def _quotients(gram: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """NeuralEF: each output's Rayleigh quotient."""
    return torch.diagonal(t) / torch.diagonal(gram)


METHODS: dict[str, MethodSpec] = {
    "neuralsvd-sequential": MethodSpec(stateless(sequential_loss), _squared_norms),
    "neuralsvd-joint": MethodSpec(stateless(joint_loss), _squared_norms),
    "spin": MethodSpec(make_spin, spin_eigenvalues),
    "neuralef": MethodSpec(stateless(neuralef_loss), _quotients),
}


def get_method(name: str) -> MethodSpec:
    try:
        return METHODS[name]
    except KeyError:
        known = ", ".join(METHODS)
        raise ValueError(f"method {name!r} is not available (available: {known})") from None


def make_method(
    name: str, network: torch.nn.Module, options: MethodOptions | None = None
) -> Method:
    return get_method(name).make(network, options or MethodOptions())


__all__ = [
    "METHODS",
    "LossFn",
    "LossOutput",
    "Method",
    "MethodOptions",
    "MethodSpec",
    "get_method",
    "make_method",
]
