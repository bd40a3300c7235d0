"""Settings: everything a run needs besides the problem file, as plain JSON-able data.

``kinds`` derive them from a problem (every default the file left open); results.h5 stores
them so that a finished run can be rebuilt exactly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from nsvd_cli.objectives.methods.base import DEFAULT_MOVING_AVERAGE
from nsvd_cli.training.guard import MAX_ROLLBACKS


@dataclass
class Settings:
    """Everything a run needs besides the problem file; defaults are filled by derive_settings."""

    method: str = "neuralsvd-sequential"
    want: str = "lowest"  # lowest | smallest-singular (of A = H + b . grad) | largest-singular
    steps: int = 20_000
    batch_size: int = 1024
    learning_rate: float = 1e-3
    seed: int = 0
    dtype: str = "float32"
    network: str = "shared-mlp"
    hidden: int = 128
    depth: int = 3
    activation: str = "silu"
    radial_feature: bool = False
    fourier_features: int = 0
    fourier_scale: float = 1.0
    envelope: bool = False
    input_center: list[float] = field(default_factory=list)
    input_scale: list[float] = field(default_factory=list)
    domain: str = "whole-space"  # whole-space | box | region
    sampling_center: list[float] = field(default_factory=list)
    sampling_scales: list[list[float]] = field(default_factory=list)  # (K, d) for Gaussians
    sampling_axes: list[list[float]] = field(default_factory=list)  # (d, d) columns; []: x axes
    bounds_lo: list[float] = field(default_factory=list)
    bounds_hi: list[float] = field(default_factory=list)
    region_acceptance: float = 1.0
    # T = scale * (shift - H). shift None: adaptive, kept above the learned span's
    # Rayleigh-Ritz values (which bound the wanted energies from above).
    shift: float | None = None
    shift_floor: float | None = None  # the adaptive shift never goes below this
    scale: float = 1.0
    energy_estimate: list[float] = field(default_factory=list)  # Weyl E_1, E_L
    export_lo: list[float] = field(default_factory=list)
    export_hi: list[float] = field(default_factory=list)
    eval_samples: int = 1 << 18
    checkpoint_every: int = 2000
    # How the kinetic term is computed in training (formulations.py); read-out is always exact.
    derivatives: str = "auto"
    hutchinson_probes: int = 8
    compile: bool = False
    spin_decay: float = DEFAULT_MOVING_AVERAGE  # SpIN: weight of the newest batch
    max_rollbacks: int = MAX_ROLLBACKS  # after a non-finite step (guard.py)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Settings:
        names = {f.name for f in dataclasses.fields(Settings)}
        return Settings(**{k: v for k, v in data.items() if k in names})
