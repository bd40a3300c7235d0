"""The training loop: sample, evaluate, take an optimiser step; nothing about files or screens.

Callers pass hooks for progress and checkpoints. Everything that decides the next step
(network, optimiser, schedule position, sampler RNG, running moments, the operator shift)
is in ``TrainState`` and round-trips through ``state_dict``, so a resumed run continues
bit-for-bit where it stopped (on the same device and threads).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, runtime_checkable

import torch

from nsvd_cli.objectives.batch import CompiledOperator
from nsvd_cli.objectives.formulations import (
    Formulation,
    StepTerms,
    get_formulation,
    operator_rows,
    squared_form,
)
from nsvd_cli.objectives.methods import Method, MethodOptions, make_method
from nsvd_cli.objectives.readout import ritz_from_moments
from nsvd_cli.training.distributed import LOCAL, Context, rank_batch, rank_seed
from nsvd_cli.training.guard import (
    ROLLBACK_LR_FACTOR,
    ROLLBACK_SEED_STRIDE,
    Check,
    Diverged,
    diagnose,
    step_health,
)
from nsvd_cli.training.settings import Settings
from nsvd_cli.training.state import DTYPES, MOMENT_DECAY, Snapshot, TrainState

SHIFT_EVERY = 50


def learning_rate_factor(step: int, total: int) -> float:
    """Linear warm-up over 1% of the steps, then cosine decay to 1% of the base rate."""
    warm = max(1, total // 100)
    if step < warm:
        return 0.1 + 0.9 * step / warm
    t = (step - warm) / max(1, total - warm)
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


class Trainable(Protocol):
    """What ``init_state`` needs: an eigenproblem or a singular problem, compiled."""

    settings: Settings

    def make_network(self) -> torch.nn.Module: ...


@runtime_checkable
class DifferentialProblem(CompiledOperator, Trainable, Protocol):
    """A compiled differential eigenproblem (``kinds.schrodinger``): the default objective."""


def init_state(compiled: Trainable, device: torch.device) -> TrainState:
    s = compiled.settings
    torch.manual_seed(s.seed)
    network = compiled.make_network().to(device=device, dtype=DTYPES[s.dtype])
    optimizer = torch.optim.Adam(network.parameters(), lr=s.optimiser.learning_rate)
    generator = torch.Generator(device=device).manual_seed(s.seed)
    shift = s.transform.shift if s.transform.shift is not None else 0.0
    return TrainState(network, optimizer, generator, shift=shift, method=_method(s, network))


def _method(s: Settings, network: torch.nn.Module) -> Method:
    return make_method(s.method, network, MethodOptions(moving_average=s.spin_decay))


def _adaptive_shift(eigenvalues: list[float]) -> float | None:
    """Keep T's wanted eigenvalues positive: the Ritz values bound E_l from above."""
    finite = [e for e in eigenvalues if math.isfinite(e)]
    if len(finite) < len(eigenvalues) or not finite:
        return None
    lo, hi = finite[0], finite[-1]
    margin = max(0.5 * (hi - lo), 0.05 * abs(hi), 1e-8)
    return hi + margin


ProgressHook = Callable[[TrainState, float], None]
CheckpointHook = Callable[[TrainState], None]


