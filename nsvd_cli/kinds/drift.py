"""The drift kind: the smallest singular values of A = -kappa Laplacian + V + b . grad (a
convection-diffusion operator, not self-adjoint), trained on the quadratic form of A^*A."""

from __future__ import annotations

from nsvd_cli.kinds.base import MemoryNeed, SolverOptions
from nsvd_cli.kinds.schrodinger import CompiledProblem, build, derive_settings, memory_needs
from nsvd_cli.objectives.methods import METHODS
from nsvd_cli.spec import Problem
from nsvd_cli.training.loop import DTYPES
from nsvd_cli.training.settings import Settings


class DriftKind:
    name = "drift"
    wanted = "smallest-singular"
    description = "the smallest singular values of a differential operator"
    options = SolverOptions(
        methods=tuple(METHODS),
        # The quadratic form ||A v||^2 needs exact first and second derivatives of v: its
        # own formulation (objectives.formulations.squared_form), whatever is asked.
        derivatives=("auto",),
        dtypes=tuple(DTYPES),
        compile=True,
    )

    def derive_settings(self, problem: Problem) -> Settings:
        return derive_settings(problem)

    def build(self, problem: Problem, settings: Settings) -> CompiledProblem:
        return build(problem, settings)

    def memory_needs(self, problem: Problem, settings: Settings) -> list[MemoryNeed]:
        return memory_needs(problem, settings)


DRIFT = DriftKind()
