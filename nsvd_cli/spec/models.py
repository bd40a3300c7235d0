"""The pydantic models of a problem file, and the accessors that turn its text into SymPy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import sympy as sp
from pydantic import Field, PlainValidator, PrivateAttr, StrictBool, ValidationInfo, model_validator

from nsvd_cli.spec.domains import (
    DOMAIN_FORMS,
    DOMAIN_TAGS,
    INPUT_DOMAIN_FORMS,
    BoxDomain,
    Domain,
    GaussianDomain,
    GaussianScale,
    InputDomain,
    RegionDomain,
    SpecModel,
)
from nsvd_cli.spec.fields import (
    MAX_COORDINATES,
    Diffusion,
    Expression,
    Fraction,
    IntegerInterval,
    Number,
    Parameter,
    PositiveInt,
    PositiveNumber,
    ProblemName,
    Text,
    integer_type,
)
from nsvd_cli.spec.langevin import ground_state_potential, symmetrised
from nsvd_cli.spec.medium import kinetic_factor
from nsvd_cli.spec.scope import MAX_PARAMETERS, ExpressionScope
from nsvd_cli.spec.semantics import semantic_issues
from nsvd_cli.spec.yaml_reader import dotted

# SpIN's weight of the newest batch; the same as objectives.methods.base.DEFAULT_MOVING_AVERAGE
# (a test checks), written here because the problem-file layer sits below the objectives.
SPIN_DECAY_DEFAULT = 0.01
MAX_MODES = 512
_Model = SpecModel

__all__ = [
    "DOMAIN_FORMS",
    "DOMAIN_TAGS",
    "INPUT_DOMAIN_FORMS",
    "BoxDomain",
    "Domain",
    "GaussianDomain",
    "GaussianScale",
    "InputDomain",
    "Langevin",
    "Network",
    "Operator",
    "Problem",
    "Reference",
    "RegionDomain",
    "Solver",
]


class Langevin(_Model):
    """The overdamped Langevin generator L = temperature * Laplacian - grad(U) . grad."""

    potential: Expression
    temperature: Expression = 1.0


class Operator(_Model):
    """H = -kinetic * Laplacian + potential, or the integral operator
    (T g)(x) = integral kernel(x, y) g(y) dnu(y) when ``kernel`` is given."""

    kinetic: Expression = 0.5
    # -div(A grad u): a scalar or a symmetric d x d matrix; replaces kinetic (version 2).
    diffusion: Diffusion | None = None
    potential: Expression = 0
    weight: Expression | None = None  # H u = lambda * weight * u (version 2)
    langevin: Langevin | None = None  # instead of the keys above (version 2)
    # b . grad u added to H (convection-diffusion); one expression per coordinate.
    drift: Annotated[list[Expression], Field(min_length=1, max_length=MAX_COORDINATES)] | None = (
        None
    )
    kernel: Expression | None = None
    input_coordinates: (
        Annotated[list[Text], Field(min_length=1, max_length=MAX_COORDINATES)] | None
    ) = None
    input_domain: InputDomain | None = None


class Solver(_Model):
    """Training settings; ``None`` means "derive from the problem"."""

    method: Literal["neuralsvd-sequential", "neuralsvd-joint", "spin", "neuralef"] = (
        "neuralsvd-sequential"
    )
    steps: PositiveInt | None = None
    batch_size: Annotated[int, PlainValidator(integer_type(ge=4, even=True))] | None = None
    learning_rate: PositiveNumber | None = None
    seed: Annotated[int, PlainValidator(integer_type(ge=0))] = 0
    shift: Number | None = None
    scale: PositiveNumber | None = None
    sampling_scales: Annotated[list[PositiveNumber], Field(min_length=1)] | None = None
    hidden: PositiveInt | None = None
    depth: PositiveInt | None = None
    dtype: Literal["float32", "float64", "tf32", "bf16-mixed"] | None = None
    eval_samples: PositiveInt | None = None
    checkpoint_every: PositiveInt | None = None
    derivatives: Literal["auto", "forward-laplacian", "hutchinson", "weak", "autograd"] = "auto"
    hutchinson_probes: PositiveInt = 8
    compile: StrictBool = False
    spin_decay: Fraction = SPIN_DECAY_DEFAULT
    tol: PositiveNumber | None = None  # train to this relative interval half-width
    refine_steps: PositiveInt | None = None  # the last steps add the squared residuals


class Network(_Model):
    """The architecture; ``None`` means "derive from the problem"."""

    kind: Literal["shared", "disjoint"] = "shared"
    hidden: PositiveInt | None = None
    depth: PositiveInt | None = None
    activation: Literal["silu", "tanh", "softplus"] = "silu"
    radial_feature: StrictBool | None = None
    fourier_features: Annotated[int, PlainValidator(integer_type(ge=0, le=4096))] = 0
    fourier_scale: PositiveNumber = 1.0
    envelope: StrictBool = False
    cusp: StrictBool | None = None  # None: where V = -Z/r at the origin


class Reference(_Model):
    """Closed-form reference: a list of eigenvalues, or a formula over quantum numbers."""

    eigenvalues: Annotated[list[Number], Field(min_length=1)] | None = None
    eigenvalue: Expression | None = None
    quantum_numbers: dict[str, IntegerInterval] | None = None
    where: Expression | None = None
    eigenfunction: Expression | None = None
    # Integral operators: singular values (largest first) and left/right singular functions.
    singular_values: Annotated[list[Number], Field(min_length=1)] | None = None
    singular_value: Expression | None = None
    left_function: Expression | None = None
    right_function: Expression | None = None

    @property
    def is_list(self) -> bool:
        return self.eigenvalues is not None or self.singular_values is not None

    @property
    def values(self) -> list[float] | None:
        return self.singular_values if self.singular_values is not None else self.eigenvalues


class Problem(_Model):
    """A validated problem file.  Expressions stay as text; the accessors parse them."""

    name: ProblemName
    description: Text | None = None
    coordinates: Annotated[list[Text], Field(min_length=1, max_length=MAX_COORDINATES)]
    parameters: Annotated[dict[str, Parameter], Field(max_length=MAX_PARAMETERS)] = Field(
        default_factory=dict
    )
    operator: Operator = Field(default_factory=Operator)
    domain: Domain = "whole-space"
    modes: Annotated[int, PlainValidator(integer_type(ge=1, le=MAX_MODES))]
    # None: "lowest" eigenvalues for H, "smallest-singular" values with a drift,
    # "largest-singular" values for an integral operator.
    want: Literal["lowest", "smallest-singular", "largest-singular"] | None = None
    solver: Solver = Field(default_factory=Solver)
    network: Network = Field(default_factory=Network)
    reference: Reference | None = None

    _source_text: str = PrivateAttr(default="")
    _source_path: str = PrivateAttr(default="<string>")
    _cache: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check_semantics(self, info: ValidationInfo) -> Problem:
        # parse_problem runs the semantic pass itself (to report it with line numbers and
        # together with structural errors); direct construction gets it here.
        if info.context and info.context.get("skip_semantic"):
            return self
        issues = semantic_issues(self.model_dump(exclude_unset=True))
        if issues:
            raise ValueError("; ".join(f"{dotted(k)}: {m}" if k else m for k, m in issues))
        return self

    # -- where it came from ----------------------------------------------------------------

    @property
    def source_text(self) -> str:
        """The exact text of the problem file (empty when built in Python)."""
        return self._source_text

    @property
    def source_path(self) -> str:
        return self._source_path

    # -- accessors for the math side --------------------------------------------------------

    @property
    def dim(self) -> int:
        return len(self.coordinates)

    def symbols(self) -> list[sp.Symbol]:
        """The coordinates as SymPy symbols, in order (the ones expressions use)."""
        return [sp.Symbol(c, real=True) for c in self.coordinates]

    def parameter_values(self) -> dict[str, float]:
        return dict(self.parameters)

    def quantum_number_names(self) -> list[str]:
        ref = self.reference
        return list(ref.quantum_numbers) if ref and ref.quantum_numbers else []

    @property
    def is_singular(self) -> bool:
        """An integral operator: the problem asks for singular values, not eigenvalues."""
        return self.operator.kernel is not None

    @property
    def wanted(self) -> str:
        if self.want is not None:
            return self.want
        if self.is_singular:
            return "largest-singular"
        return "smallest-singular" if self.operator.drift else "lowest"

    @property
    def singular_values_wanted(self) -> bool:
        """Whether the problem asks for singular values (of a kernel, or of A = H + b.grad)."""
        return self.wanted != "lowest"

    @property
    def descending(self) -> bool:
        """Mode order: the largest values first (integral operators), else the smallest."""
        return self.wanted == "largest-singular"

    def drift_exprs(self) -> list[sp.Expr] | None:
        drift = self.operator.drift
        if not drift:
            return None
        return self._cached("drift", lambda: [self._scope().over_space(b) for b in drift])

    @property
    def input_coordinates(self) -> list[str]:
        """The integral operator's input side (empty for a differential operator)."""
        return list(self.operator.input_coordinates or [])

    def input_domain(self) -> BoxDomain | GaussianDomain | None:
        """The input side's measure: ``operator.input_domain``, else ``domain`` with the
        coordinates renamed in order."""
        if not self.is_singular:
            return None
        if self.operator.input_domain is not None:
            return self.operator.input_domain
        if isinstance(self.domain, BoxDomain):
            box = {y: self.domain.box[x] for x, y in zip(self.coordinates, self.input_coordinates)}
            return BoxDomain(box=box)
        assert isinstance(self.domain, GaussianDomain)
        return self.domain

    def _scope(self) -> ExpressionScope:
        return ExpressionScope(
            self.coordinates,
            list(self.parameters),
            self.parameters,
            self.quantum_number_names(),
            # A differential operator's right functions live on the same coordinates.
            self.input_coordinates if self.is_singular else self.coordinates,
        )

    def _cached(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def potential_expr(self) -> sp.Expr:
        """The potential over coordinates and parameter symbols (bind parameters when
        compiling: ``compile_torch(expr, problem.symbols(), problem.parameter_values())``);
        for a Langevin generator, that of its ground-state transform (``spec/langevin.py``)."""
        if self.operator.langevin is not None:
            return self._cached("potential", lambda: ground_state_potential(
                self._langevin_u(), self.kinetic_value(), self.symbols()))
        return self._cached("potential", lambda: self._scope().over_space(self.operator.potential))

    def _langevin_u(self) -> sp.Expr:
        assert self.operator.langevin is not None
        return self._scope().over_space(self.operator.langevin.potential)

    @property
    def potential_key(self) -> tuple[str, ...]:
        """Where the file gives the potential (errors about it point there)."""
        return ("operator", *(("langevin",) if self.operator.langevin else ()), "potential")

    def constant_value(self, text: float | str) -> float:
        """A constant expression over the parameters (a Robin wall's alpha)."""
        return self._scope().kinetic(text)

    def kinetic_value(self) -> float:
        """The constant factor of the kinetic term (``spec/medium.py``)."""
        return self._cached("kinetic", lambda: kinetic_factor(self, self._scope()))

    def space_expr(self, key: str, text: float | str) -> sp.Expr:
        """An expression over coordinates and parameters, parsed once (cached by ``key``)."""
        return self._cached(key, lambda: self._scope().over_space(text))

    def kernel_expr(self) -> sp.Expr | None:
        """k(x, y) over coordinates, input coordinates and parameters."""
        kernel = self.operator.kernel
        if kernel is None:
            return None
        return self._cached("kernel", lambda: self._scope().kernel(kernel))

    def region_expr(self) -> sp.Expr | None:
        if not isinstance(self.domain, RegionDomain):
            return None
        region = self.domain.region
        return self._cached("region", lambda: self._scope().over_space(region))

    def walls(self) -> str | None:
        """The one condition on every wall of a box or region (``dirichlet`` or ``neumann``:
        the semantic pass refuses mixed walls for now); None without walls (whole space, or
        an integral operator's measure)."""
        if self.is_singular or not isinstance(self.domain, (BoxDomain, RegionDomain)):
            return None
        boundary = self.domain.boundary
        if not isinstance(boundary, dict) or "robin" in boundary:
            return boundary if isinstance(boundary, str) else "robin"
        faces = [face for pair in self.box_faces() or () for face in pair]
        same = all(face == faces[0] for face in faces) and isinstance(faces[0], str)
        return faces[0] if same else "mixed"

    def box_faces(self) -> list[tuple[Any, Any]] | None:
        """Per coordinate, the conditions on a box's low and high face (a coordinate that
        ``boundary`` does not name keeps dirichlet); None for other domains."""
        if not isinstance(self.domain, BoxDomain):
            return None
        boundary = self.domain.boundary
        if not isinstance(boundary, dict) or "robin" in boundary:
            return [(boundary, boundary)] * self.dim
        pairs: list[tuple[Any, Any]] = []
        for name in self.coordinates:
            axis = boundary.get(name, "dirichlet")
            pairs.append((axis[0], axis[1]) if isinstance(axis, list) else (axis, axis))
        return pairs

    def domain_bounds(self) -> list[tuple[float, float]] | None:
        """Box or region bounds in coordinate order; None in whole space."""
        if isinstance(self.domain, BoxDomain):
            limits = self.domain.box
        elif isinstance(self.domain, RegionDomain):
            limits = self.domain.bounds
        else:
            return None
        return [limits[c] for c in self.coordinates]

    def eigenvalue_expr(self) -> sp.Expr | None:
        """The reference eigenvalue formula over quantum numbers and parameters."""
        return self._reference_formula("eigenvalue", ExpressionScope.eigenvalue)

    def value_expr(self) -> sp.Expr | None:
        """The reference formula: eigenvalue, or singular value."""
        if self.singular_values_wanted:
            return self._reference_formula("singular_value", ExpressionScope.eigenvalue)
        return self.eigenvalue_expr()

    def left_function_expr(self) -> sp.Expr | None:
        return self._reference_formula("left_function", ExpressionScope.eigenfunction)

    def right_function_expr(self) -> sp.Expr | None:
        return self._reference_formula("right_function", ExpressionScope.right_function)

    def where_expr(self) -> sp.Basic | None:
        return self._reference_formula("where", ExpressionScope.where)

    def eigenfunction_expr(self) -> sp.Expr | None:
        """The reference eigenfunction; a Langevin generator's (of L) as the transformed
        operator's, the functions nsvd learns."""
        phi = self._reference_formula("eigenfunction", ExpressionScope.eigenfunction)
        if phi is None or self.operator.langevin is None:
            return phi
        return symmetrised(phi, self._langevin_u(), self.kinetic_value())

    def _reference_formula(
        self, key: str, parse: Callable[[ExpressionScope, float | str], Any]
    ) -> Any:
        text = getattr(self.reference, key, None)
        if text is None:
            return None
        return self._cached(key, lambda: parse(self._scope(), text))
