"""Settings: everything a run needs besides the problem file, as plain JSON-able data.

``kinds`` derive them from a problem (every default the file left open); results.h5 stores
them so that a finished run can be rebuilt exactly. In memory they are grouped (network,
sampler, optimiser, spectral transform, read-out); on disk they stay one flat JSON object
whose keys are the version-1 names (``to_dict`` / ``from_dict``), so files written before
the grouping still load.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from nsvd_cli.objectives.methods.base import DEFAULT_MOVING_AVERAGE
from nsvd_cli.training.guard import MAX_ROLLBACKS


@dataclass(slots=True)
class NetworkSettings:
    """The learned functions' network: its architecture and input normalisation."""

    architecture: str = "shared-mlp"  # a numerics.networks kind
    hidden: int = 128
    depth: int = 3
    activation: str = "silu"
    radial_feature: bool = False
    fourier_features: int = 0
    fourier_scale: float = 1.0
    envelope: bool = False
    # Functions trained above the wanted modes and not reported: their Ritz values give the
    # highest wanted mode an estimated gap (a Kato-Temple interval instead of Weinstein's).
    buffer_modes: int = 0
    # Each output times exp(-cusp * s(|x|)), the exact cusp of V = -Z/r at the origin
    # (numerics.operators.cusp_factor); 0: no factor.
    cusp: float = 0.0
    input_center: list[float] = field(default_factory=list)
    input_scale: list[float] = field(default_factory=list)
    # 1-D: where the diffusion jumps; |x - c| inputs there (numerics.networks)
    kinks: list[float] = field(default_factory=list)


@dataclass(slots=True)
class SamplerSettings:
    """Where the Monte-Carlo points come from."""

    domain: str = "whole-space"  # whole-space | box | region | integral
    center: list[float] = field(default_factory=list)
    scales: list[list[float]] = field(default_factory=list)  # (K, d) for Gaussians
    axes: list[list[float]] = field(default_factory=list)  # (d, d) columns; []: x axes
    bounds_lo: list[float] = field(default_factory=list)
    bounds_hi: list[float] = field(default_factory=list)
    region_acceptance: float = 1.0


@dataclass(slots=True)
class OptimiserSettings:
    """The step budget, batch and learning rate, and the divergence guard's patience."""

    steps: int = 20_000
    batch_size: int = 1024
    learning_rate: float = 1e-3
    max_rollbacks: int = MAX_ROLLBACKS  # after a non-finite step (guard.py)
    checkpoint_every: int = 2000
    # Train until every wanted mode's 95% interval is this narrow, relative (training/
    # tolerance.py); None: a fixed number of steps.
    tol: float | None = None
    # The last this many steps of a fixed run add each function's squared residual to the
    # loss (training/eigen_objective.py; a run to a tolerance does so after its first cycle).
    refine_steps: int = 0


@dataclass(slots=True)
class TransformSettings:
    """T = scale * (shift - H): the transform that makes the wanted energies the top ones."""

    # shift None: adaptive, kept above the learned span's Rayleigh-Ritz values (which bound
    # the wanted energies from above).
    shift: float | None = None
    shift_floor: float | None = None  # the adaptive shift never goes below this
    scale: float = 1.0
    energy_estimate: list[float] = field(default_factory=list)  # Weyl E_1, E_L


@dataclass(slots=True)
class ReadoutSettings:
    """The final Rayleigh-Ritz read-out and the export box."""

    eval_samples: int = 1 << 18
    # The quadrature rule that reads out a box or a planar region (``batch.planned_rule``:
    # gauss-legendre, product-gauss, region-mesh); "" where ``eval_samples`` points are drawn.
    quadrature: str = ""
    export_lo: list[float] = field(default_factory=list)
    export_hi: list[float] = field(default_factory=list)


