"""Fixed-seed eigenvalues of one problem of each kind, for "no number changed" checks.

A refactor must leave every number the same bit for bit. This script solves a few short
fixed-seed runs on the CPU with one thread, through the command line (so it works on any
code shape), and records every eigenvalue / singular value and its standard error, and
every number of ``nsvd eval --json``, with full precision (``float.hex``). Run it before a
change and after, then compare (or compare with the output kept in benchmarks/baselines/):

    .venv/bin/python benchmarks/fixed_seed.py --out /tmp/before.json
    ... change the code ...
    .venv/bin/python benchmarks/fixed_seed.py --out /tmp/after.json --compare /tmp/before.json
    .venv/bin/python benchmarks/fixed_seed.py --out /tmp/after.json \
        --compare benchmarks/baselines/fixed-seed-1893182.json

It is not an accuracy benchmark: 300 steps are far from converged on purpose (fast, and
every step's arithmetic still reaches the numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
from common import provenance, write_keeping_notes

ROOT = Path(__file__).resolve().parents[1]
NSVD = [sys.executable, "-m", "nsvd_cli"]

# (label, problem, extra options): every kind, and the methods / formulations whose code
# paths a refactor moves.
CASES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("eigen", "oscillator-2d", ()),
    ("eigen-region", "disk-2d", ()),
    ("eigen-joint", "oscillator-1d", ("--method", "neuralsvd-joint")),
    ("eigen-neuralef", "oscillator-1d", ("--method", "neuralef")),
    ("eigen-spin", "oscillator-1d", ("--method", "spin")),
    ("eigen-hutchinson", "hydrogen-2d", ("--derivatives", "hutchinson")),
    ("eigen-weak", "box-2d", ("--derivatives", "weak")),
    ("neumann", "neumann-box-2d", ()),
    ("drift", "convection-diffusion-2d", ()),
    ("integral", "volterra", ()),
    ("integral-kernel", "gaussian-cdk", ()),
)
STEPS = 300
VOLATILE = {"eval/train_seconds"}  # wall-clock time
SEED = 7


def run_case(problem: str, extra: tuple[str, ...], folder: Path) -> dict[str, list[str]]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    command = [
        *NSVD, "solve", str(ROOT / "problems" / f"{problem}.yaml"), "--out", str(folder),
        "--steps", str(STEPS), "--seed", str(SEED), "--device", "cpu", *extra,
    ]
    subprocess.run(command, check=True, env=env, capture_output=True, cwd=ROOT)
    with h5py.File(folder / "results.h5", "r") as results:
        numbers = {
            name: [float(v).hex() for v in results[name][()]]
            for name in ("eigenvalues", "eigenvalue_stderr", "readout/native_eigenvalues")
            if name in results
        }
    # nsvd eval's report too: errors, orthogonality, subspace and angle distances.
    evaluate = [*NSVD, "eval", str(folder), "--json"]
    report = subprocess.run(evaluate, env=env, capture_output=True, cwd=ROOT, text=True)
    if report.returncode != 0 and "no reference" in report.stderr:  # against a coarse grid
        reference = folder / "reference.h5"
        make = [*NSVD, "reference", str(ROOT / "problems" / f"{problem}.yaml"), "--grid", "48"]
        subprocess.run([*make, "-o", str(reference)], check=True, env=env, capture_output=True)
        evaluate += ["--against", str(reference)]
        report = subprocess.run(evaluate, env=env, capture_output=True, cwd=ROOT, text=True)
    report.check_returncode()
    for key, value in sorted(json.loads(report.stdout).items()):
        numbers[f"eval/{key}"] = _flat(value)
    return numbers


def _flat(value: object) -> list[str]:
    """Every number in a JSON value, exactly (float.hex), in order; other leaves as text."""
    if isinstance(value, list):
        return [item for v in value for item in _flat(v)]
    if isinstance(value, float):
        return [value.hex()]
    return [json.dumps(value)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON of every number")
    parser.add_argument("--compare", type=Path, help="an earlier --out to compare with")
    parser.add_argument("--only", nargs="*", help="labels of the cases to run")
    parser.add_argument("--doc", type=Path, help="also write the comparison as markdown here")
    args = parser.parse_args()
    numbers: dict[str, dict[str, list[str]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, problem, extra in CASES:
            if args.only and label not in args.only:
                continue
            numbers[label] = run_case(problem, extra, Path(tmp) / label)
            values = ", ".join(f"{float.fromhex(v):.10g}" for v in numbers[label]["eigenvalues"])
            print(f"{label:18s} {problem:26s} {values}", flush=True)
    args.out.write_text(json.dumps(numbers, indent=1) + "\n")
    if args.compare is None:
        return
    earlier = json.loads(args.compare.read_text())
    changed, added, removed = [], [], []
    for label, fields in numbers.items():
        before = earlier.get(label, {})
        for name in sorted(set(fields) | set(before)):
            if name in VOLATILE:
                continue
            if name not in before:
                added.append(f"{label}/{name}")
            elif name not in fields:
                removed.append(f"{label}/{name}")
            elif before[name] != fields[name]:
                changed.append(f"{label}/{name}")
    verdict = "identical to the bit" if not changed + removed else "CHANGED: " + ", ".join(changed)
    report = [*(["new fields (not compared): " + ", ".join(added)] if added else []), verdict]
    if removed:
        report.append("MISSING: " + ", ".join(removed))
    print("\n".join(report))
    if args.doc is not None:
        _write_doc(args, numbers, report)
    sys.exit(1 if changed or removed else 0)


def _write_doc(args: argparse.Namespace, numbers: dict[str, dict[str, list[str]]],
               report: list[str]) -> None:
    command = " ".join(["python benchmarks/fixed_seed.py", *sys.argv[1:]])
    lines = [
        "# Fixed-seed check: the same numbers before and after a change",
        "",
        *provenance(command),
        "",
        f"{len(CASES)} short runs ({STEPS} steps, seed {SEED}, one thread, CPU) of every kind; "
        "every eigenvalue / singular value, its standard error, the method's own estimates "
        f"and every number of `nsvd eval --json` compared as float.hex with `{args.compare}` "
        "(the earlier code's output). Wall-clock time is not compared.",
        "",
        "| case | problem | options | values (first 4) |",
        "|---|---|---|---|",
    ]
    for label, problem, extra in CASES:
        if label in numbers:
            shown = ", ".join(f"{float.fromhex(v):.10g}" for v in numbers[label]["eigenvalues"][:4])
            lines.append(f"| {label} | {problem} | {' '.join(extra) or '-'} | {shown} |")
    lines += ["", "Result:", "", *[f"- {line}" for line in report], ""]
    write_keeping_notes(args.doc, "\n".join(lines))


if __name__ == "__main__":
    main()