@contextmanager
def matmul_precision(dtype: str, device: torch.device) -> Iterator[None]:
    """TF32 products for the duration of training when asked for on CUDA; restored after."""
    if dtype != "tf32" or device.type != "cuda":
        yield
        return
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def autocast(dtype: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast for ``bf16-mixed``; nothing otherwise."""
    if dtype != "bf16-mixed":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


class Objective(Protocol):
    """What the loop minimises: one batch's loss, and the running estimates it reports."""

    def loss(self, state: TrainState) -> torch.Tensor:
        """The loss of a fresh batch (with its graph); updates the state's running moments."""
        ...

    def after_step(self, state: TrainState) -> None: ...

    def values(self, state: TrainState) -> list[float]: ...

    def checks(self) -> list[Check]:
        """The last batch's quantities in the order they were computed, for a diagnosis."""
        ...


class EigenObjective:
    """The lowest eigenpairs of H as the top eigenpairs of T = scale * (shift - H)."""

    def __init__(
        self, compiled: DifferentialProblem, device: torch.device, context: Context = LOCAL
    ) -> None:
        s = compiled.settings
        self.compiled = compiled
        self.sampler = compiled.sampler.to(device, DTYPES[s.dtype])
        self.formulation = make_formulation(s)
        self.adaptive = s.transform.shift is None
        self.context = context
        self.batch = rank_batch(s.optimiser.batch_size, context)
        self.last: tuple[torch.Tensor, StepTerms] | None = None

    def loss(self, state: TrainState) -> torch.Tensor:
        s = self.compiled.settings
        x = self.sampler.sample(self.batch, state.generator)
        with autocast(s.dtype, x.device):
            terms = self.formulation(self.compiled, self.sampler, state.network, x, state.generator)
        if terms.f.dtype != x.dtype:  # the loss and its moments in the parameters' precision
            terms = StepTerms(
                terms.f.to(x.dtype), (terms.rows[0].to(x.dtype), terms.rows[1].to(x.dtype))
            )
        terms = self.context.globalize(terms)  # the whole job's batch (distributed.py)
        gram, energy = terms.gram.detach(), terms.energy.detach()
        if self.adaptive and (state.step == 0 or state.gram is None):
            first = ritz_from_moments(gram.double(), energy.double())[0]
            state.shift = self._floored(_adaptive_shift([float(v) for v in first]), state)
        t = s.transform.scale * (state.shift * terms.gram - terms.energy)
        assert state.method is not None
        out = state.method(terms.f, t, operator_rows(terms, state.shift, s.transform.scale))
        _update_moments(state, gram, energy)
        self.last = (x, terms)  # kept by reference; the checks are built only on failure
        return out.loss

    def checks(self) -> list[Check]:
        if self.last is None:
            return []
        x, terms = self.last
        rows = torch.stack([r.detach() for r in terms.rows])
        return [
            ("sampled points", x),
            ("network output", terms.f.detach()),
            ("operator term H psi (per half batch)", rows),
        ]

    def after_step(self, state: TrainState) -> None:
        if self.adaptive and state.step % SHIFT_EVERY == 0:
            state.shift = self._floored(_adaptive_shift(state.current_eigenvalues()), state)

    def _floored(self, shift: float | None, state: TrainState) -> float:
        """The adaptive shift, kept above ``settings.transform.shift_floor`` when one is set: a span
        whose functions have collapsed onto the lowest states would otherwise pull the shift
        under the next wanted value, which then can never be learned (T's eigenvalue < 0)."""
        value = state.shift if shift is None else shift
        floor = self.compiled.settings.transform.shift_floor
        return value if floor is None else max(value, floor)

    def values(self, state: TrainState) -> list[float]:
        values = state.current_eigenvalues()
        if self.compiled.settings.want == "smallest-singular":  # Ritz values of A^*A: s^2
            return [math.sqrt(max(v, 0.0)) for v in values]
        return values


def train(
    compiled: Trainable,
    state: TrainState,
    device: torch.device,
    on_progress: ProgressHook | None = None,
    on_checkpoint: CheckpointHook | None = None,
    progress_every: int = 100,
    stop: Callable[[], bool] = lambda: False,
    objective: Objective | None = None,
    context: Context = LOCAL,
) -> TrainState:
    """Run steps until ``settings.optimiser.steps`` or ``stop()``; hooks see progress and
    checkpoints.

    ``objective`` defaults to the eigenproblem of ``compiled``; singular problems pass theirs.
    A step that is not finite rolls the state back to the last checkpoint (or the start)
    with the learning rate halved, at most ``settings.optimiser.max_rollbacks`` times (a
    ``RollbackWarning`` each); after that ``Diverged`` says which term blew up, and where.
    """
    s = compiled.settings
    if state.method is None:
        state.method = _method(s, state.network)
    if objective is None:
        assert isinstance(compiled, DifferentialProblem)
        objective = EigenObjective(compiled, device, context)
    good = copy.deepcopy(state.state_dict())

    def keep(st: TrainState) -> None:
        nonlocal good
        good = copy.deepcopy(st.state_dict())
        if on_checkpoint is not None:
            on_checkpoint(st)

    while True:
        try:
            with matmul_precision(s.dtype, device):
                return _loop(s, state, objective, on_progress, keep, progress_every, stop, context)
        except Diverged as exc:
            record = exc.divergence.describe()
            if state.rollbacks >= s.optimiser.max_rollbacks:
                state.divergences.append(record)
                good_step = int(good["step"])
                raise Diverged(exc.divergence, state.rollbacks, good_step, state.lr_scale) from None
            _roll_back(s, state, good, record, context)


class RollbackWarning(UserWarning):
    """A non-finite step was undone: the run went back to its last good state."""


def _roll_back(
    s: Settings, state: TrainState, good: dict[str, Any], record: str, context: Context
) -> None:
    rollbacks = state.rollbacks + 1
    lr_scale = state.lr_scale * ROLLBACK_LR_FACTOR
    divergences = [*state.divergences, record]
    state.load_state_dict(copy.deepcopy(good))
    state.rollbacks, state.lr_scale, state.divergences = rollbacks, lr_scale, divergences
    state.generator.manual_seed(rank_seed(s.seed + ROLLBACK_SEED_STRIDE * rollbacks, context))
    warnings.warn(
        f"{record}; rolled back to step {state.step} with the learning rate x{lr_scale:g} "
        f"(roll-back {rollbacks} of at most {s.optimiser.max_rollbacks})",
        RollbackWarning,
        stacklevel=3,
    )


def _moments(state: TrainState) -> list[Check]:
    return [
        ("running Gram matrix (eigenvalue estimates)", state.gram),
        ("running operator matrix (eigenvalue estimates)", state.energy),
        ("running right Gram matrix", state.right_gram),
    ]


def _loop(
    s: Settings,
    state: TrainState,
    objective: Objective,
    on_progress: ProgressHook | None,
    on_checkpoint: CheckpointHook | None,
    progress_every: int,
    stop: Callable[[], bool],
    context: Context = LOCAL,
) -> TrainState:
    optimizer = state.optimizer
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    total = s.optimiser.steps
    started = time.perf_counter() - state.elapsed
    loss_value = float("nan")
    halt = False
    # One process stops before a step; a distributed job finishes the step every rank is in
    # and stops together (the ranks agree through the gradient all-reduce).
    while state.step < total and not halt and (context.active or not stop()):
        for group in optimizer.param_groups:
            factor = learning_rate_factor(state.step, total)
            group["lr"] = s.optimiser.learning_rate * state.lr_scale * factor
        loss = objective.loss(state)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        halt = context.average_gradients(parameters, stop()) if context.active else False
        moments = [m for _, m in _moments(state) if m is not None]
        if not bool(step_health(loss, parameters, moments)):  # before the weights move
            raise Diverged(
                diagnose(state.step + 1, state.network, objective.checks(), loss, _moments(state))
            )
        optimizer.step()
        state.step += 1
        record = state.step % progress_every == 0 or state.step == total
        if record:
            loss_value = float(loss.detach())
        objective.after_step(state)
        state.elapsed = time.perf_counter() - started
        if record:
            snap = Snapshot(
                state.step,
                loss_value,
                state.shift,
                objective.values(state),
                state.elapsed,
                optimizer.param_groups[0]["lr"],
            )
            state.history.append(snap)
            if on_progress is not None:
                on_progress(state, loss_value)
        if on_checkpoint is not None and state.step % s.optimiser.checkpoint_every == 0:
            on_checkpoint(state)
    return state


def make_formulation(s: Settings) -> Formulation:
    # The smallest singular values train on the quadratic form of A^*A (its own terms).
    if s.want == "smallest-singular":
        formulation: Formulation = squared_form
    else:
        formulation = get_formulation(s.derivatives, s.hutchinson_probes)
    if s.compile:
        formulation = torch.compile(formulation, dynamic=False)
    return formulation


def _update_moments(state: TrainState, gram: torch.Tensor, energy: torch.Tensor) -> None:
    if state.gram is None or state.energy is None:
        state.gram, state.energy = gram.clone(), energy.clone()
    else:
        state.gram.mul_(MOMENT_DECAY).add_(gram, alpha=1 - MOMENT_DECAY)
        state.energy.mul_(MOMENT_DECAY).add_(energy, alpha=1 - MOMENT_DECAY)
