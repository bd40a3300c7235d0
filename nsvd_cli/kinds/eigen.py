"""The eigen kind: the lowest eigenpairs of a Schrödinger operator -kappa Laplacian + V,
on the whole space, a box or a region with Dirichlet walls."""

from __future__ import annotations

from nsvd_cli.files import GridReference
from nsvd_cli.kinds import differential
from nsvd_cli.kinds.base import FunctionSide, Run, SolverOptions
from nsvd_cli.kinds.differential_kind import DifferentialKind, shared_evaluation
from nsvd_cli.kinds.evaluation import (
    Evaluation,
    comparison_reference,
    side_distances,
)
from nsvd_cli.objectives.formulations import FORMULATION_NAMES
from nsvd_cli.objectives.methods import METHODS
from nsvd_cli.training.state import DTYPES


class EigenKind(DifferentialKind):
    name = "eigen"
    wanted = "lowest"
    walls: tuple[str | None, ...] = ("dirichlet", None)
    description = "a Schrödinger eigenproblem"
    symbol = "E"
    value_name = "eigenvalue"
    function_norm = "unit L2 norm over the domain"
    options = SolverOptions(
        methods=tuple(METHODS),
        derivatives=tuple(FORMULATION_NAMES),
        dtypes=tuple(DTYPES),
        compile=True,
        tol=True,
        refine=True,
    )

    def sides(self, run: Run) -> list[FunctionSide]:
        return differential.sides(run, ("eigen",))

    def evaluate(self, run: Run, samples: int, against: GridReference | None) -> Evaluation:
        reference = comparison_reference(run, against)
        distances = None
        if against is None:  # a grid reference holds no functions
            distances = side_distances(run, self.sides(run)[0], reference, samples)
        fields = shared_evaluation(run, "eigen", against, reference)
        return Evaluation(**fields, distances=distances)


EIGEN = EigenKind()
