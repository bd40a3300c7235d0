"""The integral kind: the largest singular values and left/right singular functions of
(T g)(x) = integral k(x, y) g(y) dnu(y), with two networks (built in ``integral_model``).
Mode order is the operator's: the largest singular value first."""

from __future__ import annotations

import time

import numpy as np
import torch

from nsvd_cli.expr import compile_numpy
from nsvd_cli.files import GridReference, Results, SingularArrays
from nsvd_cli.kinds.base import (
    EVAL_SEED_OFFSET,
    FunctionSide,
    MemoryNeed,
    Run,
    SolverOptions,
    element_bytes,
)
from nsvd_cli.kinds.evaluation import (
    Distances,
    Evaluation,
    against_fields,
    comparison_reference,
    interval_fields,
    side_distances,
)
from nsvd_cli.kinds.integral_model import (
    EVAL_BLOCK,
    CompiledSingular,
    SingularObjective,
    SingularPair,
    build_singular,
    derive_singular_settings,
    next_singular_bound,
    singular_readout,
)
from nsvd_cli.kinds.records import build_results, interval_arrays, reference_record
from nsvd_cli.numerics.memory import kernel_step_bytes, training_step_bytes
from nsvd_cli.objectives.intervals import Z_VALUE, BlockResiduals, intervals_from
from nsvd_cli.objectives.methods.svd import SVD_LOSSES
from nsvd_cli.objectives.readout import Ritz, orthogonality, unit_coefficients
from nsvd_cli.references import nystrom
from nsvd_cli.spec import BoxDomain, GaussianDomain, Problem
from nsvd_cli.training.distributed import Context
from nsvd_cli.training.guard import check_readout
from nsvd_cli.training.loop import Monitor, Objective
from nsvd_cli.training.settings import Settings
from nsvd_cli.training.state import TrainState

DEFAULT_QUADRATURE = {1: 2048, 2: 48, 3: 12}  # nodes per axis of the finest rule


def singular_functions(run: Run, side: str, points: torch.Tensor) -> torch.Tensor:
    """The learned left (u_l, at x) or right (v_l, at y) singular functions, unit norm in
    L2 of their side's measure, in mode order."""
    sv = run.results.singular
    assert sv is not None and isinstance(run.network, SingularPair)
    if side == "left":
        net, rot, gram = run.network.left, run.results.rotation, run.results.gram
    else:
        assert sv.right_rotation is not None and sv.right_gram is not None
        net, rot, gram = run.network.right, sv.right_rotation, sv.right_gram
    # The Gram matrix holds L2(measure) products: unit norm in that norm.
    with torch.no_grad():
        return net(points) @ unit_coefficients(rot, gram)


def _quadrature_measure(
    domain: BoxDomain | GaussianDomain, names: list[str]
) -> nystrom.QuadratureMeasure:
    if isinstance(domain, GaussianDomain):
        return nystrom.QuadratureMeasure(len(names), gaussian_scale=float(domain.gaussian.scale))
    lo = tuple(float(domain.box[c][0]) for c in names)
    hi = tuple(float(domain.box[c][1]) for c in names)
    return nystrom.QuadratureMeasure(len(names), lo, hi)


def quadrature_reference(problem: Problem, points: int | None, extra: int) -> GridReference:
    """The Nystrom reference of an integral operator: ``modes + extra`` largest singular
    values (descending) with their estimated errors."""
    dim = max(len(problem.coordinates), len(problem.input_coordinates))
    if dim > nystrom.MAX_DIM:
        raise ValueError(
            f"{dim} coordinates: quadrature references are limited to d <= {nystrom.MAX_DIM}"
        )
    domain, input_domain = problem.domain, problem.input_domain()
    assert isinstance(domain, BoxDomain | GaussianDomain) and input_domain is not None
    kernel_expr = problem.kernel_expr()
    assert kernel_expr is not None
    names = [*problem.coordinates, *problem.input_coordinates]
    kernel = compile_numpy(kernel_expr, names, problem.parameter_values())
    left = _quadrature_measure(domain, list(problem.coordinates))
    right = _quadrature_measure(input_domain, problem.input_coordinates)
    n = points or DEFAULT_QUADRATURE[dim]
    started = time.perf_counter()
    spectrum = nystrom.solve(kernel, left, right, problem.modes + extra, n)
    return reference_record(
        problem,
        spectrum,
        "Nystrom: Gauss-Legendre (box) / Gauss-Hermite (Gaussian) rules, dense SVD",
        "largest-singular",
        started,
    )


