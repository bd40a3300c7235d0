"""How good is `nsvd reference`? Its spectra against closed forms, with its own error bars.

For each problem: the reference at the default grid (finite differences; quadrature for
integral operators), its wall time, the largest true relative error of the `modes` values,
the largest relative error it estimates for them, and whether every true error is within
3x its estimate. Writes docs/reference.md (keeping its "Reading these numbers" section).

    .venv/bin/python benchmarks/reference.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from common import ROOT, provenance, write_keeping_notes

from nsvd_cli import grid_reference, load_problem, reference_eigenvalues

PROBLEMS = [
    "oscillator-1d",
    "oscillator-2d",
    "box-2d",
    "disk-2d",
    "hydrogen-2d",
    "hydrogen-3d",
    # Integral operators: the quadrature (Nystrom) reference of their singular values.
    "volterra",
    "gaussian-cdk",
    "low-rank-kernel",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=PROBLEMS)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "reference.md")
    args = parser.parse_args()
    lines = [
        "# Grid references against closed forms",
        "",
        *provenance(" ".join(["python benchmarks/reference.py", *sys.argv[1:]])),
        "`true` is the largest "
        "|E_grid - E_exact| / |E_exact| over the problem's modes, `estimated` the largest "
        "relative error the reference claims for them; `within` says whether every true error "
        "is at most 3x its estimate; `unreliable` counts values whose grids converge slower "
        "than first order (flagged, no error bar).",
        "",
        "| problem | d | modes | points per axis | seconds | true | estimated | within "
        "| unreliable |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in args.problems:
        problem = load_problem(ROOT / "problems" / f"{name}.yaml")
        ref = grid_reference(problem)
        exact = reference_eigenvalues(problem)
        k = problem.modes
        true = np.abs(ref.eigenvalues[:k] - exact) / np.abs(exact)
        est = ref.error[:k] / np.abs(exact)
        reliable = np.asarray(json.loads(ref.attrs["reliable"]))[:k]
        ok = bool(np.all((true <= 3 * est) | (true <= 1e-9) | ~reliable))
        claimed = est[reliable].max() if reliable.any() else float("nan")
        row = (
            f"| {name} | {problem.dim} | {k} | {ref.attrs['points']} | "
            f"{ref.attrs['seconds']:.1f} | {true.max():.1e} | {claimed:.1e} "
            f"| {'yes' if ok else 'no'} | {int((~reliable).sum())} |"
        )
        print(row, flush=True)
        lines.append(row)
    write_keeping_notes(args.out, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
