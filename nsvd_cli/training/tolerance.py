"""Training to a tolerance (``solve --tol``): when to check, what a check decides, and the
learning-rate schedule of an open-ended run. Pure: the check itself (a read-out and its
residual intervals) is the kind's; this module only reads its numbers.

A fixed-length run follows a cosine to 1% of the base rate, which needs the end of the run
to be known in advance. A run to a tolerance uses restartable cosines instead: its first
cycle is exactly the fixed schedule of a quarter of its budget (the default length when
the budget is the default), so at the end of it a run to a tolerance has had a default
run's schedule (with its buffer function); each further cycle restarts at
``RESTART_PEAK`` of the base rate and anneals again over ``RESTART_LENGTH`` of the first
cycle's steps. A cycle that ends without bringing the geometric mean of the residuals
``IMPROVEMENT`` below the previous cycle's end is a stall, and the run ends there (the
network or the read-out cannot do better).

Residuals are compared only at cycle ends, where the rate has annealed to 1% of the
cycle's peak: mid-cycle checks swing by tens of percent from one to the next (the Morse
well's ground state, 3 x 128 network: 0.44, 0.51, 0.69, 0.33 within 4000 steps at a constant
rate), which made the plateau rule this replaces decay the rate within a few thousand steps
and stop with an interval 4x wider than a default-length run's. The signal is the geometric
mean of all modes' residuals, not the widest interval that decides the stop: that one is
usually the last mode's, whose estimate is the noisiest, and a single check without an
interval would read as a stall. The run ends when every wanted mode's relative half-width
is at most the tolerance, at a stall, or when the step budget or time runs out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from nsvd_cli.errors import RunFileError

CHECK_EVERY = 1000  # steps between checks (a multiple of the progress records' 100)
CHECK_SAMPLES = 1 << 15  # read-out points per check: ~7% of 1000 steps' time on the 2-D oscillator
# A check whose widest interval is within this factor of the tolerance reads again on the
# final read-out's sample: near the tolerance, the read-out noise in a 2^15-point interval
# (its value's +-2.24 s.e., the residual's upper limit) can be what keeps it above, and the
# final read-out (2^18 by default) decides ``tol_met``. Such checks come only near the end.
NEAR = 3.0
# A run of fixed length checks too, only to show its intervals as they fall (live table,
# metrics.csv): about 20 times per run on a smaller sample, ~1% of its time.
WATCH_CHECKS = 20
WATCH_SAMPLES = 1 << 13
IMPROVEMENT = 0.9
RESTART_PEAK = 0.3  # a later cycle's peak rate, over the base
RESTART_LENGTH = 0.5  # a later cycle's steps, over the first cycle's
FLOOR = 0.01  # every cycle anneals to this fraction of its peak, as the fixed schedule
BUDGET_FACTOR = 4  # a run to a tolerance may take this many times the default step count
# Functions trained above the wanted modes in a run to a tolerance: without one the highest
# wanted mode has no gap estimate and gets Weinstein's interval, first order in its residual
# (1-D oscillator, five functions at default length: 1.0e-2 wide for the 5th mode, 2.0e-4
# for the 4th, Kato-Temple), and that one mode would decide when the run stops.
BUFFER_MODES = 1

MET = "met"
STALLED = "stalled"
BUDGET = "budget"
TIME = "time"


def widest(widths: list[float]) -> float:
    """The largest relative half-width; inf when a mode has no interval (or none given)."""
    if not widths or any(not math.isfinite(w) for w in widths):
        return math.inf
    return max(widths)


@dataclass
class IntervalCheck:
    """One check's reading: per wanted mode (ascending), the interval's half-width over its
    centre (nan where no interval), and the residual ||(H - eta) u||."""

    step: int
    widths: list[float]
    residuals: list[float]
    samples: int = CHECK_SAMPLES  # read-out points it was taken on

    @property
    def progress(self) -> float:
        """The geometric mean of the residuals (the plateau signal); inf without one."""
        finite = [r for r in self.residuals if math.isfinite(r) and r > 0]
        if not finite:
            return math.inf
        return math.exp(sum(math.log(r) for r in finite) / len(finite))

    @property
    def widest(self) -> float:
        return widest(self.widths)


def cosine(t: float) -> float:
    """The fixed schedule's shape after its warm-up: 1 at t = 0, FLOOR from t = 1 on."""
    return FLOOR + (1 - FLOOR) * 0.5 * (1.0 + math.cos(math.pi * min(max(t, 0.0), 1.0)))


def first_cycle(budget: int) -> int:
    """The first cycle's steps: a quarter of the budget (``BUDGET_FACTOR``), in whole check
    intervals so that it ends on a check."""
    return max(CHECK_EVERY, round(budget / BUDGET_FACTOR / CHECK_EVERY) * CHECK_EVERY)


