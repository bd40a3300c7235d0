"""The tables of learned values that ``solve`` and ``eval`` print, with their intervals."""

from __future__ import annotations

import math

import numpy as np
import torch
from rich.table import Table

from nsvd_cli.files import IntervalArrays, Results
from nsvd_cli.kinds import kind_of
from nsvd_cli.objectives.readout import orthogonality
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


def half_width_text(half: float) -> str:
    """The half-width relative to the centre, as a user compares it with a tolerance."""
    return f"{half:.1e}" if math.isfinite(half) else "-"


def values_table(
    problem: Problem, values: np.ndarray, stderr: np.ndarray, intervals: IntervalArrays | None
) -> Table:
    """The final read-out: each value with its 95% residual interval (the uncertainty to
    quote) and the read-out's Monte-Carlo standard error (labelled as such)."""
    table = Table(
        title=f"{problem.name}: {WANTED[problem.wanted]} ({problem.modes})",
        # Rayleigh-Ritz on new points: why these differ from the last training estimates.
        # Only a quadrature read-out (a 1-D box, a planar region) has no standard error.
        caption="read-out by quadrature" if len(stderr) and not np.any(stderr)
        else "read-out on fresh samples",
    )
    table.add_column("mode", justify="right")
    table.add_column(kind_of(problem).value_name, justify="right")
    if intervals is not None:
        exact = intervals.confidence >= 1.0  # a quadrature read-out: deterministic
        table.add_column("interval" if exact else f"{intervals.confidence:.0%} interval",
                         justify="right")
        table.add_column("rel. half-width", justify="right")
    table.add_column("read-out s.e.", justify="right")
    half = None if intervals is None else intervals.relative_half_width()
    for i, (v, s) in enumerate(zip(values, stderr)):
        cells = [str(i), f"{v:.10g}"]
        if intervals is not None and half is not None:
            low, high = float(intervals.low[i]), float(intervals.high[i])
            cells += [interval_text(low, high), half_width_text(float(half[i]))]
        table.add_row(*cells, f"{s:.2g}")
    return table


def _confidence(confidence: float) -> str:
    """'95% ' for Monte-Carlo intervals, nothing for deterministic (quadrature) ones."""
    return "" if confidence >= 1.0 else f"{confidence:.0%} "


def interval_note(intervals: IntervalArrays | None) -> str | None:
    """One line under the table: what the intervals are, or why there are none."""
    if intervals is None:
        return None
    if intervals.reason is not None and all(m == "unavailable" for m in intervals.methods):
        return f"no error intervals: {intervals.reason}"
    methods = sorted({m for m in intervals.methods if m != "unavailable"})
    how = (
        "from quadrature (no Monte-Carlo error)" if intervals.confidence >= 1.0
        else f"at {intervals.confidence:.0%} Monte-Carlo confidence"
    )
    note = (
        f"intervals: residual bounds ({', '.join(methods)}) {how}; Kato-Temple ones rest on "
        "an estimated gap (docs/method.md)"
    )
    if intervals.reason is not None:
        note += f"; some unavailable: {intervals.reason}"
    return note


# Above these a run ends with a warning (relative half-width; normalised overlap; the live
# estimates' relative distance from the read-out).
WIDE_INTERVAL = 1e-2
FAR_FROM_ORTHOGONAL = 0.1
LIVE_DISAGREES = 5e-2


def run_warnings(results: Results) -> list[str]:
    """What a user should not miss about a finished run: wide intervals, functions far from
    orthogonal, live estimates that disagree with the read-out; each with what to do."""
    found = []
    intervals = results.intervals
    # A run to a tolerance says itself how its widths compare with what was asked for.
    if intervals is not None and "tol" not in results.attrs:
        half = intervals.relative_half_width()
        wide = [i for i, h in enumerate(half) if np.isfinite(h) and h > WIDE_INTERVAL]
        functions = "eigenfunctions" if results.singular is None else "singular functions"
        if wide:
            found.append(
                f"modes {wide} have {_confidence(intervals.confidence)}intervals wider than "
                f"{WIDE_INTERVAL:.0%} of their value: "
                f"their functions are still far from {functions}; train longer (--steps) "
                "(docs/method.md, Error intervals)"
            )
    overlap = orthogonality(torch.from_numpy(results.wanted_gram))
    if overlap > FAR_FROM_ORTHOGONAL:
        found.append(
            f"the learned functions are far from orthogonal (largest normalised overlap "
            f"{overlap:.2f}): the network has not separated the modes yet; train longer"
        )
    live = results.history.get("eigenvalues")
    if results.singular is None and live is not None and len(live):
        final = np.asarray(results.eigenvalues)
        # A value within 3 standard errors of 0 (a Langevin generator's rate 0), or below
        # 1e-3 of the spectrum's scale (a quadrature read-out has no standard error), has
        # no relative size: the spectrum's scale stands in, as in the relative errors.
        magnitude = np.abs(final)
        scale = max(float(np.nanmax(magnitude)), 1e-300) if magnitude.size else 1.0
        at_zero = (magnitude <= 3 * np.asarray(results.stderr)) | (magnitude <= 1e-3 * scale)
        gap = np.abs(np.asarray(live[-1]) - final) / np.where(
            at_zero, scale, np.maximum(magnitude, 1e-300))
        gap = gap[np.isfinite(gap)]  # +inf: a direction the running moments still lack
        if bool(np.any(gap > LIVE_DISAGREES)):
            found.append(
                f"the live estimates and the read-out differ by up to {np.nanmax(gap):.1%}: "
                "the network was still moving when training ended; train longer"
            )
    return found
