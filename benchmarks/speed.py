"""Cost of a training step relative to one plain forward+backward pass, d = 1 .. 64.

For each dimension d (an oscillator V = |x|^2/2, 8 modes, the default 3x128 SiLU network,
batch 1024) and each derivative formulation, the time of one full training step (sampling,
derivatives, loss, backward, Adam, running moments) is divided by the time of one plain
forward+backward pass of the same network on the same batch, measured in the same process
right before. The ratio is machine-independent to first order. Every configuration runs in
its own subprocess so its peak memory can be read cleanly (CPU: the rise of the peak
resident set over the set-up; CUDA: torch's peak allocation).

    .venv/bin/python benchmarks/speed.py                    # writes docs/speed.md
    .venv/bin/python benchmarks/speed.py --dims 2 8 --repeats 3 --out /tmp/speed.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import provenance

ROOT = Path(__file__).resolve().parents[1]
DIMS = (1, 2, 4, 8, 16, 32, 64)
FORMULATIONS = ("forward-laplacian", "forward-laplacian+compile", "weak", "hutchinson", "autograd")
COMPILE_MAX_DIM = 16  # compilation takes ~20 s per configuration; the trend is clear by then
AUTOGRAD_MAX_DIM = 8  # the reference costs O(L d) backward passes: slow by design
PROBES = 8
MODES = 8
BATCH = 1024
TARGET_RATIO_D2 = 4.0


def _problem_text(d: int) -> str:
    coords = [f"x{i}" for i in range(d)]
    potential = " + ".join(f"{c}**2" for c in coords)
    return (
        f"name: speed-{d}d\ncoordinates: [{', '.join(coords)}]\n"
        f'operator: {{potential: "({potential})/2"}}\nmodes: {MODES}\n'
        f"solver: {{batch_size: {BATCH}, hidden: 128, depth: 3}}\n"
    )


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def measure(d: int, formulation: str, repeats: int, steps: int, device_name: str) -> dict:
    """One configuration, in this process: median ratio, times and peak memory."""
    from nsvd_cli import init_state, kind_of, parse_problem, resolve_device, train
    from nsvd_cli.numerics.derivatives import hutchinson_variance  # the variance column only

    device = resolve_device(device_name)
    problem = parse_problem(_problem_text(d))
    name, _, option = formulation.partition("+")
    settings = kind_of(problem).derive_settings(problem).replaced(
        derivatives=name,
        hutchinson_probes=PROBES,
        compile=option == "compile",
    )
    compiled = kind_of(problem).build(problem, settings)
    state = init_state(compiled, device)
    net = state.network
    x = compiled.sampler.to(device, torch.float32).sample(BATCH, state.generator)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def plain() -> None:
        net.zero_grad(set_to_none=True)
        (net(x) ** 2).mean().backward()

    def run_steps(n: int) -> None:
        compiled.settings.optimiser.steps = state.step + n
        train(compiled, state, device, progress_every=10**9)

    # Memory first, in a fresh process: later steps reuse what the allocator kept.
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        run_steps(2)
        peak_mib = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    elif _reset_peak_rss():
        base = _rss_kib("VmRSS")
        run_steps(2)
        peak_mib = (_rss_kib("VmHWM") - base) / 1024
    else:
        run_steps(2)
        peak_mib = float("nan")
    for _ in range(3):
        plain()
    run_steps(2)
    sync()
    ratios, step_ms, plain_ms = [], [], []
    plain_reps = 3 * steps  # the plain pass is short: time more of them
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(plain_reps):
            plain()
        sync()
        t1 = time.perf_counter()
        run_steps(steps)
        sync()
        t2 = time.perf_counter()
        p, s = (t1 - t0) / plain_reps, (t2 - t1) / steps
        ratios.append(s / p)
        step_ms.append(1e3 * s)
        plain_ms.append(1e3 * p)

    variance = None
    if name == "hutchinson":
        variance = hutchinson_variance(net, x, PROBES, torch.Generator(device).manual_seed(0))
    return {
        "d": d,
        "formulation": formulation,
        "ratio": statistics.median(ratios),
        "ratio_spread": [min(ratios), max(ratios)],
        "step_ms": statistics.median(step_ms),
        "plain_ms": statistics.median(plain_ms),
        "peak_mib": peak_mib,
        "hutchinson_rel_var": variance,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
    }


def _subprocess(d: int, formulation: str, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--one",
        json.dumps([d, formulation]),
        "--repeats",
        str(args.repeats),
        "--steps",
        str(args.steps),
        "--device",
        args.device,
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _slope(rows: list[dict]) -> str:
    """Least-squares ratio increase per added dimension, over the measured dims."""
    ds = [r["d"] for r in rows]
    rs = [r["ratio"] for r in rows]
    n = len(ds)
    if n < 2:
        return "n/a"
    md, mr = sum(ds) / n, sum(rs) / n
    slope = sum((a - md) * (b - mr) for a, b in zip(ds, rs)) / sum((a - md) ** 2 for a in ds)
    return f"{slope:.2f}"


def write_table(rows: list[dict], path: Path, command: str) -> str:
    by = {(r["d"], r["formulation"]): r for r in rows}
    dims = sorted({r["d"] for r in rows})
    forms = [f for f in FORMULATIONS if any(r["formulation"] == f for r in rows)]
    first = rows[0]
    lines = [
        "# Speed: cost of a training step per dimension",
        "",
        *provenance(command, str(first["device"])),
        f"Threads per measured process: {first['threads']}.",
        "",
        f"Problem: oscillator V = |x|^2/2 in d dimensions, {MODES} modes, shared 3x128 SiLU "
        f"network, batch {BATCH}, float32. **ratio** = time of one full training step "
        "(sampling, derivatives, loss, backward, Adam, running moments) / time of one plain "
        "forward+backward pass of the same network on the same batch, measured alternately "
        "in the same process; median over repeats (min-max in brackets). **MiB** = peak "
        "memory the first two steps add over the set-up, in a fresh process (CPU: peak "
        "resident set, which includes the allocator's caches; CUDA: peak allocation). "
        "**+compile** is the same formulation under `torch.compile` (`--compile`; its one-off "
        "compilation, about 20 s, is excluded; measured up to d = 16). "
        f"Hutchinson uses {PROBES} Rademacher probes; its **rel. var.** is the relative "
        "variance per point and draw of its Laplacian, E|est - exact|^2 / E|exact|^2, at "
        "initialisation (divide by the batch size for the noise it adds to a batch mean).",
        "",
        "## (a, b) Step / (forward+backward) ratio per formulation",
        "",
        "| d | " + " | ".join(forms) + " |",
        "|---|" + "---|" * len(forms),
    ]
    for d in dims:
        cells = []
        for f in forms:
            r = by.get((d, f))
            cells.append(
                "-"
                if r is None
                else f"{r['ratio']:.2f} [{r['ratio_spread'][0]:.2f}-{r['ratio_spread'][1]:.2f}]"
            )
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    lines += [
        "| ratio added per dimension (least squares) | "
        + " | ".join(_slope([r for r in rows if r["formulation"] == f]) for f in forms)
        + " |",
        "",
        "## Step time and plain forward+backward time (ms)",
        "",
        "| d | plain f+b | " + " | ".join(forms) + " |",
        "|---|---|" + "---|" * len(forms),
    ]
    for d in dims:
        plain = by.get((d, "forward-laplacian"), next(r for r in rows if r["d"] == d))
        cells = ["-" if (d, f) not in by else f"{by[(d, f)]['step_ms']:.1f}" for f in forms]
        lines.append(f"| {d} | {plain['plain_ms']:.2f} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## (c) Peak memory added by a step (MiB)",
        "",
        "| d | " + " | ".join(forms) + " | Hutchinson rel. var. |",
        "|---|" + "---|" * (len(forms) + 1),
    ]
    for d in dims:
        cells = ["-" if (d, f) not in by else f"{by[(d, f)]['peak_mib']:.0f}" for f in forms]
        hv = by.get((d, "hutchinson"), {}).get("hutchinson_rel_var")
        lines.append(f"| {d} | " + " | ".join(cells) + f" | {'-' if hv is None else f'{hv:.2f}'} |")
    d2 = by.get((2, "forward-laplacian"))
    if d2 is not None:
        met = "met" if d2["ratio"] < TARGET_RATIO_D2 else "missed"
        lines += [
            "",
            f"Target: ratio below {TARGET_RATIO_D2:g} at d = 2 with the default "
            f"(forward-laplacian): {d2['ratio']:.2f}, {met}.",
        ]
    text = "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=list(DIMS))
    parser.add_argument("--formulations", nargs="+", default=list(FORMULATIONS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "speed.md")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        d, formulation = json.loads(args.one)
        print(json.dumps(measure(d, formulation, args.repeats, args.steps, args.device)))
        return
    rows = []
    for d in args.dims:
        for formulation in args.formulations:
            if formulation == "autograd" and d > AUTOGRAD_MAX_DIM:
                continue
            if formulation.endswith("+compile") and d > COMPILE_MAX_DIM:
                continue
            row = _subprocess(d, formulation, args)
            rows.append(row)
            print(
                f"d={d:3d} {formulation:18s} ratio {row['ratio']:6.2f} "
                f"step {row['step_ms']:8.1f} ms plain {row['plain_ms']:.2f} ms "
                f"peak {row['peak_mib']:.0f} MiB",
                flush=True,
            )
    command = "python benchmarks/speed.py " + " ".join(sys.argv[1:])
    print(write_table(rows, args.out, command.strip()))


if __name__ == "__main__":
    main()
