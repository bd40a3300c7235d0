"""Accuracy with default settings: 2D oscillator (9 modes) and 2D hydrogen (16 modes).

Runs `nsvd solve` (through the library, same code path) with nothing but the shipped
problem file, then `nsvd eval`, for several seeds, and writes a table to docs/benchmarks.md.

    .venv/bin/python benchmarks/accuracy.py                      # defaults, 3 seeds each
    .venv/bin/python benchmarks/accuracy.py --seeds 1 --problems oscillator-2d --set steps=20000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nsvd_cli.runner import evaluate, load_run, prepare, solve
from nsvd_cli.spec import load_problem
from nsvd_cli.train import resolve_device

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"oscillator-2d": 1e-4, "hydrogen-2d": 5e-3}


def run_one(name: str, seed: int, overrides: dict[str, str], device: str) -> dict:
    problem = load_problem(ROOT / "problems" / f"{name}.yaml")
    settings = prepare(problem, seed=seed)
    for key, value in overrides.items():
        current = getattr(settings, key)
        setattr(settings, key, type(current)(value) if current is not None else float(value))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        solve(problem, settings, Path(tmp), resolve_device(device))
        wall = time.perf_counter() - t0
        report = evaluate(load_run(Path(tmp)))
    ref = np.asarray(report["reference"])
    rel_se = np.asarray(report["stderr"]) / np.abs(ref)
    return {
        "problem": name,
        "seed": seed,
        "modes": problem.modes,
        "steps": settings.steps,
        "wall": wall,
        "train": report["train_seconds"],
        "max": report["max_relative_error"],
        "mean": report["mean_relative_error"],
        "se": float(rel_se.max()),
        "orth": report["orthogonality"],
        "subspace": report["subspace_distance"],
        "errors": report["relative_errors"],
    }


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2e}"


def write_table(rows: list[dict], path: Path, command: str) -> str:
    lines = [
        "# Accuracy benchmark (default settings)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {torch.get_num_threads()} CPU threads, torch {torch.__version__}, "
        f"device {rows[0]['device'] if rows else 'cpu'}; produced {time.strftime('%Y-%m-%d')}.",
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
            f"| {_fmt(r['subspace'])} | {TARGETS.get(r['problem'], float('nan')):.0e} |"
        )
    lines += ["", "Medians over seeds:", ""]
    lines += [
        "| problem | median max rel err | median mean rel err | median train s | target met |",
        "|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r["problem"] for r in rows):
        sel = [r for r in rows if r["problem"] == name]
        med_max = statistics.median(r["max"] for r in sel)
        med_mean = statistics.median(r["mean"] for r in sel)
        med_t = statistics.median(r["train"] for r in sel)
        target = TARGETS.get(name)
        met = "n/a" if target is None else ("yes" if med_max <= target else "no")
        lines.append(f"| {name} | {med_max:.2e} | {med_mean:.2e} | {med_t:.0f} | {met} |")
    lines += ["", "Per-mode relative errors (seed order as above):", ""]
    for r in rows:
        errs = ", ".join(f"{e:.1e}" for e in r["errors"])
        lines.append(f"- {r['problem']} seed {r['seed']}: {errs}")
    text = "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=list(TARGETS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--set", nargs="*", default=[], help="settings overrides key=value")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    overrides = dict(kv.split("=", 1) for kv in args.set)
    rows = []
    for name in args.problems:
        for seed in range(args.seeds):
            row = run_one(name, seed, overrides, args.device)
            row["device"] = args.device
            rows.append(row)
            print(
                f"{name} seed {seed}: steps {row['steps']} train {row['train']:.0f}s "
                f"max {row['max']:.2e} mean {row['mean']:.2e} se {row['se']:.1e} "
                f"orth {row['orth']:.1e} subspace {_fmt(row['subspace'])}",
                flush=True,
            )
    command = "python benchmarks/accuracy.py " + " ".join(sys.argv[1:])
    print(write_table(rows, args.out, command.strip()))


if __name__ == "__main__":
    main()
