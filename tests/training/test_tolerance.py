"""The decisions of a run to a tolerance: when it stops, when its learning rate decays, and
the state a resumed run continues from."""

from __future__ import annotations

import math

import pytest

from nsvd_cli.errors import RunFileError
from nsvd_cli.training import tolerance as tl
from nsvd_cli.training.tolerance import IntervalCheck, ToleranceState


def check(step: int, widths: list[float], residuals: list[float] | None = None) -> IntervalCheck:
    return IntervalCheck(step, widths, residuals if residuals is not None else [1.0] * len(widths))


def test_met_when_every_width_is_at_most_the_tolerance() -> None:
    state = ToleranceState(1e-3, FIRST)
    assert state.record(check(1000, [5e-4, 2e-3])) is None  # one mode still too wide
    assert state.outcome is None
    assert state.record(check(2000, [5e-4, 1e-3])) == tl.MET
    assert state.outcome == tl.MET


def test_a_mode_without_an_interval_never_meets_the_tolerance() -> None:
    assert check(1, [1e-6, math.nan]).widest == math.inf
    state = ToleranceState(1.0, FIRST)
    assert state.record(check(1000, [1e-6, math.nan])) is None


FIRST = 10_000  # the first cycle's steps in these tests


def _state(tol: float = 1e-6) -> ToleranceState:
    return ToleranceState(tol, FIRST)


def test_the_first_cycle_is_the_fixed_schedule_of_its_length() -> None:
    from nsvd_cli.training.loop import learning_rate_factor

    state = _state()
    for step in (0, 50, 100, 2_500, 5_000, 9_999, 10_000, 12_000):
        assert state.learning_rate_factor(step) == pytest.approx(learning_rate_factor(step, FIRST))
    assert tl.first_cycle(4 * 29_000) == 29_000
    assert tl.first_cycle(4 * 29_050) % tl.CHECK_EVERY == 0  # ends on a check


def test_no_decision_before_a_cycle_ends() -> None:
    state = _state()
    for step in range(1_000, FIRST, 1_000):
        assert state.record(check(step, [1.0], [1.0])) is None  # no progress, but mid-cycle
    assert state.cycles == 0


def test_a_cycle_end_with_progress_restarts_lower_and_shorter() -> None:
    state = _state()
    assert state.record(check(FIRST, [1.0], [0.5])) is None
    assert (state.cycles, state.cycle_start, state.peak) == (1, FIRST, tl.RESTART_PEAK)
    length = int(FIRST * tl.RESTART_LENGTH)
    assert state.cycle_end == FIRST + length
    assert state.learning_rate_factor(FIRST) == pytest.approx(tl.RESTART_PEAK)
    assert state.learning_rate_factor(FIRST + length) == pytest.approx(tl.RESTART_PEAK * tl.FLOOR)
    # the next end improves by more than 10%: another cycle
    assert state.record(check(FIRST + length, [1.0], [0.5 * tl.IMPROVEMENT * 0.99])) is None
    assert state.cycles == 2


def test_a_restarted_cycle_ends_at_the_budget_at_the_latest_annealed() -> None:
    """The budget would otherwise cut the last cycle near its peak rate and the final
    read-out would see a network mid-way (a Morse run whose budget came half-way into a
    cycle read out 3.2e-3 wide; at the cycle end before, 1.1e-3)."""
    state = _state()
    state.budget = FIRST + 3000
    assert state.record(check(FIRST, [1.0], [0.5])) is None
    assert state.cycle_end == state.budget  # not FIRST + RESTART_LENGTH * FIRST
    assert state.learning_rate_factor(state.budget) == pytest.approx(tl.RESTART_PEAK * tl.FLOOR)


def test_a_cycle_end_without_enough_progress_is_a_stall() -> None:
    state = _state()
    state.record(check(FIRST, [1.0], [0.5]))
    end = state.cycle_end
    assert state.record(check(end, [1.0], [0.5 * tl.IMPROVEMENT * 1.01])) == tl.STALLED
    assert state.outcome == tl.STALLED


