"""Training: the loop, the divergence guard, data-parallel collectives and precision.

Knows objectives and numerics; nothing about files, problems files or screens (the run
layer passes hooks for checkpoints and progress).
"""

from nsvd_cli.training.distributed import LOCAL, Context
from nsvd_cli.training.guard import Check, Collapsed, Diverged, TrainingFailed
from nsvd_cli.training.loop import (
    EigenObjective,
    Objective,
    ProgressHook,
    init_state,
    resolve_device,
    train,
)
from nsvd_cli.training.settings import Settings
from nsvd_cli.training.state import DTYPES, TrainState

__all__ = [
    "DTYPES",
    "LOCAL",
    "Check",
    "Collapsed",
    "Context",
    "Diverged",
    "EigenObjective",
    "Objective",
    "ProgressHook",
    "Settings",
    "TrainState",
    "TrainingFailed",
    "init_state",
    "resolve_device",
    "train",
]
