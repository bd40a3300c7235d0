"""The default objective: the lowest eigenpairs of a compiled differential operator H as the
top eigenpairs of T = scale * (shift - H), with the shift following the learned span."""

from __future__ import annotations

import contextlib
import math
from typing import Any, Protocol, runtime_checkable

import torch

from nsvd_cli.objectives.batch import CompiledOperator
from nsvd_cli.objectives.formulations import (
    Formulation,
    StepTerms,
    get_formulation,
    operator_rows,
    residual_form,
    squared_form,
)
from nsvd_cli.objectives.readout import ritz_from_moments
from nsvd_cli.training.distributed import LOCAL, Context, rank_batch
from nsvd_cli.training.guard import Check
from nsvd_cli.training.settings import Settings
from nsvd_cli.training.state import DTYPES, MOMENT_DECAY, Trainable, TrainState

SHIFT_EVERY = 50
# The residual term's weight against the LoRA loss, both in T's units (T = scale (shift - H),
# so T's residual is scale times H's). Alone (no LoRA term) the residuals fell further on
# the Morse well, but a 2-D hydrogen atom's weakly bound shells drifted 26% off: the LoRA
# term is what keeps the span on the lowest states (docs/method.md, "Refining the residuals").
REFINE_WEIGHT = 1.0



@runtime_checkable
class DifferentialProblem(CompiledOperator, Trainable, Protocol):
    """A compiled differential eigenproblem (``kinds.schrodinger``): the default objective."""



def _adaptive_shift(eigenvalues: list[float]) -> float | None:
    """Keep T's wanted eigenvalues positive: the Ritz values bound E_l from above."""
    finite = [e for e in eigenvalues if math.isfinite(e)]
    if len(finite) < len(eigenvalues) or not finite:
        return None
    lo, hi = finite[0], finite[-1]
    margin = max(0.5 * (hi - lo), 0.05 * abs(hi), 1e-8)
    return hi + margin



def autocast(dtype: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast for ``bf16-mixed``; nothing otherwise."""
    if dtype != "bf16-mixed":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)



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
        formulation = residual_form if self.refining(state) else self.formulation
        with autocast(s.dtype, x.device):
            terms = formulation(self.compiled, self.sampler, state.network, x, state.generator)
        if terms.f.dtype != x.dtype:  # the loss and its moments in the parameters' precision
            terms = StepTerms(
                terms.f.to(x.dtype),
                (terms.rows[0].to(x.dtype), terms.rows[1].to(x.dtype)),
                None if terms.residuals is None else terms.residuals.to(x.dtype),
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
        if terms.residuals is None:
            return out.loss
        return out.loss + REFINE_WEIGHT * s.transform.scale**2 * terms.residuals.sum()

    def refining(self, state: TrainState) -> bool:
        """Whether this step adds the residual term: the last ``refine_steps`` of a fixed
        run, every cycle after the first of a run to a tolerance (where the method's raw
        functions are eigenfunctions and the derivatives exact: ``refines``)."""
        s = self.compiled.settings
        if state.tolerance is not None:
            return refines(s) and state.step >= state.tolerance.first
        steps = s.optimiser.refine_steps
        return steps > 0 and state.step >= s.optimiser.steps - steps

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
        # The wanted functions' own Ritz values: a buffer function with no state to find
        # fades, and its near-null direction in the running Gram matrix gave a spurious value
        # among the wanted ones (Pöschl-Teller: -3.66 between -4.5 and -2).
        buffer = self.compiled.settings.network.buffer_modes
        wanted = None if state.gram is None else state.gram.shape[0] - buffer
        values = state.current_eigenvalues(wanted)
        if self.compiled.settings.want == "smallest-singular":  # Ritz values of A^*A: s^2
            return [math.sqrt(max(v, 0.0)) for v in values]
        return values



# SpIN's raw functions span the eigenspace but are not eigenfunctions (their residuals are
# not the Ritz functions'); Hutchinson's Laplacian squared is biased; the weak form has no
# H~h to square.
REFINE_METHODS = ("neuralsvd-sequential", "neuralsvd-joint", "neuralef")
REFINE_DERIVATIVES = ("auto", "forward-laplacian", "autograd")


def refines(s: Settings) -> bool:
    """Whether the residual term can refine this run's functions (an eigenproblem's lowest
    states, a method whose functions are eigenfunctions, exact derivatives)."""
    return (
        s.want == "lowest" and s.method in REFINE_METHODS and s.derivatives in REFINE_DERIVATIVES
        and not s.weak_only
    )


def make_formulation(s: Settings) -> Formulation:
    # The smallest singular values train on the quadratic form of A^*A (its own terms).
    if s.want == "smallest-singular":
        formulation: Formulation = squared_form
    else:  # a matrix or jumping diffusion has the weak form only (``numerics/media.py``)
        name = "weak" if s.weak_only else s.derivatives
        formulation = get_formulation(name, s.hutchinson_probes)
    if s.compile:
        formulation = torch.compile(formulation, dynamic=False)
    return formulation


def _update_moments(state: TrainState, gram: torch.Tensor, energy: torch.Tensor) -> None:
    if state.gram is None or state.energy is None:
        state.gram, state.energy = gram.clone(), energy.clone()
    else:
        state.gram.mul_(MOMENT_DECAY).add_(gram, alpha=1 - MOMENT_DECAY)
        state.energy.mul_(MOMENT_DECAY).add_(energy, alpha=1 - MOMENT_DECAY)
