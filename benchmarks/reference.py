"""How good is `nsvd reference`? Its spectra against closed forms, with its own error bars.

For each problem and method: the reference at its default resolution (finite elements or
finite differences; quadrature for integral operators), its wall time, the largest true
relative error of the `modes` values, the largest relative error it estimates for them,
whether every true error is within 3x its estimate, and the median observed order. An entry
`name` takes `nsvd reference`'s own choice (auto), `name:fem` or `name:grid` forces one.
Writes docs/reference.md (keeping its "Reading these numbers" section).

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
    # Both methods where both apply: which is faster at equal accuracy decides auto.
    "oscillator-1d:grid",
    "oscillator-1d:fem",
    "oscillator-2d:grid",
    "oscillator-2d:fem",
    "box-2d:grid",
    "box-2d:fem",
    "neumann-box-2d:grid",
    "neumann-box-2d:fem",
    "disk-2d:grid",
    "disk-2d:fem",
    "box-3d:grid",
    "box-3d:fem",
    # What only finite elements take: fields, weights, Robin and reflecting walls.
    "legendre-1d",
    "robin-interval-1d",
    "sturm-liouville-1d",
    "weighted-string-1d",
    "anisotropic-diffusion-2d",
    "langevin-ou-2d",
    "morse-1d",
    "poschl-teller-1d",
    "oscillator-anisotropic-2d",
    "coupled-oscillators-2d",
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
        "# References against closed forms (finite elements, finite differences, quadrature)",
        "",
        *provenance(" ".join(["python benchmarks/reference.py", *sys.argv[1:]])),
        "`true` is the largest "
        "|E_grid - E_exact| / |E_exact| over the problem's modes, `estimated` the largest "
        "relative error the reference claims for them; `within` says whether every true error "
        "is at most 3x its estimate; `unreliable` counts values whose grids converge slower "
        "than first order (flagged, no error bar); `order` is the median observed order. "
        "A zero eigenvalue (a Neumann or Langevin ground state) is measured against the "
        "largest of the problem's values. `resolution`: elements across the longest side "
        "of the three meshes (fem), points per axis of the three grids (grid), quadrature "
        "nodes (integral operators).",
        "",
        "| problem | d | modes | method | resolution | seconds | true | estimated | within "
        "| unreliable | order |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in args.problems:
        name, _, method = entry.partition(":")
        problem = load_problem(ROOT / "problems" / f"{name}.yaml")
        ref = grid_reference(problem, method=method or "auto")
        exact = reference_eigenvalues(problem)
        k = problem.modes
        scale = np.where(exact != 0, np.abs(exact), np.abs(exact).max())
        true = np.abs(ref.eigenvalues[:k] - exact) / scale
        est = ref.error[:k] / scale
        reliable = np.asarray(json.loads(ref.attrs["reliable"]))[:k]
        ok = bool(np.all((true <= 3 * est) | (true <= 1e-9) | ~reliable))
        claimed = est[reliable].max() if reliable.any() else float("nan")
        order = float(np.median(json.loads(ref.attrs["observed_order"])[:k]))
        text = str(ref.attrs["method"])
        used = "fem" if "cells" in ref.attrs else "quadrature" if "Nystrom" in text else "grid"
        resolution = ref.attrs.get("cells", ref.attrs["points"])
        row = (
            f"| {name} | {problem.dim} | {k} | {used} | {resolution} | "
            f"{ref.attrs['seconds']:.1f} | {true.max():.1e} | {claimed:.1e} "
            f"| {'yes' if ok else 'no'} | {int((~reliable).sum())} | {order:.2f} |"
        )
        print(row, flush=True)
        lines.append(row)
    write_keeping_notes(args.out, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