def test_the_plateau_signal_is_the_geometric_mean_of_the_residuals() -> None:
    assert check(1, [1.0, 1.0], [1e-2, 1e-4]).progress == pytest.approx(1e-3)
    assert check(1, [1.0], [math.nan]).progress == math.inf


def test_an_older_plateau_checkpoint_is_refused_with_a_reason() -> None:
    old = {"tol": 1e-3, "scale": 0.3, "best": 1.0, "stalls": 1, "outcome": None, "checks": []}
    with pytest.raises(RunFileError, match="started by an older nsvd"):
        ToleranceState.from_dict(old)


def test_state_round_trip() -> None:
    state = ToleranceState(2e-4, 2000)
    for i, r in enumerate([1.0, 0.5, 0.4, 0.3]):
        state.record(check(1000 * (i + 1), [0.1, math.nan], [r, r]))
    copy = ToleranceState.from_dict(state.state_dict())
    assert copy.state_dict() == state.state_dict()
    assert (copy.cycles, copy.cycle_end, len(copy.checks)) == (state.cycles, state.cycle_end, 4)


@pytest.mark.parametrize(
    ("outcome", "words"),
    [
        (tl.STALLED, "stalled"),
        (tl.TIME, "--max-time"),
        (tl.BUDGET, "step budget"),
        (tl.MET, "read-out noise"),
        (None, "interrupted at step 5000"),  # Ctrl-C: not the budget's fault
    ],
)
def test_explanations_say_why_the_tolerance_was_not_met(outcome: str | None, words: str) -> None:
    state = ToleranceState(1e-3, FIRST)
    state.checks.append(check(5000, [5e-4]))
    state.outcome = outcome
    text = tl.explain(state, 2e-3, 5000)
    assert "not met" in text and words in text
    assert "met:" in tl.explain(state, 5e-4, 5000)


def test_the_training_state_carries_the_tolerance_through_a_checkpoint() -> None:
    import torch

    from nsvd_cli.training.loop import init_state
    from nsvd_cli.training.settings import Settings

    class Tiny:
        settings = Settings().replaced(tol=1e-3)

        def make_network(self) -> torch.nn.Module:
            return torch.nn.Linear(1, 2)

    state = init_state(Tiny(), torch.device("cpu"))
    assert state.tolerance is not None and state.tolerance.tol == 1e-3
    state.tolerance.record(check(1000, [0.5], [0.2]))
    saved = state.state_dict()
    fresh = init_state(Tiny(), torch.device("cpu"))
    fresh.load_state_dict(saved)
    assert fresh.tolerance is not None
    assert fresh.tolerance.state_dict() == state.tolerance.state_dict()


def test_checks_fall_on_recorded_steps_about_twenty_times_a_run() -> None:
    assert tl.check_every(29_000, 1e-3) == tl.CHECK_EVERY
    assert tl.check_every(5_000, None) == tl.CHECK_EVERY  # never more often than that
    every = tl.check_every(71_000, None)
    assert every % 100 == 0 and 71_000 // every == tl.WATCH_CHECKS - 1
    assert tl.check_samples(1e-3) > tl.check_samples(None)


def test_a_check_near_the_tolerance_is_taken_again_on_the_final_sample() -> None:
    final = 1 << 18
    near = IntervalCheck(1000, [2.5e-3], [1.0], samples=1 << 15)
    assert tl.needs_closer_look(near, 1e-3, final)
    assert not tl.needs_closer_look(IntervalCheck(1000, [4e-3], [1.0]), 1e-3, final)  # far
    assert not tl.needs_closer_look(IntervalCheck(1000, [9e-4], [1.0]), 1e-3, final)  # met
    assert not tl.needs_closer_look(IntervalCheck(1000, [2.5e-3], [1.0], final), 1e-3, final)
    assert not tl.needs_closer_look(near, None, final)  # a fixed-length run only shows them


def test_an_old_checkpoints_checks_load_with_the_check_sample_size() -> None:
    data = ToleranceState(1e-3, FIRST).state_dict()
    data["checks"] = [{"step": 1000, "widths": [0.1], "residuals": [1.0]}]
    assert ToleranceState.from_dict(data).checks[0].samples == tl.CHECK_SAMPLES
