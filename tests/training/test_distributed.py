"""Data parallelism on CPU with the gloo backend: W processes give the gradient of one process
on the concatenated batch (float64, 1e-10), not the biased average of per-rank losses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nsvd_cli.files.checkpoint import read_checkpoint
from nsvd_cli.files.results import read_results
from nsvd_cli.kinds.integral_model import (
    SingularObjective,
    build_singular,
    derive_singular_settings,
)
from nsvd_cli.kinds.schrodinger import build, derive_settings
from nsvd_cli.objectives.formulations import halves
from nsvd_cli.spec.load import load_problem, parse_problem
from nsvd_cli.training.distributed import LOCAL, Context, leave, rank_batch, rank_seed
from nsvd_cli.training.loop import EigenObjective, init_state, train

CPU = torch.device("cpu")
PROBLEM = """
name: ddp-oscillator
coordinates: [x, y]
operator: {potential: "(x**2 + 2*y**2)/2"}
modes: 3
solver: {batch_size: BATCH, hidden: 16, dtype: float64, method: METHOD}
"""


def _compiled(method: str, derivatives: str, batch: int):
    text = PROBLEM.replace("METHOD", method).replace("BATCH", str(batch))
    settings = derive_settings(problem := parse_problem(text, "ddp.yaml"))
    settings.derivatives = derivatives
    return build(problem, settings)


def _gradient(
    method: str, derivatives: str, batch: int, context: Context, points: torch.Tensor | None
) -> tuple[float, list[torch.Tensor]]:
    """One training loss and its (rank-averaged) gradient. ``points``: this batch instead of
    the rank's own sample (the single-process reference)."""
    compiled = _compiled(method, derivatives, batch)
    state = init_state(compiled, CPU)  # the same weights on every rank (same seed)
    state.generator.manual_seed(rank_seed(compiled.settings.seed, context))
    objective = EigenObjective(compiled, CPU, context)
    if points is not None:
        objective.sampler.sample = lambda n, generator: points  # type: ignore[method-assign]
    loss = objective.loss(state)
    loss.backward()
    params = list(state.network.parameters())
    if context.active:
        context.average_gradients(params, False)
    return float(loss.detach()), [p.grad.detach().clone() for p in params]


def _worker(rank: int, world: int, init: str, out: str, method: str, derivatives: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    try:
        result = _gradient(method, derivatives, 64, Context(rank, world), None)
        torch.save(result, f"{out}/rank{rank}.pt")
    finally:
        Context(rank, world).close()
    leave(0)


def _all_points(method: str, derivatives: str, batch: int, world: int) -> torch.Tensor:
    """The ranks' samples arranged as one batch: every rank's first half, then every second
    half (the global half batches of ``Context.globalize``)."""
    compiled = _compiled(method, derivatives, batch)
    share = rank_batch(batch, Context(0, world))
    firsts, seconds = [], []
    for rank in range(world):
        gen = torch.Generator().manual_seed(rank_seed(compiled.settings.seed, Context(rank, world)))
        x = compiled.sampler.to(CPU, torch.float64).sample(share, gen)
        first, second = halves(x)
        firsts.append(first)
        seconds.append(second)
    return torch.cat(firsts + seconds)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("world", "method", "derivatives"),
    [
        (2, "neuralsvd-sequential", "forward-laplacian"),
        (4, "neuralsvd-sequential", "forward-laplacian"),
        (2, "neuralsvd-joint", "weak"),
        (2, "neuralef", "forward-laplacian"),
    ],
)
def test_ranks_give_the_single_process_gradient(
    tmp_path: Path, world: int, method: str, derivatives: str
) -> None:
    mp.spawn(
        _worker,
        args=(world, str(tmp_path / "rendezvous"), str(tmp_path), method, derivatives),
        nprocs=world,
        join=True,
    )
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]
    points = _all_points(method, derivatives, 64, world)
    loss, grads = _gradient(method, derivatives, 64, LOCAL, points)
    for rank_loss, rank_grads in results:
        assert abs(rank_loss - loss) <= 1e-10 * max(1.0, abs(loss))
        for g, ref in zip(rank_grads, grads):
            torch.testing.assert_close(g, ref, rtol=1e-10, atol=1e-12)
    # And the point of it all: the mean of per-rank losses' gradients would differ.
    share = points.shape[0] // world
    local = [
        _gradient(method, derivatives, share, LOCAL, _rank_points(points, world, r))[1]
        for r in range(world)
    ]
    naive = [torch.stack(gs).mean(0) for gs in zip(*local)]
    gap = max(float((a - b).abs().max()) for a, b in zip(naive, grads))
    assert gap > 1e-6


