"""The drift kind: the smallest singular values of A = -kappa Laplacian + V + b . grad (a
convection-diffusion operator, not self-adjoint), trained on the quadratic form of A^*A.
One network learns the right singular functions v; the left ones are u = A v / s."""

from __future__ import annotations

import numpy as np

from nsvd_cli.files import GridReference
from nsvd_cli.kinds import differential
from nsvd_cli.kinds.base import FunctionSide, Run, SolverOptions
from nsvd_cli.kinds.differential_kind import DifferentialKind, shared_evaluation
from nsvd_cli.kinds.evaluation import (
    Distances,
    Evaluation,
    comparison_reference,
    side_distances,
)
from nsvd_cli.objectives.methods import METHODS
from nsvd_cli.training.state import DTYPES


class DriftKind(DifferentialKind):
    name = "drift"
    wanted = "smallest-singular"
    walls: tuple[str | None, ...] = ("dirichlet", None)
    description = "the smallest singular values of a differential operator"
    symbol = "s"
    value_name = "singular value"
    function_norm = "unit L2 norm over the domain"
    options = SolverOptions(
        methods=tuple(METHODS),
        # The quadratic form ||A v||^2 needs exact first and second derivatives of v: its
        # own formulation (objectives.formulations.squared_form), whatever is asked.
        derivatives=("auto",),
        dtypes=tuple(DTYPES),
        compile=True,
    )

    def sides(self, run: Run) -> list[FunctionSide]:
        return differential.sides(run, ("right", "left"))

    def evaluate(self, run: Run, samples: int, against: GridReference | None) -> Evaluation:
        reference = comparison_reference(run, against)
        found: dict[str, Distances | None] = {side.name: None for side in self.sides(run)}
        if against is None:  # a grid reference holds no functions
            found = {side.name: side_distances(run, side, reference, samples)
                     for side in self.sides(run)}
        fields = shared_evaluation(run, "smallest-singular", against, reference)
        right, left = float(fields.pop("orthogonality")), differential.left_orthogonality(
            run, samples
        )
        return Evaluation(
            **fields,
            orthogonality=max(right, left),
            side_orthogonality={"right": right, "left": left},
            distances=found["right"],  # the network's own functions v
            side_distances={
                name: None if d is None else float(np.mean(d.per_level))
                for name, d in found.items()
            },
        )


DRIFT = DriftKind()
