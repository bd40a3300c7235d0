"""General second-order operators at defaults: diffusion fields, weights, Neumann and Robin
walls (issue 18's targets: 6 modes to 1e-4 relative in 5 CPU minutes on the Legendre
operator, the Neumann rectangle and the Robin interval; the Neumann disk to 1e-3; the
10-D Ornstein-Uhlenbeck generator's 11 slowest rates to 1e-3 in 15 CPU minutes).

Runs each shipped problem file with nothing but its own keys (derived settings), then
`nsvd eval` against its closed form, and writes docs/general.md. Run it with one torch
thread (OMP_NUM_THREADS=1) so that training seconds are CPU seconds.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/general.py --seeds 1
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/general.py --seeds 1 --problems legendre-1d
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common import ROOT, finish, fmt, main, provenance

# problem -> (largest relative error, CPU seconds of training) the issue asks for; None: no
# target (the problem's own header says what to expect).
TARGETS: dict[str, tuple[float, float] | None] = {
    "legendre-1d": (1e-4, 300.0),
    "robin-interval-1d": (1e-4, 300.0),
    "neumann-box-2d": (1e-4, 300.0),
    "sturm-liouville-1d": None,
    "weighted-string-1d": None,
    "anisotropic-diffusion-2d": None,
    # The issue asks 1e-3 of the free disk, with no time target.
    "neumann-disk-2d": (1e-3, float("inf")),
    "langevin-ou-10d": (1e-3, 900.0),
    "layered-rod-1d": None,
    "neumann-cavity-3d": None,
}
WHAT = {
    "legendre-1d": "diffusion 1 - x^2, natural ends",
    "robin-interval-1d": "Robin wall, listed roots",
    "neumann-box-2d": "Neumann walls",
    "sturm-liouville-1d": "diffusion x^2, Dirichlet",
    "weighted-string-1d": "weight 1/x^2, Dirichlet",
    "anisotropic-diffusion-2d": "matrix diffusion, whole space",
    "neumann-disk-2d": "Neumann wall on a curved region",
    "langevin-ou-10d": "Langevin generator, 10-D",
    "layered-rod-1d": "diffusion that jumps (layered), Dirichlet",
    "neumann-cavity-3d": "Neumann walls, 3-D brick",
}


def _relative_se(row: dict[str, Any]) -> float:
    """The largest read-out standard error over its reference value (a reference of 0, the
    Neumann constant, is measured against the largest one, as nsvd eval does)."""
    refs = [abs(v) for v in row["reference_values"]]
    scale = max(refs)
    se = row.get("stderr_values") or []
    return max((s / (r or scale) for s, r in zip(se, refs)), default=float("nan"))


def _verdict(row: dict[str, Any]) -> str:
    target = TARGETS.get(row["problem"])
    if target is None:
        return "-"
    error, seconds = target
    parts = ["error " + ("met" if row["max"] <= error else f"missed ({row['max'] / error:.1f}x)")]
    if seconds < float("inf"):
        parts.append("time " + ("met" if row["train"] <= seconds else
                                f"missed ({row['train'] / seconds:.1f}x)"))
    return ", ".join(parts)


def write_table(rows: list[dict[str, Any]], path: Path, command: str) -> str:
    lines = [
        "# General operators at defaults",
        "",
        *provenance(command, rows[0]["device"] if rows else "cpu"),
        "",
        "Each problem file as shipped (no `solver:` block), one seed per row; errors are "
        "relative eigenvalue errors of the Rayleigh-Ritz values against the closed form (a "
        "zero eigenvalue against the largest reference value). `se` is the largest read-out "
        "standard error relative to its value; `subspace` the mean over levels of "
        "1 - tr(P_learned P_ref)/k against the closed-form eigenfunctions; `held` how many "
        "95% residual intervals hold the exact value (`-`: none reported, see "
        "docs/method.md). Train s is CPU seconds at one thread.",
        "",
        "| problem | what | modes | steps | train s | max rel err | mean rel err | se "
        "| subspace | held | target (error, time) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        held = r["reference_in_interval"] or []
        shown = [h for h in held if h is not None]
        lines.append(
            f"| {r['problem']} | {WHAT.get(r['problem'], '')} | {r['modes']} | {r['steps']} "
            f"| {r['train']:.0f} | {r['max']:.2e} | {r['mean']:.2e} | {_relative_se(r):.1e} "
            f"| {fmt(r['subspace'])} | {f'{sum(shown)}/{len(shown)}' if shown else '-'} "
            f"| {_verdict(r)} |"
        )
    return finish(lines, rows, path)


if __name__ == "__main__":
    main(
        __doc__.splitlines()[0],
        "general.py",
        list(TARGETS),
        ROOT / "docs" / "general.md",
        write_table,
    )