def _rank_points(points: torch.Tensor, world: int, rank: int) -> torch.Tensor:
    half = points.shape[0] // 2
    share = half // world
    first = points[rank * share : (rank + 1) * share]
    second = points[half + rank * share : half + (rank + 1) * share]
    return torch.cat([first, second])


def test_batch_must_split_into_equal_halves() -> None:
    assert rank_batch(1024, Context(1, 4)) == 256
    assert rank_batch(1023, LOCAL) == 1023
    with pytest.raises(ValueError, match="multiple of 8"):
        rank_batch(1020, Context(0, 4))


def _train_worker(rank: int, world: int, init: str, out: str, steps: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    try:
        compiled = _compiled("neuralsvd-sequential", "forward-laplacian", 64)
        compiled.settings.optimiser.steps = steps
        context = Context(rank, world)
        state = init_state(compiled, CPU)
        state.generator.manual_seed(rank_seed(compiled.settings.seed, context))
        train(compiled, state, CPU, context=context)
        torch.save(state.network.state_dict(), f"{out}/net{rank}.pt")
    finally:
        Context(rank, world).close()
    leave(0)


@pytest.mark.slow
def test_training_steps_match_one_process_on_the_concatenated_batches(tmp_path: Path) -> None:
    """Whole steps, not one gradient: Adam, the adaptive shift and the running moments stay
    the same as in one process that sees every rank's points (float64, 30 steps)."""
    world, steps = 2, 30
    mp.spawn(
        _train_worker,
        args=(world, str(tmp_path / "rendezvous"), str(tmp_path), steps),
        nprocs=world,
        join=True,
    )
    compiled = _compiled("neuralsvd-sequential", "forward-laplacian", 64)
    compiled.settings.optimiser.steps = steps
    sampler = compiled.sampler.to(CPU, torch.float64)
    gens = [
        torch.Generator().manual_seed(rank_seed(compiled.settings.seed, Context(r, world)))
        for r in range(world)
    ]
    real_sample = sampler.sample

    def sample(n: int, generator: torch.Generator) -> torch.Tensor:
        parts = [halves(real_sample(n // world, g)) for g in gens]
        return torch.cat([p[0] for p in parts] + [p[1] for p in parts])

    state = init_state(compiled, CPU)
    objective = EigenObjective(compiled, CPU)
    objective.sampler.sample = sample  # type: ignore[method-assign]
    train(compiled, state, CPU, objective=objective)
    for rank in range(world):
        weights = torch.load(tmp_path / f"net{rank}.pt")
        for name, value in state.network.state_dict().items():
            torch.testing.assert_close(weights[name], value, rtol=1e-9, atol=1e-11)


ROOT = Path(__file__).resolve().parents[2]
# The 1D oscillator's 4 modes with its default settings: 3000 steps learn every mode to
# about 1e-2 from any seed (shorter or narrower runs sometimes leave a mode unformed).
E2E = ROOT / "problems" / "oscillator-1d.yaml"
E2E_STEPS = "3000"


def _nsvd(*args: str, world: int = 1) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    prefix = [*launcher, f"--nproc-per-node={world}"] if world > 1 else [sys.executable]
    command = [*prefix, "-m", "nsvd_cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_torchrun_solve_matches_one_process_and_resume_checks_the_world_size(
    tmp_path: Path,
) -> None:
    problem = E2E
    two = _nsvd(
        "solve", str(problem), "--out", str(tmp_path / "two"), "--steps", E2E_STEPS, world=2
    )
    assert two.returncode == 0, two.stderr[-3000:]
    one = _nsvd("solve", str(problem), "--out", str(tmp_path / "one"), "--steps", E2E_STEPS)
    assert one.returncode == 0, one.stderr[-3000:]
    a = read_results(tmp_path / "two" / "results.h5")
    b = read_results(tmp_path / "one" / "results.h5")
    exact = np.arange(4) + 0.5
    # Same algorithm, different random streams: both close to the closed form.
    assert np.abs(a.eigenvalues / exact - 1).max() < 2e-2, a.eigenvalues
    assert np.abs(b.eigenvalues / exact - 1).max() < 2e-2, b.eigenvalues
    assert a.attrs["steps"] == b.attrs["steps"] == 3000
    assert read_checkpoint(tmp_path / "two" / "checkpoint.pt")["world_size"] == 2
    # Resuming with another number of processes is refused, naming both.
    again = _nsvd(
        "solve", str(problem), "--out", str(tmp_path / "two"), "--resume", "--steps", "3100"
    )
    assert again.returncode == 2  # a mismatched --resume is a usage error
    assert "written by a job of 2 process(es), this one has 1" in again.stderr


def _singular(context: Context, points: tuple[torch.Tensor, torch.Tensor] | None):
    """One loss and gradient of the two-sided objective of problems/volterra.yaml."""
    problem = load_problem(ROOT / "problems" / "volterra.yaml")
    settings = derive_singular_settings(problem)
    settings.optimiser.batch_size, settings.dtype, settings.network.hidden = 64, "float64", 16
    compiled = build_singular(problem, settings)
    state = init_state(compiled, CPU)
    state.generator.manual_seed(rank_seed(settings.seed, context))
    objective = SingularObjective(compiled, CPU, context)
    if points is not None:
        objective.operator.left.sampler.sample = lambda n, g: points[0]  # type: ignore
        objective.operator.right.sampler.sample = lambda n, g: points[1]  # type: ignore
    loss = objective.loss(state)
    loss.backward()
    params = list(state.network.parameters())
    if context.active:
        context.average_gradients(params, False)
    return float(loss.detach()), [p.grad.detach().clone() for p in params], objective


def _singular_worker(rank: int, world: int, init: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    try:
        loss, grads, _ = _singular(Context(rank, world), None)
        torch.save((loss, grads), f"{out}/singular{rank}.pt")
    finally:
        Context(rank, world).close()
    leave(0)


@pytest.mark.slow
def test_integral_operator_ranks_give_the_single_process_gradient(tmp_path: Path) -> None:
    """Every pair (x_i, y_j) of the whole job enters <f, T g>, as in one process."""
    world = 2
    mp.spawn(
        _singular_worker,
        args=(world, str(tmp_path / "rendezvous"), str(tmp_path)),
        nprocs=world,
        join=True,
    )
    _, _, objective = _singular(LOCAL, None)
    share = rank_batch(64, Context(0, world))
    xs, ys = [], []
    for rank in range(world):
        gen = torch.Generator().manual_seed(rank_seed(objective.settings.seed, Context(rank, 2)))
        xs.append(objective.operator.left.sampler.sample(share, gen))
        ys.append(objective.operator.right.sampler.sample(share, gen))
    loss, grads, _ = _singular(LOCAL, (torch.cat(xs), torch.cat(ys)))
    for rank in range(world):
        rank_loss, rank_grads = torch.load(tmp_path / f"singular{rank}.pt")
        assert abs(rank_loss - loss) <= 1e-10 * max(1.0, abs(loss))
        for g, ref in zip(rank_grads, grads):
            torch.testing.assert_close(g, ref, rtol=1e-10, atol=1e-12)