@dataclass(slots=True)
class Settings:
    """Everything a run needs besides the problem file; defaults are filled by derive_settings."""

    method: str = "neuralsvd-sequential"
    want: str = "lowest"  # lowest | smallest-singular (of A = H + b . grad) | largest-singular
    seed: int = 0
    dtype: str = "float32"
    # How the kinetic term is computed in training (formulations.py); read-out is always exact.
    derivatives: str = "auto"
    # constant (kinetic) | scalar (a field k(x)) | jump (a field k(x) that may jump: weak
    # form only) | matrix (a field A(x): weak form only)
    diffusion: str = "constant"
    hutchinson_probes: int = 8
    compile: bool = False
    spin_decay: float = DEFAULT_MOVING_AVERAGE  # SpIN: weight of the newest batch
    network: NetworkSettings = field(default_factory=NetworkSettings)
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    optimiser: OptimiserSettings = field(default_factory=OptimiserSettings)
    transform: TransformSettings = field(default_factory=TransformSettings)
    readout: ReadoutSettings = field(default_factory=ReadoutSettings)

    @property
    def weak_only(self) -> bool:
        """The diffusion has no strong form here (``numerics/media.py``)."""
        return self.diffusion in ("jump", "matrix")

    def to_dict(self) -> dict[str, Any]:
        """The flat version-1 layout of results.h5 ``/settings``, in its historical order."""
        return {key: _copy(getattr(self._holder(key), attr)) for key, (_, attr) in _FLAT.items()}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Settings:
        """Rebuild from the flat layout; keys this version does not know are ignored."""
        settings = Settings()
        for key, value in data.items():
            if key in _FLAT:
                settings.set_flat(key, value)
        return settings

    def set_flat(self, key: str, value: Any) -> None:
        """Set the field a flat key names (``hidden``, ``sampling_scales``, ...)."""
        if key not in _FLAT:
            raise KeyError(f"no setting named {key!r}; known: {', '.join(_FLAT)}")
        setattr(self._holder(key), _FLAT[key][1], value)

    def replaced(self, **flat: Any) -> Settings:
        """A copy with the fields that flat keys name set (``replaced(hidden=16, steps=100)``)."""
        copy = Settings.from_dict(self.to_dict())
        for key, value in flat.items():
            copy.set_flat(key, value)
        return copy

    def get_flat(self, key: str) -> Any:
        if key not in _FLAT:
            raise KeyError(f"no setting named {key!r}; known: {', '.join(_FLAT)}")
        return getattr(self._holder(key), _FLAT[key][1])

    def _holder(self, key: str) -> Any:
        group = _FLAT[key][0]
        return self if group is None else getattr(self, group)


def _copy(value: Any) -> Any:
    # to_dict hands out plain data that the caller may mutate without touching the settings
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _flat_layout() -> dict[str, tuple[str | None, str]]:
    """Flat key -> (group attribute or None, field name), in the version-1 key order."""
    renamed = {
        ("network", "architecture"): "network",
        ("sampler", "center"): "sampling_center",
        ("sampler", "scales"): "sampling_scales",
        ("sampler", "axes"): "sampling_axes",
    }
    where: dict[str, tuple[str | None, str]] = {}
    for top in dataclasses.fields(Settings):
        group_type = _GROUPS.get(top.name)
        if group_type is None:
            where[top.name] = (None, top.name)
            continue
        for sub in dataclasses.fields(group_type):
            where[renamed.get((top.name, sub.name), sub.name)] = (top.name, sub.name)
    order = [k for k in _VERSION_1_ORDER if k in where]
    return {k: where[k] for k in order + [k for k in where if k not in order]}


_GROUPS: dict[str, type] = {
    "network": NetworkSettings,
    "sampler": SamplerSettings,
    "optimiser": OptimiserSettings,
    "transform": TransformSettings,
    "readout": ReadoutSettings,
}

# The key order results.h5 has always had, so that a file's /settings reads the same.
_VERSION_1_ORDER = (
    "method want steps batch_size learning_rate seed dtype network hidden depth activation "
    "radial_feature fourier_features fourier_scale envelope input_center input_scale domain "
    "sampling_center sampling_scales sampling_axes bounds_lo bounds_hi region_acceptance shift "
    "shift_floor scale energy_estimate export_lo export_hi eval_samples checkpoint_every "
    "derivatives hutchinson_probes compile spin_decay max_rollbacks"
).split()

_FLAT = _flat_layout()
FLAT_KEYS: tuple[str, ...] = tuple(_FLAT)