class IntegralKind:
    name = "integral"
    wanted = "largest-singular"
    walls: tuple[str | None, ...] = (None,)
    description = "an integral operator"
    symbol = "s"
    value_name = "singular value"
    function_norm = "unit L2 norm in each side's measure"
    options = SolverOptions(
        methods=tuple(SVD_LOSSES),
        derivatives=("auto",),  # a kernel needs no derivatives
        # bf16-mixed autocasts the differential formulations only; the kernel moments run
        # in the parameters' precision, so it would be recorded without being used.
        dtypes=("float32", "tf32", "float64"),
        compile=False,
    )

    def check(self, problem: Problem) -> None:
        return None  # a kernel's domains are checked with the file

    def derive_settings(self, problem: Problem) -> Settings:
        return derive_singular_settings(problem)

    def build(self, problem: Problem, settings: Settings) -> CompiledSingular:
        return build_singular(problem, settings)

    def memory_needs(self, problem: Problem, settings: Settings) -> list[MemoryNeed]:
        s = settings
        dims = (len(problem.coordinates), len(problem.input_coordinates))
        element = element_bytes(s)
        networks = sum(
            training_step_bytes(
                s.optimiser.batch_size, d, problem.modes, s.network.hidden, s.network.depth, element
            )
            for d in dims
        )
        step = kernel_step_bytes(s.optimiser.batch_size, dims, element) + networks
        # The read-out walks blocks of EVAL_BLOCK points per side, one block pair at a time.
        readout = kernel_step_bytes(EVAL_BLOCK, dims, 8) + 2 * s.readout.eval_samples * (
            max(dims) + 2 * problem.modes
        ) * 8
        return [
            MemoryNeed(
                f"the training step (solver.batch_size = {s.optimiser.batch_size}; the kernel on "
                "every pair of points)", step, "lower solver.batch_size"),
            MemoryNeed(f"the read-out (solver.eval_samples = {s.readout.eval_samples})", readout,
                       "lower solver.eval_samples"),
        ]

    def objective(
        self, compiled: CompiledSingular, device: torch.device, context: Context
    ) -> Objective:
        return SingularObjective(compiled, device, context)

    def monitor(self, compiled: CompiledSingular) -> Monitor:
        raise ValueError(
            "singular values of integral operators get their intervals from the final "
            "read-out only; they are not checked during training"
        )

    def record(
        self, compiled: CompiledSingular, state: TrainState, device: torch.device, complete: bool
    ) -> Results:
        settings = compiled.settings
        assert isinstance(state.network, SingularPair)
        blocks = max(2, settings.readout.eval_samples // EVAL_BLOCK)
        ro = singular_readout(compiled, state.network, settings.seed + EVAL_SEED_OFFSET, blocks)
        if complete:
            gram = ro.gram_left if ro.gram_left.trace() < ro.gram_right.trace() else ro.gram_right
            check_readout(ro.values, gram, "singular value")
        # The left side under the eigenproblem's names, in mode order (largest first); the
        # results writer keeps the file's version-1 fields ascending.
        left = Ritz(
            eigenvalues=ro.values,
            stderr=ro.stderr,
            rotation=ro.left_rotation,
            gram=ro.gram_left,
            quotients=ro.native,
        )
        results = build_results(compiled.problem, settings, state, left, device, complete)
        results.descending = True
        results.native = ro.native.cpu().numpy()
        results.singular = SingularArrays(
            values=ro.values.cpu().numpy(),
            stderr=ro.stderr.cpu().numpy(),
            right_rotation=ro.right_rotation.cpu().numpy(),
            right_gram=ro.gram_right.cpu().numpy(),
            cross=ro.cross.cpu().numpy(),
        )
        results.attrs["kind"] = "singular"
        # The largest singular values are the lowest eigenvalues of -J (Jordan-Wielandt).
        # What the Hilbert-Schmidt norm leaves above the learned values bounds the next
        # singular value: -J's spectrum above the wanted modes starts no lower than -bound.
        ceiling = -next_singular_bound(ro, Z_VALUE)
        intervals = intervals_from(
            BlockResiduals(ro.residual_grams), -ro.values, ro.stderr, ceiling=ceiling
        )
        results.intervals = interval_arrays(intervals, negated=True)
        return results

    def load(self, problem: Problem, settings: Settings, results: Results) -> Run:
        return Run.rebuilt(problem, build_singular(problem, settings), results, self)

    def sides(self, run: Run) -> list[FunctionSide]:
        """Left functions on x, right ones on y; each side its own measure and window."""
        compiled: CompiledSingular = run.compiled
        found = []
        for offset, (name, geometry, measure) in enumerate(
            (
                ("left", compiled.left, compiled.operator.left),
                ("right", compiled.right, compiled.operator.right),
            )
        ):

            def funcs(x: torch.Tensor, side: str = name) -> torch.Tensor:
                return singular_functions(run, side, x)

            def draw(n: int, gen: torch.Generator, m=measure) -> tuple[torch.Tensor, np.ndarray]:
                x = m.sampler.sample(n, gen)
                # Sample-frame values: times the square root of the importance weight.
                return x, m.weights(x).sqrt().numpy()

            found.append(
                FunctionSide(
                    name,
                    tuple(geometry.coordinates),
                    tuple(geometry.window_lo),
                    tuple(geometry.window_hi),
                    funcs,
                    draw,
                    eval_seed_offset=2 * EVAL_SEED_OFFSET + offset,
                )
            )
        return found

    def evaluate(self, run: Run, samples: int, against: GridReference | None) -> Evaluation:
        sv = run.results.singular
        assert sv is not None
        reference = comparison_reference(run, against)
        gram_left = torch.from_numpy(run.results.gram)
        gram_right = torch.from_numpy(sv.right_gram)
        found: dict[str, Distances | None] = {"left": None, "right": None}
        if against is None:  # a grid reference holds no functions
            found = {s.name: side_distances(run, s, reference, samples) for s in self.sides(run)}
        left, right = found["left"], found["right"]
        both = left is not None and right is not None
        return Evaluation(
            problem=run.problem.name,
            kind="singular",
            method=str(run.results.settings.get("method", "neuralsvd-sequential")),
            values=np.asarray(sv.values, dtype=np.float64),
            stderr=np.asarray(sv.stderr),
            reference=reference,
            orthogonality=max(orthogonality(gram_left), orthogonality(gram_right)),
            steps=int(run.results.attrs.get("steps", 0)),
            train_seconds=float(run.results.attrs.get("train_seconds", float("nan"))),
            native=np.asarray(run.results.native, dtype=np.float64),
            distances=Distances.averaged(left, right) if left and right else None,
            side_distances={
                "left": float(np.mean(left.per_level)) if both and left else None,
                "right": float(np.mean(right.per_level)) if both and right else None,
            },
            side_orthogonality={
                "left": orthogonality(gram_left),
                "right": orthogonality(gram_right),
            },
            **against_fields(against, reference),
            **interval_fields(run),
        )

    def reference(
        self, problem: Problem, points: int | None, extra: int, method: str = "auto"
    ) -> GridReference:
        if method != "auto":
            raise ValueError(
                f"--method {method}: an integral operator's reference is by quadrature "
                "(Nystrom) only; leave --method out"
            )
        return quadrature_reference(problem, points, extra)


INTEGRAL = IntegralKind()
