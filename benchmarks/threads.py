"""Training-step time under the OpenMP wait policies, on an idle and on a busy machine.

torch's CPU build runs its kernels on an OpenMP (libgomp) thread team. By default a thread
that finishes its share spins for about 300 000 iterations before it sleeps, waiting for
the next parallel region. On an idle machine that saves a wake-up per region; when another
process holds one of the cores, the team's threads spin against it and each step waits for
a descheduled thread. This script measures both, and whether another wait policy would be a
better default. (It is not: passive waiting is 2-4x slower on an idle machine. nsvd keeps
torch's default and instead warns at `solve` when the machine is busy, and `check
--derived` times one thread beside the default; docs/troubleshooting.md.)

Each configuration runs in its own process (libgomp reads its environment once, when torch
is loaded): `spin` is libgomp's default (`GOMP_SPINCOUNT=300000`, what a plain torch
program and nsvd get), `short spin` waits 30x shorter, `passive` sleeps at once. `busy`
starts one pure-Python busy loop beside the timed process (another job on the machine).

    .venv/bin/python benchmarks/threads.py                  # writes docs/threads.md
    .venv/bin/python benchmarks/threads.py --repeats 1 --out /tmp/threads.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import provenance

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = ("oscillator-1d", "hydrogen-2d")
POLICIES = {  # name -> environment of the timed process
    "spin (default)": {"GOMP_SPINCOUNT": "300000"},
    "short spin": {"GOMP_SPINCOUNT": "10000"},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
}
WARMUP, TIMED = 3, 20


def _child(problem_name: str) -> None:
    """Time ``TIMED`` training steps of a shipped problem at its derived settings."""
    import torch

    import nsvd_cli as nsvd

    problem = nsvd.load_problem(ROOT / "problems" / f"{problem_name}.yaml")
    settings = nsvd.prepare(problem, steps=WARMUP + TIMED).replaced(checkpoint_every=10**9)
    kind = nsvd.kind_of(problem)
    compiled = kind.build(problem, settings)
    device = torch.device("cpu")
    state = nsvd.init_state(compiled, device)
    marks: dict[int, float] = {}

    def mark(st: object, loss: float) -> None:
        marks[st.step] = time.perf_counter()  # type: ignore[attr-defined]

    nsvd.train(compiled, state, device, on_progress=mark, progress_every=1)
    per_step = (marks[WARMUP + TIMED] - marks[WARMUP]) / TIMED
    print(json.dumps({"ms": 1e3 * per_step, "threads": torch.get_num_threads()}))


def _time_one(problem: str, policy: dict[str, str], threads: int, busy: bool) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(policy, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", problem],
            env=env, capture_output=True, text=True, check=True,
        ).stdout
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    return float(json.loads(out.strip().splitlines()[-1])["ms"])


def _table(rows: list[dict[str, object]], command: str) -> str:
    lines = [
        "# Step time under the OpenMP wait policies",
        "",
        *provenance(command),
        "",
        f"Median ms per training step over {TIMED} steps (after {WARMUP}), [min, max] over "
        "the repeats, each configuration in its own process, derived settings of the shipped "
        "file. `busy`: one other process spins on a core beside the run. `vs 1 thread`: this "
        "row over the one-thread default row of the same problem and load (above 1: slower).",
        "",
        "| problem | threads | load | policy | ms/step [min, max] | vs 1 thread |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['problem']} | {r['threads']} | {r['load']} | {r['policy']} | "
            f"{r['median']:.1f} [{r['min']:.1f}, {r['max']:.1f}] | {r['ratio']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "threads.md")
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return
    from common import write_keeping_notes

    command = "python benchmarks/threads.py " + " ".join(sys.argv[1:])
    rows: list[dict[str, object]] = []
    for problem in args.problems:
        for busy in (False, True):
            base = 0.0
            for threads in (1, 2):
                for name, policy in POLICIES.items():
                    if threads == 1 and name != "spin (default)":
                        continue  # a team of one never waits on another thread
                    times = [_time_one(problem, policy, threads, busy) for _ in range(args.repeats)]
                    med = statistics.median(times)
                    base = base or med
                    rows.append(
                        {"problem": problem, "threads": threads, "load": "busy" if busy else "idle",
                         "policy": name, "median": med, "min": min(times), "max": max(times),
                         "ratio": med / base}
                    )
                    print(rows[-1], flush=True)
                write_keeping_notes(args.out, _table(rows, command.strip() + " (partial)"))
    print(write_keeping_notes(args.out, _table(rows, command.strip())))


if __name__ == "__main__":
    main()
