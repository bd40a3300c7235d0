"""Training to a tolerance (``solve --tol``): when to check, what a check decides, and the
learning-rate schedule of an open-ended run. Pure: the check itself (a read-out and its
residual intervals) is the kind's; this module only reads its numbers.

A fixed-length run follows a cosine to 1% of the base rate, which needs the end of the run
to be known in advance. A run to a tolerance does not know it, so its rate is driven by the
checks instead (plateau decay): it holds the base rate while the residuals keep falling, and
multiplies it by ``DECAY`` when ``PATIENCE`` checks in a row fail to bring their geometric
mean below ``IMPROVEMENT`` times its best since the last decay. Stochastic-gradient noise
sets a floor on the residuals at each rate, so a plateau is the sign that the rate, not the
steps, limits the accuracy. The plateau is judged on the geometric mean of all modes'
residuals, not on the widest interval that decides the stop: that one is usually the last
mode's, whose estimate is the noisiest, and a single check without an interval (one point
holding a quarter of a residual) would read as a stall. The run ends when every wanted
mode's relative half-width is at most the tolerance, when the rate has fallen to
``MIN_SCALE`` of the base and still stalls (the network or the read-out cannot do better),
or when the step budget or time runs out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

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
PATIENCE = 3
DECAY = 0.3
MIN_SCALE = 0.01  # the fixed schedule's floor
WARMUP = 200  # steps of linear warm-up, as the fixed schedule's first 1%
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


@dataclass
class ToleranceState:
    """Where a run to a tolerance stands; round-trips through ``state_dict`` so that a
    resumed run continues with the same rate and patience."""

    tol: float
    scale: float = 1.0  # the learning rate's factor after the decays so far
    best: float = math.inf  # the best plateau signal (``IntervalCheck.progress``) since a decay
    stalls: int = 0
    outcome: str | None = None  # MET | STALLED | BUDGET | TIME once the run has ended
    checks: list[IntervalCheck] = field(default_factory=list)

    def record(self, check: IntervalCheck) -> str | None:
        """Take one check into account; return MET or STALLED when the run should stop."""
        self.checks.append(check)
        if check.widest <= self.tol:
            self.outcome = MET
            return MET
        signal = check.progress
        if signal < IMPROVEMENT * self.best:
            self.best, self.stalls = signal, 0
            return None
        self.stalls += 1
        if self.stalls < PATIENCE:
            return None
        if self.scale <= MIN_SCALE * (1 + 1e-9):
            self.outcome = STALLED
            return STALLED
        self.scale = max(self.scale * DECAY, MIN_SCALE)
        self.best, self.stalls = signal, 0
        return None

    def learning_rate_factor(self, step: int) -> float:
        if step < WARMUP:
            return self.scale * (0.1 + 0.9 * step / WARMUP)
        return self.scale

    def state_dict(self) -> dict[str, Any]:
        return {
            "tol": self.tol,
            "scale": self.scale,
            "best": self.best,
            "stalls": self.stalls,
            "outcome": self.outcome,
            "checks": [vars(c) for c in self.checks],
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> ToleranceState:
        state = ToleranceState(float(data["tol"]))
        state.scale, state.best = float(data["scale"]), float(data["best"])
        state.stalls, state.outcome = int(data["stalls"]), data["outcome"]
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
            f"tolerance {tol} not met: the widest interval stalled at {widest} with the "
            f"learning rate at {MIN_SCALE:g} of its base (a larger network, more modes as a "
            "buffer above the wanted ones, or a larger batch may get further)"
        )
    if state.outcome == TIME:
        return f"tolerance {tol} not met: --max-time ran out at {widest}"
    return (
        f"tolerance {tol} not met: the step budget ({steps}) ran out at {widest}; "
        "resume with --steps to continue"
    )
