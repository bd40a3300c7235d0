"""Operator kinds behind one protocol (:class:`Kind`) and the ``KINDS`` registry.

Each kind is one module: :mod:`.eigen` (the lowest eigenpairs of -kappa Laplacian + V),
:mod:`.neumann` (the same with free walls, du/dn = 0),
:mod:`.drift` (the smallest singular values of that operator plus a drift b . grad) and
:mod:`.integral` (the largest singular values of an integral operator). A kind derives a
problem's settings, builds its operator and objective, reads the trained networks out,
reloads, evaluates and references a run, and declares the solver options it honours;
:func:`kind_of` is the one place that reads the problem's ``want``. To add a kind, write a
module with a class that satisfies :class:`Kind` and add its instance to ``KINDS``
(docs/architecture.md).
"""

from nsvd_cli.kinds.base import (
    EVAL_SEED_OFFSET,
    PRECISION_NAMES,
    FunctionSide,
    Kind,
    MemoryNeed,
    Refusal,
    Run,
    SolverOptions,
    refusals,
)
from nsvd_cli.kinds.drift import DRIFT
from nsvd_cli.kinds.eigen import EIGEN
from nsvd_cli.kinds.evaluation import Distances, Evaluation, NumpyFunction, reference_callables
from nsvd_cli.kinds.integral import INTEGRAL
from nsvd_cli.kinds.neumann import NEUMANN
from nsvd_cli.spec import Problem

KINDS: dict[str, Kind] = {kind.name: kind for kind in (EIGEN, NEUMANN, DRIFT, INTEGRAL)}


def kind_of(problem: Problem) -> Kind:
    """The kind that computes what ``problem`` wants."""
    for kind in KINDS.values():
        if kind.wanted == problem.wanted and problem.walls() in kind.walls:
            return kind
    walls = problem.walls()
    raise ValueError(f"no kind of operator computes {problem.wanted!r} with {walls} walls")


__all__ = [
    "EVAL_SEED_OFFSET",
    "KINDS",
    "PRECISION_NAMES",
    "Distances",
    "Evaluation",
    "FunctionSide",
    "Kind",
    "MemoryNeed",
    "Refusal",
    "Run",
    "SolverOptions",
    "kind_of",
    "NumpyFunction",
    "reference_callables",
    "refusals",
]