@dataclass
class ToleranceState:
    """Where a run to a tolerance stands; round-trips through ``state_dict`` so that a
    resumed run continues in the same cycle."""

    tol: float
    first: int  # the first cycle's steps (``first_cycle``)
    cycle_start: int = 0
    cycle_length: int = 0  # 0: the first cycle's
    peak: float = 1.0  # the current cycle's peak rate over the base
    best: float = math.inf  # the plateau signal (``IntervalCheck.progress``) at the last cycle end
    cycles: int = 0  # restarts so far
    outcome: str | None = None  # MET | STALLED | BUDGET | TIME once the run has ended
    # The step budget (set by the loop from the settings each time it starts, so a resume
    # with more steps moves it): a restarted cycle ends at the latest there, annealed.
    budget: int = 0
    checks: list[IntervalCheck] = field(default_factory=list)

    @property
    def cycle_end(self) -> int:
        return self.cycle_start + (self.cycle_length or self.first)

    def record(self, check: IntervalCheck) -> str | None:
        """Take one check into account; return MET or STALLED when the run should stop."""
        self.checks.append(check)
        if check.widest <= self.tol:
            self.outcome = MET
            return MET
        if check.step < self.cycle_end:
            return None
        signal = check.progress
        if not signal < IMPROVEMENT * self.best:
            self.outcome = STALLED
            return STALLED
        self.best, self.cycles = signal, self.cycles + 1
        self.cycle_start, self.peak = check.step, RESTART_PEAK
        restart = round(self.first * RESTART_LENGTH / CHECK_EVERY) * CHECK_EVERY
        self.cycle_length = max(CHECK_EVERY, restart)
        if self.budget > check.step:
            # A run the budget would end mid-cycle would read out at a high rate.
            self.cycle_length = min(self.cycle_length, self.budget - check.step)
        return None

    def learning_rate_factor(self, step: int) -> float:
        if self.cycles == 0:  # the fixed schedule of the first cycle's length, warm-up first
            warm = max(1, self.first // 100)
            if step < warm:
                return 0.1 + 0.9 * step / warm
            return cosine((step - warm) / max(1, self.first - warm))
        return self.peak * cosine((step - self.cycle_start) / self.cycle_length)

    def state_dict(self) -> dict[str, Any]:
        return {
            "tol": self.tol,
            "first": self.first,
            "cycle_start": self.cycle_start,
            "cycle_length": self.cycle_length,
            "peak": self.peak,
            "best": self.best,
            "cycles": self.cycles,
            "outcome": self.outcome,
            "checks": [vars(c) for c in self.checks],
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> ToleranceState:
        if "first" not in data:
            raise RunFileError(
                "the checkpoint's run to a tolerance was started by an older nsvd (a plateau "
                "schedule, not cosine cycles) and cannot be resumed; start it again"
            )
        state = ToleranceState(float(data["tol"]), int(data["first"]))
        state.cycle_start, state.cycle_length = int(data["cycle_start"]), int(data["cycle_length"])
        state.peak, state.best = float(data["peak"]), float(data["best"])
        state.cycles, state.outcome = int(data["cycles"]), data["outcome"]
        state.checks = [IntervalCheck(**c) for c in data["checks"]]
        return state


def check_every(steps: int, tol: float | None) -> int:
    """Steps between checks: ``CHECK_EVERY`` in a run to a tolerance; else about
    ``WATCH_CHECKS`` per run (at least ``CHECK_EVERY`` apart), on multiples of 100 so that
    each check falls on a recorded step."""
    if tol is not None:
        return CHECK_EVERY
    return max(CHECK_EVERY, -(-steps // (100 * WATCH_CHECKS)) * 100)


def check_samples(tol: float | None) -> int:
    return CHECK_SAMPLES if tol is not None else WATCH_SAMPLES


def needs_closer_look(check: IntervalCheck, tol: float | None, final_samples: int) -> bool:
    """Whether a run to a tolerance should take this check again on the final read-out's
    sample (``NEAR``): close to the tolerance but not under it, on fewer points."""
    if tol is None or check.samples >= final_samples:
        return False
    return tol < check.widest <= NEAR * tol


def is_check_step(step: int, every: int) -> bool:
    return step > 0 and step % every == 0


def explain(state: ToleranceState, final_widest: float, steps: int) -> str:
    """Why the tolerance was or was not met, in a sentence for the end of the run."""
    tol = f"{state.tol:g}"
    if final_widest <= state.tol:
        return f"tolerance {tol} met: every interval's relative half-width <= {final_widest:.2g}"
    last = state.checks[-1].widest if state.checks else math.inf
    widest = "no interval" if not math.isfinite(final_widest) else f"{final_widest:.2g}"
    if state.outcome == MET:  # the check's smaller read-out met it, the final one did not
        return (
            f"tolerance {tol} not met: the check at step {state.checks[-1].step} read "
            f"{last:.2g}, the final read-out {widest} (read-out noise near the tolerance; "
            "raise solver.eval_samples or resume with more steps)"
        )
    if state.outcome == STALLED:
        return (
            f"tolerance {tol} not met: the widest interval stalled at {widest}; after "
            f"{state.cycles + 1} cosine cycles the residuals fell less than "
            f"{1 - IMPROVEMENT:.0%} in the last (the network's size limits them: a wider "
            "network, solver.hidden, or a larger batch may get further)"
        )
    if state.outcome == TIME:
        return f"tolerance {tol} not met: --max-time ran out at {widest}"
    if state.outcome == BUDGET:
        return (
            f"tolerance {tol} not met: the step budget ({steps}) ran out at {widest}; "
            "resume with --steps to continue"
        )
    return f"tolerance {tol} not met: interrupted at step {steps} at {widest}"
