"""GPU throughput and accuracy: steps per second per batch and precision -> docs/gpu.md.

One short script for a session that has a GPU (through the device tool): it times training
steps of the 2D hydrogen atom and the 10-D rotated oscillator at several batch sizes and
precisions (float32, tf32 products, float64), trains each problem for a fixed budget of steps
and scores it against the closed form, and checks the CLI end to end on the device
(``solve`` / ``eval`` / ``export``). Partial results are written after every row, so a run
cut short still leaves a table.

    python benchmarks/gpu.py --device cuda            # about 4 minutes on an H200
    python benchmarks/gpu.py --device cpu --quick     # a smoke run of the script itself
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, fmt, provenance, run_one, write_keeping_notes  # noqa: E402

from nsvd_cli import (  # noqa: E402
    init_state,
    kind_of,
    load_problem,
    prepare,
    resolve_device,
    train,
)

PROBLEMS = ("hydrogen-2d", "rotated-oscillator-10d")
BATCHES = (1024, 4096, 16384)
DTYPES = ("float32", "tf32", "bf16-mixed", "float64")


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def time_steps(
    name: str, batch: int, dtype: str, device: torch.device, steps: int, repeats: int
) -> dict[str, Any]:
    """Median milliseconds per training step after a warm-up, in this process."""
    problem = load_problem(ROOT / "problems" / f"{name}.yaml")
    settings = prepare(problem, seed=0)
    settings.optimiser.batch_size, settings.dtype = batch, dtype
    compiled = kind_of(problem).build(problem, settings)
    state = init_state(compiled, device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def run_steps(n: int) -> None:
        compiled.settings.optimiser.steps = state.step + n
        train(compiled, state, device, progress_every=10**9)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    run_steps(5)
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run_steps(steps)
        sync()
        times.append((time.perf_counter() - t0) / steps)
    ms = 1e3 * statistics.median(times)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {
        "problem": name,
        "batch": batch,
        "dtype": dtype,
        "ms": ms,
        "spread": [1e3 * min(times), 1e3 * max(times)],
        "steps_per_s": 1e3 / ms,
        "points_per_s": batch * 1e3 / ms,
        "peak_mib": peak,
    }


def _recorded_device(path: Path) -> str:
    import h5py

    with h5py.File(path, "r") as f:
        return str(f.attrs["device_name"])


def cli_check(device: str, steps: int) -> dict[str, Any]:
    """solve -> eval --json -> export through the installed entry point, on the device."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        base = [sys.executable, "-m", "nsvd_cli"]
        problem = str(ROOT / "problems" / "oscillator-2d.yaml")
        t0 = time.perf_counter()
        solve = subprocess.run(
            [*base, "solve", problem, "--out", str(run), "--steps", str(steps), "--device", device],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        if solve.returncode != 0:
            return {"ok": False, "stage": "solve", "stderr": solve.stderr[-2000:]}
        ev = subprocess.run([*base, "eval", str(run), "--json"], capture_output=True, text=True)
        if ev.returncode != 0:
            return {"ok": False, "stage": "eval", "stderr": ev.stderr[-2000:]}
        report = json.loads(ev.stdout)
        ex = subprocess.run(
            [*base, "export", str(run), "-o", str(Path(tmp) / "e.h5")],
            capture_output=True,
            text=True,
        )
        return {
            "ok": ex.returncode == 0,
            "stage": "export" if ex.returncode else "done",
            "stderr": ex.stderr[-2000:],
            "steps": steps,
            "wall": wall,
            "max": report["max_relative_error"],
            "device_name": _recorded_device(run / "results.h5"),
        }


def write(
    rows: list[dict],
    accuracy: list[dict],
    cli: dict | None,
    label: str,
    out: Path,
    args: argparse.Namespace,
) -> None:
    lines = [
        "# GPU throughput and accuracy",
        "",
        *provenance(" ".join(["python benchmarks/gpu.py", *sys.argv[1:]]), args.device),
        "",
        f"Device: **{label}**, torch {torch.__version__}.",
        "",
        f"## Training step time (median of {args.repeats} x {args.steps} steps after a warm-up)",
        "",
        "| problem | batch | precision | ms/step [min, max] | steps/s | points/s | peak MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(
                f"| {r['problem']} | {r['batch']} | {r['dtype']} | failed: {r['error']} | | | |"
            )
            continue
        peak = "n/a" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
        lines.append(
            f"| {r['problem']} | {r['batch']} | {r['dtype']} | {r['ms']:.2f} "
            f"[{r['spread'][0]:.2f}, {r['spread'][1]:.2f}] | {r['steps_per_s']:.0f} | "
            f"{r['points_per_s']:.2e} | {peak} |"
        )
    lines += [
        "",
        f"## Accuracy after a fixed budget ({args.accuracy_steps} steps, batch "
        f"{args.accuracy_batch}, seed 0, each problem's own other settings)",
        "",
        "| problem | precision | train s | max rel. error | mean rel. error | "
        "largest rel. std. error |",
        "|---|---|---|---|---|---|",
    ]
    for a in accuracy:
        if "error" in a:
            lines.append(f"| {a['problem']} | {a['dtype']} | failed: {a['error']} | | | |")
            continue
        lines.append(
            f"| {a['problem']} | {a['dtype']} | {a['train']:.0f} | {fmt(a['max'])} | "
            f"{fmt(a['mean'])} | {fmt(a['se'])} |"
        )
    if cli is not None:
        lines += ["", "## CLI on the device", ""]
        if cli["ok"]:
            lines.append(
                f"`nsvd solve problems/oscillator-2d.yaml --steps {cli['steps']} --device "
                f"{args.device}`, then `nsvd eval --json` and `nsvd export`: all succeeded; "
                f"solve took {cli['wall']:.0f} s, max relative error {fmt(cli['max'])}, "
                f"results.h5 records device {cli['device_name']!r}."
            )
        else:
            lines.append(f"failed at `{cli['stage']}`:\n\n```\n{cli['stderr']}\n```")
    write_keeping_notes(out, "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS))
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES))
    parser.add_argument("--steps", type=int, default=40, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--accuracy-steps", type=int, default=10_000)
    parser.add_argument("--accuracy-batch", type=int, default=4096)
    parser.add_argument("--accuracy-dtypes", nargs="+", default=["float32", "tf32"])
    parser.add_argument("--cli-steps", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gpu.md")
    args = parser.parse_args()
    if args.quick:
        args.batches, args.steps, args.repeats = [256], 3, 1
        args.accuracy_steps, args.accuracy_batch, args.cli_steps = 30, 256, 20
        args.dtypes, args.accuracy_dtypes = ["float32"], ["float32"]
    device = resolve_device(args.device)
    label = device_label(device)
    raw = args.out.with_suffix(".json")
    rows: list[dict] = []
    accuracy: list[dict] = []
    cli: dict | None = None

    def save() -> None:
        write(rows, accuracy, cli, label, args.out, args)
        raw.write_text(
            json.dumps(
                {"device": label, "timing": rows, "accuracy": accuracy, "cli": cli}, indent=1
            )
        )

    cli = cli_check(args.device, args.cli_steps)
    print("cli:", {k: v for k, v in cli.items() if k != "stderr"}, cli["stderr"][-500:], flush=True)
    save()
    for name in args.problems:
        for batch in args.batches:
            for dtype in args.dtypes:
                try:
                    row = time_steps(name, batch, dtype, device, args.steps, args.repeats)
                except Exception as exc:  # a row that fails must not lose the others
                    row = {
                        "problem": name,
                        "batch": batch,
                        "dtype": dtype,
                        "error": f"{type(exc).__name__}: {exc}"[:200],
                    }
                rows.append(row)
                print(json.dumps(row), flush=True)
                save()
    overrides = {"steps": str(args.accuracy_steps), "batch_size": str(args.accuracy_batch)}
    for name in args.problems:
        for dtype in args.accuracy_dtypes:
            try:
                a = run_one(name, 0, {**overrides, "dtype": dtype}, args.device)
                a["dtype"] = dtype
            except Exception as exc:
                a = {"problem": name, "dtype": dtype, "error": f"{type(exc).__name__}: {exc}"}
            a.pop("errors", None)
            accuracy.append(a)
            print(json.dumps(a), flush=True)
            save()
    print(args.out.read_text())


if __name__ == "__main__":
    main()
