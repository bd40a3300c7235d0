"""The Kind protocol: what every kind of operator provides, and the types it trades in.

A kind turns a validated problem into settings, a compiled operator, a training objective
and a results record; it reloads a finished run, names the families of learned functions
(eigenfunctions, or left and right singular functions), evaluates a run against its
reference and computes a deterministic reference. It declares which solver options it
honours. Nothing downstream reads the problem's ``want``: it asks the run's kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from nsvd_cli.files import GridReference, Results, network_state
from nsvd_cli.spec import Problem
from nsvd_cli.training.distributed import Context
from nsvd_cli.training.eigen_objective import REFINE_DERIVATIVES, REFINE_METHODS
from nsvd_cli.training.loop import Monitor, Objective
from nsvd_cli.training.settings import Settings
from nsvd_cli.training.state import TrainState

if TYPE_CHECKING:  # evaluation.py builds on this module
    from nsvd_cli.kinds.evaluation import Evaluation

# Read-out and evaluation draw their points from streams offset from the training seed, so
# that no point of the training stream is reused.
EVAL_SEED_OFFSET = 1_000_003
# solver.dtype values, and the --precision names users type for them.
PRECISION_NAMES = {"float32": "fp32", "tf32": "tf32", "bf16-mixed": "bf16-mixed", "float64": "fp64"}


@dataclass(frozen=True)
class SolverOptions:
    """The values of each solver option a kind can honour. Anything else is refused before
    any work, never recorded in /settings as if it had been used."""

    methods: tuple[str, ...]
    derivatives: tuple[str, ...]
    dtypes: tuple[str, ...]
    compile: bool
    tol: bool = False  # trains to a tolerance on its error intervals (``monitor``)
    refine: bool = False  # can add the residual term (``solver.refine_steps``, strong form)


@dataclass(frozen=True)
class Refusal:
    """One setting a kind cannot honour: the Settings field, its value and why."""

    setting: str  # "method" | "derivatives" | "dtype" | "compile" | "tol" | "refine_steps"
    value: str
    message: str


@dataclass(frozen=True)
class MemoryNeed:
    """What one stage of a run holds at its peak, and how to make it smaller."""

    what: str
    bytes: int
    advice: str


@dataclass(frozen=True)
class FunctionSide:
    """One family of learned functions of a run: eigenfunctions, or left / right singular
    functions; how to evaluate them and how to sample the space they live in."""

    name: str  # "eigen" | "left" | "right"
    coordinates: tuple[str, ...]
    lo: tuple[float, ...]  # the export window
    hi: tuple[float, ...]
    functions: Callable[[torch.Tensor], torch.Tensor]  # (B, d) -> (B, modes), unit L2 norm
    # n points and the factor that turns function values into sample-frame values (whose
    # plain means are the L2 inner products).
    sample: Callable[[int, torch.Generator], tuple[torch.Tensor, np.ndarray]]
    inside: Callable[[torch.Tensor], torch.Tensor] | None = None  # region indicator > 0
    eval_seed_offset: int = 2 * EVAL_SEED_OFFSET  # the stream ``nsvd eval`` samples
    jets: bool = False  # evaluating the functions needs derivatives (A v / s)


@dataclass
class Run:
    """A finished run reloaded from its results file, with the kind that made it."""

    problem: Problem
    compiled: Any  # the kind's compiled operator
    network: torch.nn.Module  # float64, CPU
    results: Results
    kind: Kind

    @property
    def settings(self) -> Settings:
        settings: Settings = self.compiled.settings
        return settings

    @staticmethod
    def rebuilt(problem: Problem, compiled: Any, results: Results, kind: Kind) -> Run:
        """The run with the compiled operator's network in float64, holding the stored
        weights (every kind reloads its networks so)."""
        network = compiled.make_network().double()
        network.load_state_dict(network_state(results.network))
        network.eval()
        return Run(problem, compiled, network, results, kind)


class Kind(Protocol):
    """One kind of operator, from settings to evaluation. See docs/architecture.md."""

    name: str  # registry key, e.g. "eigen"
    wanted: str  # the problem's ``want`` this kind computes
    walls: tuple[str | None, ...]  # the wall conditions it trains (None: no walls)
    description: str  # for messages, e.g. "an integral operator"
    symbol: str  # "E" for eigenvalues, "s" for singular values
    value_name: str  # "eigenvalue" | "singular value"
    function_norm: str  # how exported functions are normalised
    options: SolverOptions

    def check(self, problem: Problem) -> None:
        """What only this kind can find wrong in a valid file, cheaply (``nsvd check``);
        raises a located ProblemError."""
        ...

    def derive_settings(self, problem: Problem) -> Settings:
        """Every default the problem file left open."""
        ...

    def build(self, problem: Problem, settings: Settings) -> Any:
        """The compiled operator (sampler, fields, networks); cheap and deterministic."""
        ...

    def memory_needs(self, problem: Problem, settings: Settings) -> list[MemoryNeed]:
        """The training step and the read-out, checked against the memory bound up front."""
        ...

    def objective(self, compiled: Any, device: torch.device, context: Context) -> Objective:
        """The training loss of one batch."""
        ...

    def monitor(self, compiled: Any) -> Monitor:
        """A run to a tolerance's interval check (only where ``options.tol``); raises
        ValueError, saying why, where this problem can have no intervals."""
        ...

    def record(
        self, compiled: Any, state: TrainState, device: torch.device, complete: bool
    ) -> Results:
        """Read out the trained networks on fresh points (float64) into a results record."""
        ...

    def load(self, problem: Problem, settings: Settings, results: Results) -> Run:
        """A finished run, its networks rebuilt from the results file."""
        ...

    def sides(self, run: Run) -> list[FunctionSide]:
        """The families of learned functions: what eval compares, plot draws, export writes."""
        ...

    def evaluate(self, run: Run, samples: int, against: GridReference | None) -> Evaluation:
        """The comparison with the closed form, or with ``against``."""
        ...

    def reference(
        self, problem: Problem, points: int | None, extra: int, method: str = "auto"
    ) -> GridReference:
        """A deterministic reference spectrum (d <= 3) with its error estimate, by
        ``method`` (``auto``: the kind's choice; ``fem``, ``grid``)."""
        ...


def element_bytes(settings: Settings) -> int:
    """Bytes per number in training (bf16-mixed keeps float32 parameters and moments)."""
    return 8 if settings.dtype == "float64" else 4


def refusals(kind: Kind, settings: Settings) -> list[Refusal]:
    """Every setting in ``settings`` that ``kind`` cannot honour (empty: all apply)."""
    opts, found = kind.options, []
    checks = (
        ("method", settings.method, opts.methods),
        ("derivatives", settings.derivatives, opts.derivatives),
        ("dtype", settings.dtype, opts.dtypes),
    )
    for field, value, allowed in checks:
        if value not in allowed:
            names = [PRECISION_NAMES.get(v, v) for v in allowed] if field == "dtype" else allowed
            shown = PRECISION_NAMES.get(value, value) if field == "dtype" else value
            why = f"kind {kind.name!r}; supported: {', '.join(names)}"
            found.append(Refusal(field, shown, f"not supported for {kind.description} ({why})"))
    if settings.compile and not opts.compile:
        why = f"kind {kind.name!r}: its training step is not compiled"
        found.append(Refusal("compile", "on", f"not supported for {kind.description} ({why})"))
    found.extend(_medium_refusals(settings))
    tol = settings.optimiser.tol
    if tol is not None and not opts.tol:
        why = f"kind {kind.name!r}: no interval checks during training"
        found.append(Refusal("tol", f"{tol:g}", f"not supported for {kind.description} ({why})"))
    refine = settings.optimiser.refine_steps
    why_not = refine_refusal(kind, settings) if refine else None
    if why_not is not None:
        found.append(Refusal("refine_steps", str(refine), why_not))
    return found


_WEAK_ONLY_NAMES = {
    "matrix": "a matrix diffusion",
    "jump": "a diffusion that may jump (Piecewise, Heaviside, sign, floor or ceiling)",
}


def _medium_refusals(settings: Settings) -> list[Refusal]:
    """A matrix diffusion, or one that may jump, is trained in the weak form only; a scalar
    field's strong form needs exact gradients (not Hutchinson's); there is no residual
    without the strong form, so a weak-only medium refuses a tolerance and refinement."""
    found = []
    if settings.weak_only:
        what = _WEAK_ONLY_NAMES[settings.diffusion]
        why = f"{what} is trained in the weak form (derivatives: weak or auto)"
        if settings.derivatives not in ("auto", "weak"):
            found.append(Refusal("derivatives", settings.derivatives, why))
        if settings.optimiser.tol is not None:
            found.append(Refusal("tol", f"{settings.optimiser.tol:g}", "no error intervals "
                                 f"with {what} (they need the strong form H u)"))
    if settings.diffusion == "scalar" and settings.derivatives == "hutchinson":
        found.append(Refusal("derivatives", "hutchinson", "a varying diffusion's strong form "
                             "needs exact gradients (derivatives: forward-laplacian or weak)"))
    return found


def refine_refusal(kind: Kind, settings: Settings) -> str | None:
    """Why ``solver.refine_steps`` cannot apply to this run, or None."""
    if not kind.options.refine:
        return (
            f"not supported for {kind.description} (kind {kind.name!r}: the residual term "
            "squares H psi from the strong form, which this kind does not train with)"
        )
    if settings.optimiser.tol is not None:
        return "a run to a tolerance refines on its own, after its first cycle; leave it out"
    if settings.method not in REFINE_METHODS:
        return (
            f"not with method {settings.method!r}: its raw functions are not eigenfunctions "
            f"(supported: {', '.join(REFINE_METHODS)})"
        )
    if settings.weak_only:
        what = _WEAK_ONLY_NAMES[settings.diffusion]
        return f"not with {what}: it is trained in the weak form only"
    if settings.derivatives not in REFINE_DERIVATIVES:
        return (
            f"not with derivatives {settings.derivatives!r}: the residual needs the exact "
            f"Laplacian (supported: {', '.join(REFINE_DERIVATIVES)})"
        )
    if settings.optimiser.refine_steps >= settings.optimiser.steps:
        return (
            f"{settings.optimiser.refine_steps} is not below the run's "
            f"{settings.optimiser.steps} steps: refining polishes a trained span"
        )
    return None
