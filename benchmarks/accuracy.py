"""Accuracy with default settings: 2D oscillator (9 modes) and 2D hydrogen (16 modes).

Runs `nsvd solve` (through the library, same code path) with nothing but the shipped
problem file, then `nsvd eval`, for several seeds, and writes a table to docs/benchmarks.md.

    .venv/bin/python benchmarks/accuracy.py                      # defaults, 3 seeds each
    .venv/bin/python benchmarks/accuracy.py --seeds 1 --problems oscillator-2d --set steps=20000
"""

from __future__ import annotations

from pathlib import Path

from common import ROOT, finish, fmt, main, medians, provenance

TARGETS = {"oscillator-2d": 1e-4, "hydrogen-2d": 5e-3}


def write_table(rows: list[dict], path: Path, command: str) -> str:
    lines = [
        "# Accuracy benchmark (default settings)",
        "",
        *provenance(command, rows[0]["device"] if rows else "cpu"),
        "",
        "Errors are relative eigenvalue errors |E - E_ref| / |E_ref| of the Rayleigh-Ritz "
        "eigenvalues against the closed form; `se` is the largest relative standard error of "
        "the read-out (zero-variance strong-form estimator, 2^18 samples), so an error well "
        "above `se` is real and one near it is read-out noise. `orth` is the largest "
        "off-diagonal of the learned functions' normalised Gram matrix; `subspace` the mean "
        "over degenerate levels of 1 - tr(P_learned P_ref)/k.",
        "",
        "| problem | modes | seed | steps | train s | max rel err | mean rel err | se | orth "
        "| subspace | target |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['problem']} | {r['modes']} | {r['seed']} | {r['steps']} | {r['train']:.0f} "
            f"| {r['max']:.2e} | {r['mean']:.2e} | {r['se']:.1e} | {r['orth']:.1e} "
            f"| {fmt(r['subspace'])} | {TARGETS.get(r['problem'], float('nan')):.0e} |"
        )
    lines += ["", "Medians over seeds:", ""]
    lines += [
        "| problem | median max rel err | median mean rel err | median train s | target met |",
        "|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r["problem"] for r in rows):
        med = medians(rows, name)
        target = TARGETS.get(name)
        met = "n/a" if target is None else ("yes" if med["max"] <= target else "no")
        lines.append(
            f"| {name} | {med['max']:.2e} | {med['mean']:.2e} | {med['train']:.0f} | {met} |"
        )
    return finish(lines, rows, path)


if __name__ == "__main__":
    main(
        __doc__.splitlines()[0],
        "accuracy.py",
        list(TARGETS),
        ROOT / "docs" / "benchmarks.md",
        write_table,
    )
