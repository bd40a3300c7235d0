"""What the divergence guard costs, and the failure paths on this device -> docs/guard.md.

The guard (``nsvd_cli/guard.py``) checks every step's loss, gradients and running moments
for NaN/inf before the optimiser moves: one device-to-host sync per step. This times
training steps with the guard as shipped and with the check replaced by a constant
(interleaved, medians of several repeats, in one process), then runs the failure paths
through the CLI on the same device: a diverging run (learning rate 1e6: roll-backs, then
a diagnosis, exit 1), SIGTERM (exit 143, checkpoint, incomplete results, resume) and the
memory bound (--max-memory).

    python benchmarks/guard.py --device cuda     # about 2 minutes on an H100/H200
    python benchmarks/guard.py --device cpu --quick
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, provenance, write_keeping_notes  # noqa: E402

import nsvd_cli.training.loop as train_module  # noqa: E402
from nsvd_cli import (  # noqa: E402
    init_state,
    kind_of,
    load_problem,
    prepare,
    resolve_device,
    train,
)

PROBLEMS = ("oscillator-1d", "hydrogen-2d", "rotated-oscillator-10d")
REAL_HEALTH = train_module.step_health


def _no_check(loss: torch.Tensor, *args: Any) -> torch.Tensor:
    return torch.tensor(True)  # on the host: no sync


def time_guard(name: str, device: torch.device, steps: int, repeats: int) -> dict[str, Any]:
    problem = load_problem(ROOT / "problems" / f"{name}.yaml")
    settings = prepare(problem, seed=0)
    compiled = kind_of(problem).build(problem, settings)
    state = init_state(compiled, device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def run(n: int) -> float:
        settings.optimiser.steps = state.step + n
        sync()
        t0 = time.perf_counter()
        train(compiled, state, device)
        sync()
        return (time.perf_counter() - t0) / n * 1e3

    run(20)  # warm-up
    times: dict[str, list[float]] = {"guard": [], "none": []}
    for _ in range(repeats):
        for mode in ("guard", "none"):
            train_module.step_health = REAL_HEALTH if mode == "guard" else _no_check
            try:
                times[mode].append(run(steps))
            finally:
                train_module.step_health = REAL_HEALTH
    guard, none = statistics.median(times["guard"]), statistics.median(times["none"])
    return {
        "problem": name,
        "batch": settings.optimiser.batch_size,
        "guard_ms": guard,
        "none_ms": none,
        "ratio": guard / none,
        "ratios": [g / n for g, n in zip(times["guard"], times["none"])],
    }


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "nsvd_cli", *args]


DIVERGING = """
name: diverging
coordinates: [x]
operator: {potential: "x**2/2"}
modes: 2
solver: {steps: 2000, batch_size: 256, learning_rate: 1.0e6, checkpoint_every: 100}
"""
LONG = DIVERGING.replace("learning_rate: 1.0e6", "learning_rate: 1.0e-3").replace(
    "steps: 2000", "steps: 1000000"
)


def failure_paths(device: str, tmp: Path) -> list[dict[str, Any]]:
    rows = []
    env = {**os.environ, "COLUMNS": "200"}
    problem = tmp / "diverging.yaml"
    problem.write_text(DIVERGING)
    t0 = time.perf_counter()
    proc = subprocess.run(
        _cli("solve", str(problem), "--out", str(tmp / "d"), "--device", device),
        capture_output=True,
        text=True,
        env=env,
    )
    error = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    rows.append(
        {
            "case": "learning rate 1e6",
            "exit": proc.returncode,
            "seconds": time.perf_counter() - t0,
            "message": error[0] if error else proc.stderr[-300:],
            "results_written": (tmp / "d" / "results.h5").exists(),
        }
    )
    long = tmp / "long.yaml"
    long.write_text(LONG)
    log = tmp / "long.log"
    with open(log, "w") as fh:
        p = subprocess.Popen(
            _cli("solve", str(long), "--out", str(tmp / "t"), "--device", device),
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
        )
    while "run folder:" not in log.read_text():
        time.sleep(0.05)
    time.sleep(3.0)
    t0 = time.perf_counter()
    p.send_signal(signal.SIGTERM)
    code = p.wait()
    text = log.read_text()
    said = [ln for ln in text.splitlines() if "interrupted at" in ln]
    rows.append(
        {
            "case": "SIGTERM during training",
            "exit": code,
            "seconds": time.perf_counter() - t0,
            "message": said[0] if said else text[-300:],
            "results_written": (tmp / "t" / "results.h5").exists(),
        }
    )
    proc = subprocess.run(
        _cli("solve", str(long), "--out", str(tmp / "m"), "--device", device, "--max-memory", "1M"),
        capture_output=True,
        text=True,
        env=env,
    )
    rows.append(
        {
            "case": "--max-memory 1M",
            "exit": proc.returncode,
            "seconds": 0.0,
            "message": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "",
            "results_written": (tmp / "m" / "results.h5").exists(),
        }
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "docs" / "guard.md"))
    args = parser.parse_args()
    device = resolve_device(args.device)
    label = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    steps, repeats = (30, 3) if args.quick else (200, 5)
    problems = PROBLEMS[:1] if args.quick else PROBLEMS
    timing = [time_guard(name, device, steps, repeats) for name in problems]
    with tempfile.TemporaryDirectory() as tmp:
        failures = failure_paths(str(device), Path(tmp))
    lines = [
        "# Divergence guard: cost per step, and the failure paths",
        "",
        *provenance(" ".join(["python benchmarks/guard.py", *sys.argv[1:]]), str(device)),
        "",
        f"Device: {label}. Milliseconds per training step (median of "
        f"{repeats} interleaved repeats of {steps} steps, default settings), with the guard and "
        "with its check replaced by a constant.",
        "",
        "| problem | batch | guard (ms/step) | no check (ms/step) | ratio | ratios |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in timing:
        ratios = ", ".join(f"{x:.3f}" for x in r["ratios"])
        lines.append(
            f"| {r['problem']} | {r['batch']} | {r['guard_ms']:.2f} | {r['none_ms']:.2f} | "
            f"{r['ratio']:.3f} | {ratios} |"
        )
    lines += ["", "| failure | exit | results.h5 | seconds | message |", "|---|---:|---|---:|---|"]
    for r in failures:
        message = r["message"].replace("|", "\\|")
        lines.append(
            f"| {r['case']} | {r['exit']} | {'written' if r['results_written'] else 'none'} | "
            f"{r['seconds']:.1f} | {message} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    write_keeping_notes(out, text)
    out.with_suffix(".json").write_text(
        json.dumps({"device": label, "timing": timing, "failures": failures}, indent=1)
    )


if __name__ == "__main__":
    main()
