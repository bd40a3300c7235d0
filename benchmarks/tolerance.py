"""Training to a tolerance: does `solve --tol` stop with the tolerance met and the true error
below it, and how many steps does it take against a hand-picked step count?

For each problem (an eigenproblem with a closed form): `solve --tol TOL` with the shipped
file (a budget of 4x the default steps, one buffer function), and its true largest relative
error e. Then fixed-length runs (the usual cosine schedule) at a ladder of step counts; the
hand-picked count for e is the smallest on the ladder whose largest error is <= e, and the
ratio is the tolerance run's steps over it (target: <= 1.5). Writes docs/tolerance.md.

    .venv/bin/python benchmarks/tolerance.py                     # 1-D wells, tol 1e-3
    .venv/bin/python benchmarks/tolerance.py --problems oscillator-2d --tol 1e-3 \
        --ladder 0.25 0.5 1 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from common import ROOT, provenance, relative_half_width, run_one, write_keeping_notes

from nsvd_cli import load_problem, prepare

PROBLEMS = ["oscillator-1d", "poschl-teller-1d", "morse-1d"]
RATIO_TARGET = 1.5


def ladder_steps(name: str, fractions: list[float]) -> list[int]:
    """Step counts at fractions of the problem's default (multiples of 100)."""
    default = prepare(load_problem(ROOT / "problems" / f"{name}.yaml")).optimiser.steps
    return sorted({max(100, int(round(f * default / 100)) * 100) for f in fractions})


def measure(name: str, tol: float, fractions: list[float], device: str) -> dict[str, Any]:
    run = run_one(name, 0, {}, device, tol=tol)
    print(
        f"{name} --tol {tol:g}: {run['tol_outcome']} after {run['steps_taken']} steps "
        f"({run['train']:.0f} s), met {run['tol_met']}, max error {run['max']:.2e}",
        flush=True,
    )
    ladder = []
    for steps in ladder_steps(name, fractions):
        fixed = run_one(name, 0, {"steps": str(steps)}, device)
        ladder.append({"steps": steps, "max": fixed["max"], "train": fixed["train"]})
        print(f"  {steps} steps: max error {fixed['max']:.2e} ({fixed['train']:.0f} s)", flush=True)
    reached = [r["steps"] for r in ladder if r["max"] <= run["max"]]
    hand = min(reached) if reached else None
    return {
        **run,
        "tol": tol,
        "ladder": ladder,
        "hand": hand,
        "ratio": None if hand is None else run["steps_taken"] / hand,
        "widest": _widest(run),
    }


def _widest(run: dict[str, Any]) -> float:
    intervals = run["intervals"] or []
    widths = [
        relative_half_width(low, high) if low is not None else float("inf")
        for low, high in intervals
    ]
    return max(widths) if widths else float("inf")


def write_table(rows: list[dict[str, Any]], path: Path, command: str) -> str:
    lines = [
        "# Training to a tolerance (`solve --tol`)",
        "",
        *provenance(command, rows[0]["device"] if rows else "cpu"),
        "",
        "`--tol` run: the shipped file with `--tol` only (seed 0): what ended it, the steps "
        "it took of its budget, `tol_met` (decided by the final read-out), the widest 95% "
        "interval (relative half-width) and the true largest relative error. Fixed runs: "
        "the same file with `--steps N` (the cosine schedule, no buffer function), largest "
        "relative error per N. `hand`: the smallest N whose error is at or below the `--tol` "
        "run's; `ratio` = `--tol` steps / `hand` (target <= 1.5).",
        "",
        "| problem | tol | ended | steps (budget) | tol_met | widest | true max err | train s "
        "| fixed runs: steps -> max err | hand | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ladder = "; ".join(f"{x['steps']} -> {x['max']:.1e}" for x in r["ladder"])
        hand = "none" if r["hand"] is None else str(r["hand"])
        ratio = (
            f"> {r['steps_taken'] / r['ladder'][-1]['steps']:.2f}"
            if r["ratio"] is None
            else f"{r['ratio']:.2f}"
        )
        lines.append(
            f"| {r['problem']} | {r['tol']:g} | {r['tol_outcome']} | {r['steps_taken']} "
            f"({r['steps']}) | {r['tol_met']} | {r['widest']:.1e} | {r['max']:.2e} "
            f"| {r['train']:.0f} | {ladder} | {hand} | {ratio} |"
        )
    met = [r for r in rows if r["tol_met"] and r["max"] <= r["tol"]]
    within = [r for r in rows if r["ratio"] is not None and r["ratio"] <= RATIO_TARGET]
    lines += [
        "",
        f"Tolerance met with the true error below it: {len(met)} of {len(rows)}. "
        f"Steps within {RATIO_TARGET}x of the hand-picked count: {len(within)} of {len(rows)} "
        "(a `>` ratio: no fixed run on the ladder was as accurate; `hand` is then above it).",
    ]
    return write_keeping_notes(path, "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=PROBLEMS)
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--ladder", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "tolerance.md")
    args = parser.parse_args()
    command = "python benchmarks/tolerance.py " + " ".join(sys.argv[1:])
    rows: list[dict[str, Any]] = []
    for name in args.problems:
        rows.append(measure(name, args.tol, args.ladder, args.device))
        write_table(rows, args.out, command.strip() + " (partial)")
    print(write_table(rows, args.out, command.strip()))


if __name__ == "__main__":
    main()
