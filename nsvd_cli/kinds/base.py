"""The Kind protocol: what every kind of operator provides, and how its options are checked.

A kind turns a validated problem into settings and a compiled operator, and declares which
solver options it can honour. Everything downstream asks the kind (``kinds.kind_of``), not
the problem's ``want`` string: a new kind of operator is one module plus one registry line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from nsvd_cli.spec import Problem
from nsvd_cli.training.settings import Settings

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


@dataclass(frozen=True)
class Refusal:
    """One setting a kind cannot honour: the Settings field, its value and why."""

    setting: str  # "method" | "derivatives" | "dtype" | "compile"
    value: str
    message: str


@dataclass(frozen=True)
class MemoryNeed:
    """What one stage of a run holds at its peak, and how to make it smaller."""

    what: str
    bytes: int
    advice: str


def element_bytes(settings: Settings) -> int:
    """Bytes per number in training (bf16-mixed keeps float32 parameters and moments)."""
    return 8 if settings.dtype == "float64" else 4


class Kind(Protocol):
    """One kind of operator: its name, what it computes, what it supports, how it is built."""

    name: str  # registry key, e.g. "eigen"
    wanted: str  # the problem's ``want`` this kind computes
    description: str  # for messages, e.g. "an integral operator"
    options: SolverOptions

    def derive_settings(self, problem: Problem) -> Settings: ...

    def build(self, problem: Problem, settings: Settings) -> Any: ...

    def memory_needs(self, problem: Problem, settings: Settings) -> list[MemoryNeed]:
        """The training step and the read-out, checked against the memory bound up front."""
        ...


def refusals(kind: Kind, settings: Settings) -> list[Refusal]:
    """Every setting in ``settings`` that ``kind`` cannot honour (empty: all apply)."""
    opts, found = kind.options, []
    checks = (
        ("method", settings.method, opts.methods, settings.method),
        ("derivatives", settings.derivatives, opts.derivatives, settings.derivatives),
        ("dtype", settings.dtype, opts.dtypes, PRECISION_NAMES.get(settings.dtype, settings.dtype)),
    )
    for field, value, allowed, shown in checks:
        if value not in allowed:
            names = [PRECISION_NAMES.get(v, v) for v in allowed] if field == "dtype" else allowed
            found.append(
                Refusal(field, shown, f"not supported for {kind.description} "
                        f"(kind {kind.name!r}; supported: {', '.join(names)})")
            )
    if settings.compile and not opts.compile:
        found.append(
            Refusal("compile", "true", f"not supported for {kind.description} "
                    f"(kind {kind.name!r}: its training step is not compiled)")
        )
    return found
