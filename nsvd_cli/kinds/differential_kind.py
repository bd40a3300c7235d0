"""The base of the two differential kinds (eigen, drift): the Kind members that do not
depend on whether eigenvalues or singular values are wanted."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch

from nsvd_cli.files import GridReference, Results
from nsvd_cli.kinds import differential
from nsvd_cli.kinds.base import Kind, MemoryNeed, Run
from nsvd_cli.kinds.evaluation import against_fields, interval_fields
from nsvd_cli.kinds.fem_reference import differential_reference
from nsvd_cli.kinds.schrodinger import CompiledProblem, build, derive_settings, memory_needs
from nsvd_cli.kinds.schrodinger_checks import check_region_bounds
from nsvd_cli.kinds.weak_readout import weak_readout
from nsvd_cli.objectives.batch import RULE_NAMES, planned_rule
from nsvd_cli.objectives.readout import normalized_gram, orthogonality
from nsvd_cli.spec import Problem
from nsvd_cli.spec.load import BoxDomain, RegionDomain, located_error
from nsvd_cli.training.distributed import Context
from nsvd_cli.training.eigen_objective import EigenObjective
from nsvd_cli.training.loop import Monitor, Objective
from nsvd_cli.training.settings import Settings
from nsvd_cli.training.state import TrainState


class DifferentialKind:
    """What the eigen and drift kinds share: one network on the same compiled operator, its
    objective, read-out record, reload and finite-difference reference. Subclasses name
    themselves, their options, their function families and their evaluation."""

    def check(self, problem: Problem) -> None:
        check_region_bounds(problem)
        # Refused where a rule reads out (derive_settings decides); the whole space always
        # samples, so a file there is not derived twice (check, then solve's prepare).
        if problem.solver.eval_samples and isinstance(problem.domain, (BoxDomain, RegionDomain)):
            self.derive_settings(problem)

    def derive_settings(self, problem: Problem) -> Settings:
        settings = derive_settings(problem)
        settings.readout.quadrature = readout_quadrature(problem, self.build(problem, settings))
        return settings

    def build(self, problem: Problem, settings: Settings) -> CompiledProblem:
        return build(problem, settings)

    def memory_needs(self, problem: Problem, settings: Settings) -> list[MemoryNeed]:
        return memory_needs(problem, settings)

    def objective(
        self, compiled: CompiledProblem, device: torch.device, context: Context
    ) -> Objective:
        return EigenObjective(compiled, device, context)

    def monitor(self, compiled: CompiledProblem) -> Monitor:
        return differential.interval_check(compiled)

    def record(
        self, compiled: CompiledProblem, state: TrainState, device: torch.device, complete: bool
    ) -> Results:
        # A matrix diffusion has no strong form here: the energy form reads it out.
        read = weak_readout if compiled.operator.medium_weak_only else None
        return differential.record(compiled, state, device, complete, read=read)

    def load(self, problem: Problem, settings: Settings, results: Results) -> Run:
        return differential.load(problem, settings, results, cast(Kind, self))

    def reference(
        self, problem: Problem, points: int | None, extra: int, method: str = "auto"
    ) -> GridReference:
        return differential_reference(problem, points, extra, method)


def readout_quadrature(problem: Problem, compiled: CompiledProblem) -> str:
    """The quadrature rule planned to read this problem out ("": it samples). The key
    ``solver.eval_samples`` sizes a sampled read-out only: beside a rule it would be
    recorded but never used, so it is refused, saying what reads out instead. (A region
    the mesher cannot resolve samples after all, with the default count: building its mesh
    to be sure would cost every ``check`` half a second.)"""
    plan = planned_rule(compiled)
    if plan and problem.solver.eval_samples:
        raise located_error(problem, ("solver", "eval_samples"), (
            f"does not apply: this problem is read out by a fixed quadrature rule "
            f"({RULE_NAMES[plan]}), not by sampling (docs/method.md, Read-out); leave the "
            "key out"))
    return plan


def shared_evaluation(
    run: Run, kind: str, against: GridReference | None, reference: np.ndarray
) -> dict[str, Any]:
    """The fields every differential kind's evaluation shares."""
    gram = torch.from_numpy(run.results.wanted_gram)
    native = run.results.native
    return {
        "problem": run.problem.name,
        "kind": kind,
        "method": str(run.results.settings.get("method", "neuralsvd-sequential")),
        "values": np.asarray(run.results.eigenvalues, dtype=np.float64),
        "stderr": np.asarray(run.results.stderr),
        "reference": reference,
        "orthogonality": orthogonality(gram),
        "steps": int(run.results.attrs.get("steps", 0)),
        "train_seconds": float(run.results.attrs.get("train_seconds", float("nan"))),
        "native": None if native is None else np.asarray(native, dtype=np.float64),
        "normalized_gram": normalized_gram(gram).numpy(),
        **against_fields(against, reference),
        **interval_fields(run),
        "tolerance": tolerance_fields(run),
    }


def tolerance_fields(run: Run) -> dict[str, Any] | None:
    """A run to a tolerance's verdict, for ``eval --json`` (None for any other run)."""
    attrs = run.results.attrs
    if "tol" not in attrs:
        return None
    return {
        "tol": float(attrs["tol"]),
        "tol_met": bool(attrs["tol_met"]),
        "tol_outcome": str(attrs["tol_outcome"]),
    }
