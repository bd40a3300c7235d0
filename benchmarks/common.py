"""What the accuracy benchmarks share: one solve + eval through the library, and medians."""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nsvd_cli import GridReference, evaluate, load_problem, load_run, prepare, resolve_device, solve

ROOT = Path(__file__).resolve().parents[1]


def apply_overrides(settings: Any, overrides: dict[str, str]) -> None:
    """``key=value`` strings onto a Settings object, converted to the field's type. Keys the
    run would not use are refused, as the command line refuses them: a quadrature read-out
    takes no ``eval_samples``, and ``quadrature`` is recorded, not chosen."""
    if "quadrature" in overrides or ("eval_samples" in overrides and settings.readout.quadrature):
        raise SystemExit(f"--set {', '.join(overrides)}: eval_samples does not apply where a "
                         "quadrature rule reads out, and quadrature is not a setting")
    for key, value in overrides.items():
        current = settings.get_flat(key)
        settings.set_flat(key, type(current)(value) if current is not None else float(value))


def run_one(
    name: str,
    seed: int,
    overrides: dict[str, str],
    device: str,
    against: GridReference | None = None,
    tol: float | None = None,
) -> dict[str, Any]:
    """Solve problems/NAME.yaml with its own settings (plus overrides; ``tol``: to that
    tolerance), then evaluate it against its closed form or, with ``against``, a grid
    reference."""
    problem = load_problem(ROOT / "problems" / f"{name}.yaml")
    settings = prepare(problem, seed=seed, tol=tol)
    apply_overrides(settings, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        solve(problem, settings, Path(tmp), resolve_device(device))
        wall = time.perf_counter() - t0
        run = load_run(Path(tmp))
        report = evaluate(run, against=against).to_json()
        total = time.perf_counter() - t0
        attrs = run.results.attrs
    ref = np.asarray(report["reference"])
    rel_se = np.asarray(report["stderr"]) / np.abs(ref)
    return {
        "problem": name,
        "dim": len(problem.coordinates),
        "seed": seed,
        "modes": problem.modes,
        "steps": settings.optimiser.steps,
        "wall": wall,
        "total": total,
        "train": report["train_seconds"],
        "max": report["max_relative_error"],
        "mean": report["mean_relative_error"],
        "se": float(rel_se.max()),
        "orth": report["orthogonality"],
        "subspace": report["subspace_distance"],
        "subspace_all": report["subspace_distance_all"],
        "left_subspace": report.get("left_subspace_distance"),
        "right_subspace": report.get("right_subspace_distance"),
        "angle": report["angle_distance"],
        "native_mean": (
            None
            if report["native_relative_errors"] is None
            else float(np.mean(report["native_relative_errors"]))
        ),
        "method": settings.method,
        "batch": settings.optimiser.batch_size,
        "errors": report["relative_errors"],
        "device": device,
        # Residual intervals (eigen runs; None for singular-value problems).
        "reference_values": report["reference"],
        "values": report["eigenvalues"],
        "stderr_values": report["stderr"],
        "intervals": report.get("intervals"),
        "interval_methods": report.get("interval_methods"),
        "reference_in_interval": report.get("reference_in_interval"),
        # Runs to a tolerance: the steps taken (the budget is "steps") and how they ended.
        "steps_taken": int(attrs.get("steps", settings.optimiser.steps)),
        "tol_met": None if "tol_met" not in attrs else bool(attrs["tol_met"]),
        "tol_outcome": attrs.get("tol_outcome"),
    }


NOTES = "## Reading these numbers"  # a hand-written section after this heading is kept


def _git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True,
            check=True,
        ).stdout.strip()
        # Generated docs do not count: a chain of benchmarks rewrites them as it goes.
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!docs"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + (" with uncommitted changes" if dirty else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(command: str, device: str = "cpu") -> list[str]:
    """The header lines every generated doc carries: command, commit, machine, threads."""
    import torch  # the benchmarks import it anyway; kept local so common stays light

    if device.startswith("cuda") and torch.cuda.is_available():
        where = f"device {torch.cuda.get_device_name(torch.device(device))}"
    else:
        where = "device cpu"
    return [
        f"Command: `{command}`  ",
        f"Commit: {_git_commit()}  ",
        f"Machine: {platform.system()} {platform.machine()}, {_cpu_model()}, "
        f"{os.cpu_count()} cores; {torch.get_num_threads()} torch threads, torch "
        f"{torch.__version__}, {where}; produced {time.strftime('%Y-%m-%d')}.",
    ]


