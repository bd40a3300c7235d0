"""Settings are grouped in memory and flat (the version-1 keys) in results.h5."""

from __future__ import annotations

import json

import pytest

from nsvd_cli.training.settings import FLAT_KEYS, Settings

# The /settings keys of results.h5 before the grouping, in their order: files written then
# must load, and files written now must read the same to tools that parse them.
VERSION_1_KEYS = [
    "method", "want", "steps", "batch_size", "learning_rate", "seed", "dtype", "network",
    "hidden", "depth", "activation", "radial_feature", "fourier_features", "fourier_scale",
    "envelope", "input_center", "input_scale", "domain", "sampling_center", "sampling_scales",
    "sampling_axes", "bounds_lo", "bounds_hi", "region_acceptance", "shift", "shift_floor",
    "scale", "energy_estimate", "export_lo", "export_hi", "eval_samples", "checkpoint_every",
    "derivatives", "hutchinson_probes", "compile", "spin_decay", "max_rollbacks",
]  # fmt: skip


# Keys added since, after them (grouped: top level, network, then optimiser).
LATER_KEYS = [
    "diffusion", "buffer_modes", "cusp", "kinks", "tol", "refine_steps", "quadrature",
]


def test_the_flat_layout_keeps_the_version_1_keys_in_order() -> None:
    assert list(Settings().to_dict()) == VERSION_1_KEYS + LATER_KEYS
    assert list(FLAT_KEYS) == VERSION_1_KEYS + LATER_KEYS


def test_a_file_without_the_later_keys_loads_with_their_defaults() -> None:
    old = {k: v for k, v in Settings().replaced(tol=1e-3).to_dict().items() if k != "tol"}
    assert Settings.from_dict(old).optimiser.tol is None


def test_flat_keys_land_in_their_groups_and_round_trip() -> None:
    flat = Settings().to_dict()
    flat.update(
        network="disjoint-mlp", hidden=17, sampling_scales=[[1.0, 2.0]], sampling_axes=[[1.0]],
        steps=123, shift=-0.5, eval_samples=4096, export_lo=[-3.0], seed=5,
    )  # fmt: skip
    settings = Settings.from_dict(json.loads(json.dumps(flat)))
    assert settings.network.architecture == "disjoint-mlp" and settings.network.hidden == 17
    assert settings.sampler.scales == [[1.0, 2.0]] and settings.sampler.axes == [[1.0]]
    assert settings.optimiser.steps == 123 and settings.transform.shift == -0.5
    assert settings.readout.eval_samples == 4096 and settings.readout.export_lo == [-3.0]
    assert settings.seed == 5
    assert settings.to_dict() == flat


def test_an_older_file_with_unknown_or_missing_keys_still_loads() -> None:
    settings = Settings.from_dict({"hidden": 9, "a_key_from_the_future": 1})
    assert settings.network.hidden == 9
    assert settings.optimiser.steps == Settings().optimiser.steps


def test_to_dict_hands_out_copies() -> None:
    settings = Settings()
    settings.sampler.scales = [[1.0]]
    settings.to_dict()["sampling_scales"][0][0] = 99.0
    assert settings.sampler.scales == [[1.0]]


def test_replaced_leaves_the_original_alone_and_refuses_unknown_keys() -> None:
    base = Settings()
    changed = base.replaced(hidden=7, steps=10)
    assert (changed.network.hidden, changed.optimiser.steps) == (7, 10)
    assert (base.network.hidden, base.optimiser.steps) == (128, 20_000)
    with pytest.raises(KeyError, match="hiddn"):
        base.replaced(hiddn=7)
