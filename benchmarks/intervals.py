"""Residual intervals at default settings: do they hold the true value, and how wide are they?

For each problem (an eigenproblem with a closed form): `nsvd solve` with nothing but the
shipped file, then `nsvd eval`; counts the modes whose 95% interval holds the exact value
(coverage; target >= 95% of the modes with an interval) and, per mode, the ratio of the
interval's relative half-width to the true relative error of the Ritz value (target: the
median within 10x; an interval can be honest and useless). Writes docs/intervals.md.

    .venv/bin/python benchmarks/intervals.py                      # every problem, 3 seeds
    .venv/bin/python benchmarks/intervals.py --problems oscillator-1d morse-1d --seeds 2
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from common import ROOT, finish, main, mode_rows, provenance

# Eigenproblems of the library with a closed form, cheapest first.
PROBLEMS = [
    "oscillator-1d",
    "poschl-teller-1d",
    "morse-1d",
    "box-2d",
    "oscillator-anisotropic-2d",
    "coupled-oscillators-2d",
    "oscillator-2d",
    "box-3d",
    "rotated-oscillator-4d",
    "hydrogen-3d",
    "hydrogen-2d",  # intervals only with the exact cusp factor (network.cusp, the default)
    # Integral operators: singular values, intervals on the Jordan-Wielandt operator.
    "low-rank-kernel",
    "gaussian-cdk",
    "volterra",
]
COVERAGE_TARGET = 0.95
RATIO_TARGET = 10.0


def write_table(rows: list[dict[str, Any]], path: Path, command: str) -> str:
    lines = [
        "# Residual error intervals at default settings",
        "",
        *provenance(command, rows[0]["device"] if rows else "cpu"),
        "",
        "Each run: the problem file as shipped (no `solver:` block added), then `nsvd eval`. "
        "`held`: modes whose 95% interval holds the exact eigenvalue, of those that have one; "
        "`half-width`: the interval's half-width relative to its centre (median over modes); "
        "`ratio`: half-width / true relative error of the Ritz value (median over modes; the "
        "target is <= 10); `methods`: how the intervals were formed (docs/method.md).",
        "",
        "| problem | modes | seed | steps | train s | max rel err | held | half-width | ratio "
        "| methods |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    everything: list[dict[str, Any]] = []
    for r in rows:
        modes = mode_rows(r)
        everything += modes
        have = [m for m in modes if m["available"]]
        held = sum(m["held"] for m in have)
        half = statistics.median(m["half"] for m in have) if have else math.nan
        ratio = statistics.median(m["ratio"] for m in have) if have else math.nan
        methods = ", ".join(sorted({m["method"] for m in have})) or "unavailable"
        lines.append(
            f"| {r['problem']} | {r['modes']} | {r['seed']} | {r['steps']} | {r['train']:.0f} "
            f"| {r['max']:.2e} | {held} of {len(have)} | {half:.1e} | {ratio:.1f} | {methods} |"
        )
    lines += ["", *summary(everything)]
    return finish(lines, rows, path)


def summary(modes: list[dict[str, Any]]) -> list[str]:
    have = [m for m in modes if m["available"]]
    if not have:
        return ["No mode had an interval."]
    held = sum(m["held"] for m in have)
    coverage = held / len(have)
    ratio = statistics.median(m["ratio"] for m in have)
    return [
        f"Over all runs: {held} of {len(have)} intervals hold the exact value "
        f"({coverage:.1%}; target >= {COVERAGE_TARGET:.0%}: "
        f"{'met' if coverage >= COVERAGE_TARGET else 'missed'}); "
        f"{len(modes) - len(have)} modes had none. Median half-width / true error "
        f"{ratio:.1f} (target <= {RATIO_TARGET:g}: "
        f"{'met' if ratio <= RATIO_TARGET else 'missed'}).",
    ]


if __name__ == "__main__":
    main(
        __doc__.splitlines()[0],
        "intervals.py",
        PROBLEMS,
        ROOT / "docs" / "intervals.md",
        write_table,
    )