def write_keeping_notes(out: Path, text: str) -> str:
    """Write a generated report, keeping the hand-written section of the one it replaces."""
    old = out.read_text() if out.exists() else ""
    if NOTES in old:
        text += "\n" + old[old.index(NOTES) :]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return text


def relative_half_width(low: float, high: float) -> float:
    """An interval's half-width over its centre's magnitude (as results.h5's arrays do)."""
    return 0.5 * (high - low) / max(abs(0.5 * (low + high)), 1e-300)


def mode_rows(row: dict[str, Any]) -> list[dict[str, Any]]:
    """Per mode: whether it has an interval, holds the exact value, and its width ratio."""
    found: list[dict[str, Any]] = []
    intervals = row["intervals"] or []
    for i, (low, high) in enumerate(intervals):
        value, exact = row["values"][i], row["reference_values"][i]
        true = abs(value - exact) / abs(exact) if exact else abs(value - exact)
        if low is None or high is None:
            found.append({"available": False})
            continue
        half = relative_half_width(low, high)
        found.append(
            {
                "available": True,
                "held": low <= exact <= high,
                "half": half,
                "ratio": half / true if true > 0 else math.inf,
                "method": row["interval_methods"][i],
            }
        )
    return found


def fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2e}"


def medians(rows: list[dict[str, Any]], name: str) -> dict[str, float]:
    sel = [r for r in rows if r["problem"] == name]
    return {
        key: statistics.median(r[key] for r in sel)
        for key in ("max", "mean", "train", "total", "se")
    }


def finish(lines: list[str], rows: list[dict[str, Any]], path: Path) -> str:
    """Append the per-mode errors, write the table to ``path`` and return its text."""
    lines = [*lines, "", "Per-mode relative errors (seed order as above):", ""]
    lines += [
        f"- {r['problem']} seed {r['seed']}: " + ", ".join(f"{e:.1e}" for e in r["errors"])
        for r in rows
    ]
    return write_keeping_notes(path, "\n".join(lines) + "\n")


TableWriter = Callable[[list[dict[str, Any]], Path, str], str]


def main(
    description: str, script: str, problems: list[str], out: Path, write_table: TableWriter
) -> None:
    """Parse the shared options, run every problem and seed, keep the table up to date."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--problems", nargs="+", default=problems)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="run seeds first-seed .. first-seed+seeds-1"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--set", nargs="*", default=[], help="settings overrides key=value")
    parser.add_argument("--out", type=Path, default=out)
    args = parser.parse_args()
    overrides = dict(kv.split("=", 1) for kv in args.set)
    command = f"python benchmarks/{script} " + " ".join(sys.argv[1:])
    rows: list[dict[str, Any]] = []
    for name in args.problems:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            row = run_one(name, seed, overrides, args.device)
            rows.append(row)
            print(
                f"{name} seed {seed}: steps {row['steps']} train {row['train']:.0f}s total "
                f"{row['total']:.0f}s max {row['max']:.2e} mean {row['mean']:.2e} "
                f"se {row['se']:.1e} orth {row['orth']:.1e} subspace {fmt(row['subspace'])}",
                flush=True,
            )
            write_table(rows, args.out, command.strip() + " (partial)")
    print(write_table(rows, args.out, command.strip()))
