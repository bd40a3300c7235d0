"""The integral kind: the largest singular values and left/right singular functions of
(T g)(x) = integral k(x, y) g(y) dnu(y), with two networks (``integral_model``)."""

from __future__ import annotations

from nsvd_cli.kinds.base import MemoryNeed, SolverOptions, element_bytes
from nsvd_cli.kinds.integral_model import (
    EVAL_BLOCK,
    CompiledSingular,
    build_singular,
    derive_singular_settings,
)
from nsvd_cli.numerics.memory import kernel_step_bytes, training_step_bytes
from nsvd_cli.objectives.methods.svd import SVD_LOSSES
from nsvd_cli.spec import Problem
from nsvd_cli.training.settings import Settings


class IntegralKind:
    name = "integral"
    wanted = "largest-singular"
    description = "an integral operator"
    options = SolverOptions(
        methods=tuple(SVD_LOSSES),
        derivatives=("auto",),  # a kernel needs no derivatives
        # bf16-mixed autocasts the differential formulations only; the kernel moments run
        # in the parameters' precision, so it would be recorded without being used.
        dtypes=("float32", "tf32", "float64"),
        compile=False,
    )

    def derive_settings(self, problem: Problem) -> Settings:
        return derive_singular_settings(problem)

    def build(self, problem: Problem, settings: Settings) -> CompiledSingular:
        return build_singular(problem, settings)

    def memory_needs(self, problem: Problem, settings: Settings) -> list[MemoryNeed]:
        s = settings
        dims = (len(problem.coordinates), len(problem.input_coordinates))
        element = element_bytes(s)
        networks = sum(
            training_step_bytes(s.batch_size, d, problem.modes, s.hidden, s.depth, element)
            for d in dims
        )
        step = kernel_step_bytes(s.batch_size, dims, element) + networks
        # The read-out walks blocks of EVAL_BLOCK points per side, one block pair at a time.
        readout = kernel_step_bytes(EVAL_BLOCK, dims, 8) + 2 * s.eval_samples * (
            max(dims) + 2 * problem.modes
        ) * 8
        return [
            MemoryNeed(f"the training step (solver.batch_size = {s.batch_size}; the kernel on "
                       "every pair of points)", step, "lower solver.batch_size"),
            MemoryNeed(f"the read-out (solver.eval_samples = {s.eval_samples})", readout,
                       "lower solver.eval_samples"),
        ]


INTEGRAL = IntegralKind()
