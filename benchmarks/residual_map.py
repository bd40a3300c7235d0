"""Where a 1-D run's residuals live: quantiles of each Ritz function's residual mass.

The residual interval of a mode (docs/method.md) rests on eps^2 = ||(H - eta) u||^2. This
script evaluates u and H u of a finished 1-D run on a fine grid (deterministic, no
Monte-Carlo) and prints, per mode, the points below which 5/25/50/75/95% of eps^2 lies,
beside the points that hold 0.1/50/99.9% of |u|^2. Residual mass far outside the state's
own mass is error in the tails (a steep wall, an unsampled region), not in the core.

    .venv/bin/python benchmarks/residual_map.py runs/morse-1d --window -8 14
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import nsvd_cli as nsvd
from nsvd_cli.objectives.batch import evaluate_batch
from nsvd_cli.objectives.readout import unit_coefficients

RESIDUAL_LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)
STATE_LEVELS = (0.001, 0.5, 0.999)


def _quantiles(x: torch.Tensor, density: torch.Tensor, levels: tuple[float, ...]) -> list[float]:
    cumulative = torch.cumsum(density, 0)
    cumulative = cumulative / cumulative[-1]
    return [
        float(x[int(torch.searchsorted(cumulative, torch.tensor(q, dtype=x.dtype)))])
        for q in levels
    ]


def residual_map(run_dir: Path, lo: float, hi: float, points: int) -> list[str]:
    run = nsvd.load_run(run_dir)
    compiled, sampler = run.compiled, run.compiled.sampler
    x = torch.linspace(lo, hi, points, dtype=torch.float64).unsqueeze(1)
    batch = evaluate_batch(compiled, sampler, run.network, x)
    coefficients = unit_coefficients(run.results.rotation, run.results.gram)
    u, hu = batch.h @ coefficients, batch.hh @ coefficients
    eta = torch.as_tensor(np.asarray(run.results.eigenvalues), dtype=torch.float64)
    density = torch.exp(2 * sampler.log_amplitude(x) - sampler.log_volume)  # p(x), h = psi/sqrt(p)
    step = (hi - lo) / (points - 1)
    lines = [
        f"run {run_dir}, grid {points} points on [{lo}, {hi}]",
        "",
        "| mode | eta | residual (grid) | residual mass at x = 5/25/50/75/95% | "
        "state mass |u|^2 at x = 0.1/50/99.9% |",
        "|---|---|---|---|---|",
    ]
    for mode in range(u.shape[1]):
        res = density * (hu[:, mode] - eta[mode] * u[:, mode]) ** 2
        state = density * u[:, mode] ** 2
        where = ", ".join(f"{v:.2f}" for v in _quantiles(x[:, 0], res, RESIDUAL_LEVELS))
        mass = ", ".join(f"{v:.2f}" for v in _quantiles(x[:, 0], state, STATE_LEVELS))
        eps = float(res.sum() * step) ** 0.5
        lines.append(f"| {mode} | {float(eta[mode]):.6f} | {eps:.4f} | {where} | {mass} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--window", type=float, nargs=2, required=True, metavar=("LO", "HI"))
    parser.add_argument("--points", type=int, default=40001)
    args = parser.parse_args()
    print("\n".join(residual_map(args.run, *args.window, args.points)))


if __name__ == "__main__":
    main()
