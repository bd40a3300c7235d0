"""The tables of learned values that ``solve`` and ``eval`` print, with their intervals."""

from __future__ import annotations

import math

import numpy as np
from rich.table import Table

from nsvd_cli.files import IntervalArrays
from nsvd_cli.kinds import kind_of
from nsvd_cli.spec.load import Problem

WANTED = {
    "lowest": "lowest eigenvalues",
    "smallest-singular": "smallest singular values",
    "largest-singular": "largest singular values",
}


def interval_text(low: float, high: float) -> str:
    """``[low, high]`` with digits enough to tell the ends apart; ``unavailable`` for nan."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "unavailable"
    spread = abs(high - low) or abs(high) or 1.0
    scale = max(abs(low), abs(high), 1e-300)
    digits = min(max(int(math.ceil(math.log10(scale / spread))) + 2, 2), 12)
    return f"[{low:.{digits}g}, {high:.{digits}g}]"


def half_width_text(low: float, high: float) -> str:
    """The half-width relative to the centre, as a user compares it with a tolerance."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "-"
    centre = 0.5 * (low + high)
    return f"{0.5 * (high - low) / max(abs(centre), 1e-300):.1e}"


def values_table(
    problem: Problem, values: np.ndarray, stderr: np.ndarray, intervals: IntervalArrays | None
) -> Table:
    """The final read-out: each value with its 95% residual interval (the uncertainty to
    quote) and the read-out's Monte-Carlo standard error (labelled as such)."""
    table = Table(
        title=f"{problem.name}: {WANTED[problem.wanted]} ({problem.modes})",
        # Rayleigh-Ritz on new points: why these differ from the last training estimates.
        caption="read-out on fresh samples",
    )
    table.add_column("mode", justify="right")
    table.add_column(kind_of(problem).value_name, justify="right")
    if intervals is not None:
        table.add_column(f"{intervals.confidence:.0%} interval", justify="right")
        table.add_column("rel. half-width", justify="right")
    table.add_column("read-out s.e.", justify="right")
    for i, (v, s) in enumerate(zip(values, stderr)):
        cells = [str(i), f"{v:.10g}"]
        if intervals is not None:
            low, high = float(intervals.low[i]), float(intervals.high[i])
            cells += [interval_text(low, high), half_width_text(low, high)]
        table.add_row(*cells, f"{s:.2g}")
    return table


def interval_note(intervals: IntervalArrays | None) -> str | None:
    """One line under the table: what the intervals are, or why there are none."""
    if intervals is None:
        return None
    if intervals.reason is not None and all(m == "unavailable" for m in intervals.methods):
        return f"no error intervals: {intervals.reason}"
    methods = sorted({m for m in intervals.methods if m != "unavailable"})
    note = (
        f"intervals: residual bounds ({', '.join(methods)}) at {intervals.confidence:.0%} "
        "Monte-Carlo confidence; Kato-Temple ones rest on an estimated gap (docs/method.md)"
    )
    if intervals.reason is not None:
        note += f"; some unavailable: {intervals.reason}"
    return note
