"""The eigen kind: the lowest eigenpairs of a Schrödinger operator -kappa Laplacian + V,
on the whole space, a box or a region with Dirichlet walls."""

from __future__ import annotations

from nsvd_cli.kinds.base import MemoryNeed, SolverOptions
from nsvd_cli.kinds.schrodinger import CompiledProblem, build, derive_settings, memory_needs
from nsvd_cli.objectives.formulations import FORMULATION_NAMES
from nsvd_cli.objectives.methods import METHODS
from nsvd_cli.spec import Problem
from nsvd_cli.training.loop import DTYPES
from nsvd_cli.training.settings import Settings


class EigenKind:
    name = "eigen"
    wanted = "lowest"
    description = "a Schrödinger eigenproblem"
    options = SolverOptions(
        methods=tuple(METHODS),
        derivatives=tuple(FORMULATION_NAMES),
        dtypes=tuple(DTYPES),
        compile=True,
    )

    def derive_settings(self, problem: Problem) -> Settings:
        return derive_settings(problem)

    def build(self, problem: Problem, settings: Settings) -> CompiledProblem:
        return build(problem, settings)

    def memory_needs(self, problem: Problem, settings: Settings) -> list[MemoryNeed]:
        return memory_needs(problem, settings)


EIGEN = EigenKind()
