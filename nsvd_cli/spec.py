"""The problem file: pydantic models, a safe YAML reader, and errors with file and line.

A problem file is untrusted data.  It is read with PyYAML's safe loader, anchors and aliases
are refused (they are the only way to make a small YAML document expand into a huge one), and
every expression goes through :mod:`nsvd_cli.expr`, which never executes text.

Validation happens in two passes over the raw YAML data so that one run reports everything
wrong with a file: pydantic checks the structure (keys, types, numeric ranges) and a semantic
pass checks names and expressions on whatever parts have the right shape.  Each problem found
becomes a :class:`ProblemIssue` carrying the file, the line of the offending key and the
dotted key path.
"""

from __future__ import annotations

import difflib
import keyword
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import sympy as sp
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    PrivateAttr,
    Tag,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .expr import (
    BASE_FUNCTIONS,
    CONSTANTS,
    REFERENCE_FUNCTIONS,
    ExpressionError,
    evaluate_constant,
    parse_condition,
    parse_expression,
)

__all__ = [
    "BoxDomain",
    "MAX_FILE_BYTES",
    "MAX_STATES",
    "Operator",
    "Problem",
    "ProblemError",
    "ProblemIssue",
    "Reference",
    "RegionDomain",
    "Solver",
    "load_problem",
    "parse_problem",
]

MAX_FILE_BYTES = 1_000_000
MAX_COORDINATES = 64
MAX_MODES = 512
MAX_STATES = 100_000
MAX_YAML_DEPTH = 50
METHODS = ("neuralsvd-sequential", "neuralsvd-joint", "spin", "neuralef")

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
# PyYAML follows YAML 1.1, where 1e-3 (no dot) is a string; accept such spellings as numbers.
_NUMBER_TEXT = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_RESERVED = frozenset(BASE_FUNCTIONS) | frozenset(REFERENCE_FUNCTIONS) | frozenset(CONSTANTS)


# --------------------------------------------------------------------------------------
# Issues and errors
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProblemIssue:
    """One thing wrong with a problem file."""

    path: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ProblemError(Exception):
    """A problem file is invalid; ``errors`` lists every issue found, one per line."""

    def __init__(self, errors: list[ProblemIssue]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


# --------------------------------------------------------------------------------------
# Field types with plain error messages
# --------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    """A short description of a bad value for error messages."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return repr(text)
    if isinstance(value, (int, float)):
        return repr(value)
    return type(value).__name__


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:
            return None
    if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value.strip()):
        return float(value)
    return None


def _fail(kind: str, message: str, **ctx: Any) -> PydanticCustomError:
    # The message is formatted here so that braces in user input cannot confuse pydantic.
    return PydanticCustomError(kind, "{message}", {"message": message, **ctx})


def _number_type(gt: float | None = None, ge: float | None = None) -> Callable[[Any], float]:
    def validate(value: Any) -> float:
        number = _as_float(value)
        if number is None:
            raise _fail("number_type", f"expected a number, got {_show(value)}")
        if not math.isfinite(number):
            raise _fail("number_type", f"expected a finite number, got {_show(value)}")
        if gt is not None and not number > gt:
            raise _fail("number_range", f"must be > {gt:g}, got {number:g}")
        if ge is not None and not number >= ge:
            raise _fail("number_range", f"must be >= {ge:g}, got {number:g}")
        return number

    return validate


def _integer_value(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    number = _as_float(value)
    if number is not None and math.isfinite(number) and number.is_integer():
        return int(number)
    return None


def _integer_type(
    ge: int | None = None, le: int | None = None, even: bool = False
) -> Callable[[Any], int]:
    def validate(value: Any) -> int:
        number = _integer_value(value)
        if number is None:
            raise _fail("integer_type", f"expected an integer, got {_show(value)}")
        if ge is not None and number < ge:
            raise _fail("number_range", f"must be >= {ge}, got {number}")
        if le is not None and number > le:
            raise _fail("number_range", f"must be <= {le}, got {number}")
        if even and number % 2:
            raise _fail("number_range", f"must be even, got {number}")
        return number

    return validate


def _expression_text(value: Any) -> float | str:
    if isinstance(value, str):
        return value
    number = _as_float(value)
    if number is None or not math.isfinite(number):
        raise _fail(
            "expression_type", f"expected a number or an expression string, got {_show(value)}"
        )
    # Integers stay integers so that "potential: 0" is SymPy's exact 0, not 0.0.
    return value if isinstance(value, int) else number


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise _fail("string_type", f"expected a string, got {_show(value)}")
    return value


_PROBLEM_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _problem_name(value: Any) -> str:
    text = _string(value)
    if not _PROBLEM_NAME.fullmatch(text):
        raise _fail(
            "name_pattern", f"invalid name {_show(text)} (use letters, digits, '_', '.', '-')"
        )
    return text


def _interval(value: Any) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise _fail("interval_type", f"expected [lo, hi], got {_show(value)}")
    lo, hi = (_as_float(v) for v in value)
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        raise _fail("interval_type", f"expected [lo, hi] with two numbers, got {list(value)}")
    if not lo < hi:
        raise _fail("interval_order", f"lower end must be below upper end, got [{lo:g}, {hi:g}]")
    return (lo, hi)


def _integer_interval(value: Any) -> tuple[int, int]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise _fail("interval_type", f"expected an integer range [lo, hi], got {_show(value)}")
    lo, hi = (_integer_value(v) for v in value)
    if lo is None or hi is None:
        raise _fail("interval_type", f"expected two integers [lo, hi], got {list(value)}")
    if lo > hi:
        raise _fail("interval_order", f"lower end must not exceed upper end, got [{lo}, {hi}]")
    return (lo, hi)


def _parameter_value(value: Any) -> float:
    if isinstance(value, str):
        try:
            return evaluate_constant(parse_expression(value, ()))
        except ExpressionError as error:
            raise _fail("expression", str(error)) from None
    return _number_type()(value)


Number = Annotated[float, PlainValidator(_number_type())]
PositiveNumber = Annotated[float, PlainValidator(_number_type(gt=0))]
Expression = Annotated[float | str, PlainValidator(_expression_text)]
Text = Annotated[str, PlainValidator(_string)]
Interval = Annotated[tuple[float, float], PlainValidator(_interval)]
IntegerInterval = Annotated[tuple[int, int], PlainValidator(_integer_interval)]
Parameter = Annotated[float, PlainValidator(_parameter_value)]
PositiveInt = Annotated[int, PlainValidator(_integer_type(ge=1))]


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_assignment=False)


class Operator(_Model):
    """H = -kinetic * Laplacian + potential."""

    kinetic: Expression = 0.5
    potential: Expression = 0


class BoxDomain(_Model):
    """A box with zero (Dirichlet) boundary values on its faces."""

    box: dict[str, Interval]


class RegionDomain(_Model):
    """The set where ``region`` > 0, inside ``bounds``; zero boundary values on its edge."""

    region: Text
    bounds: dict[str, Interval]


class Solver(_Model):
    """Training settings; ``None`` means "derive from the problem"."""

    method: Literal["neuralsvd-sequential", "neuralsvd-joint", "spin", "neuralef"] = (
        "neuralsvd-sequential"
    )
    steps: PositiveInt | None = None
    batch_size: Annotated[int, PlainValidator(_integer_type(ge=4, even=True))] | None = None
    learning_rate: PositiveNumber | None = None
    seed: Annotated[int, PlainValidator(_integer_type(ge=0))] = 0
    shift: Number | None = None
    scale: PositiveNumber | None = None
    sampling_scales: Annotated[list[PositiveNumber], Field(min_length=1)] | None = None
    hidden: PositiveInt | None = None
    depth: PositiveInt | None = None
    dtype: Literal["float32", "float64"] | None = None
    eval_samples: PositiveInt | None = None
    checkpoint_every: PositiveInt | None = None


class Reference(_Model):
    """Closed-form reference: a list of eigenvalues, or a formula over quantum numbers."""

    eigenvalues: Annotated[list[Number], Field(min_length=1)] | None = None
    eigenvalue: Expression | None = None
    quantum_numbers: dict[str, IntegerInterval] | None = None
    where: Expression | None = None
    eigenfunction: Expression | None = None

    @property
    def is_list(self) -> bool:
        return self.eigenvalues is not None


def _domain_tag(value: Any) -> str | None:
    if isinstance(value, str):
        return "whole-space"
    if isinstance(value, RegionDomain) or (isinstance(value, Mapping) and "region" in value):
        return "region"
    if isinstance(value, BoxDomain) or (isinstance(value, Mapping) and "box" in value):
        return "box"
    return None


_DOMAIN_FORMS = "expected 'whole-space', {box: {...}} or {region: '...', bounds: {...}}"
_DOMAIN_TAGS = {"whole-space": None, "box": BoxDomain, "region": RegionDomain}

Domain = Annotated[
    Annotated[Literal["whole-space"], Tag("whole-space")]
    | Annotated[BoxDomain, Tag("box")]
    | Annotated[RegionDomain, Tag("region")],
    Discriminator(_domain_tag, custom_error_type="domain_form", custom_error_message=_DOMAIN_FORMS),
]


class Problem(_Model):
    """A validated problem file.  Expressions stay as text; the accessors parse them."""

    name: Annotated[str, PlainValidator(_problem_name)]
    description: Text | None = None
    coordinates: Annotated[list[Text], Field(min_length=1, max_length=MAX_COORDINATES)]
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    operator: Operator = Field(default_factory=Operator)
    domain: Domain = "whole-space"
    modes: Annotated[int, PlainValidator(_integer_type(ge=1, le=MAX_MODES))]
    solver: Solver = Field(default_factory=Solver)
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
        issues = _semantic_issues(self.model_dump())
        if issues:
            raise ValueError("; ".join(f"{_dotted(k)}: {m}" if k else m for k, m in issues))
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

    def _names(self) -> list[str]:
        return [*self.coordinates, *self.parameters]

    def _cached(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def potential_expr(self) -> sp.Expr:
        """The potential over coordinates and parameter symbols (bind parameters when
        compiling: ``compile_torch(expr, problem.symbols(), problem.parameter_values())``)."""
        return self._cached(
            "potential",
            lambda: parse_expression(
                self.operator.potential, self._names(), values=self.parameters
            ),
        )

    def kinetic_value(self) -> float:
        return self._cached(
            "kinetic",
            lambda: evaluate_constant(
                parse_expression(self.operator.kinetic, list(self.parameters)), self.parameters
            ),
        )

    def region_expr(self) -> sp.Expr | None:
        if not isinstance(self.domain, RegionDomain):
            return None
        region = self.domain.region
        return self._cached(
            "region", lambda: parse_expression(region, self._names(), values=self.parameters)
        )

    def domain_bounds(self) -> list[tuple[float, float]] | None:
        """Box or region bounds in coordinate order; None in whole space."""
        if isinstance(self.domain, BoxDomain):
            limits = self.domain.box
        elif isinstance(self.domain, RegionDomain):
            limits = self.domain.bounds
        else:
            return None
        return [limits[c] for c in self.coordinates]

    def quantum_number_names(self) -> list[str]:
        ref = self.reference
        return list(ref.quantum_numbers) if ref and ref.quantum_numbers else []

    def _reference_names(self) -> list[str]:
        return [*self.quantum_number_names(), *self.parameters]

    def eigenvalue_expr(self) -> sp.Expr | None:
        """The reference eigenvalue formula over quantum numbers and parameters."""
        ref = self.reference
        if ref is None or ref.eigenvalue is None:
            return None
        text = ref.eigenvalue
        return self._cached(
            "eigenvalue",
            lambda: parse_expression(
                text,
                self._reference_names(),
                integer_names=self.quantum_number_names(),
                values=self.parameters,
            ),
        )

    def where_expr(self) -> sp.Basic | None:
        ref = self.reference
        if ref is None or ref.where is None:
            return None
        text = ref.where
        return self._cached(
            "where",
            lambda: _parse_where(
                text, self._reference_names(), self.quantum_number_names(), self.parameters
            ),
        )

    def eigenfunction_expr(self) -> sp.Expr | None:
        ref = self.reference
        if ref is None or ref.eigenfunction is None:
            return None
        text = ref.eigenfunction
        return self._cached(
            "eigenfunction",
            lambda: parse_expression(
                text,
                [*self.coordinates, *self._reference_names()],
                extra_functions=REFERENCE_FUNCTIONS,
                integer_names=self.quantum_number_names(),
                values=self.parameters,
            ),
        )


def _parse_where(
    text: float | str, names: list[str], integers: list[str], values: Mapping[str, float]
) -> sp.Basic:
    if not isinstance(text, str):
        raise ExpressionError("expected a condition such as 'abs(m) <= l'")
    return parse_condition(text, names, integer_names=integers, values=values)


# --------------------------------------------------------------------------------------
# Semantic checks (names and expressions) on raw data
# --------------------------------------------------------------------------------------

_Key = tuple[str | int, ...]
_Found = list[tuple[_Key, str]]


def _check_names(
    names: Iterable[Any], where: Callable[[Any], _Key], what: str, taken: Mapping[str, str]
) -> _Found:
    found: _Found = []
    seen: set[str] = set()
    for item in names:
        if not isinstance(item, str):
            continue
        key = where(item)
        if not _IDENTIFIER.fullmatch(item) or keyword.iskeyword(item):
            found.append(
                (
                    key,
                    f"invalid {what} name {item!r} (use letters, digits and '_', "
                    "starting with a letter)",
                )
            )
        elif item in _RESERVED:
            found.append((key, f"{what} name {item!r} is reserved (a function or constant)"))
        elif item in taken:
            found.append((key, f"{what} name {item!r} is already used as a {taken[item]}"))
        elif item in seen:
            found.append((key, f"duplicate {what} name {item!r}"))
        seen.add(item)
    return found


def _check_expression(key: _Key, text: Any, make: Callable[[Any], Any], found: _Found) -> Any:
    if not isinstance(text, (str, int, float)) or isinstance(text, bool):
        return None  # wrong type: the structural pass reports it
    try:
        return make(text)
    except ExpressionError as error:
        found.append((key, str(error)))
        return None


def _check_limits(key: _Key, limits: Any, coordinates: list[str], found: _Found) -> None:
    if not isinstance(limits, Mapping):
        return
    for name in limits:
        if isinstance(name, str) and name not in coordinates:
            found.append(
                (
                    (*key, str(name)),
                    f"unknown coordinate {name!r} (coordinates: {', '.join(coordinates)})",
                )
            )
    missing = [c for c in coordinates if c not in limits]
    if missing:
        found.append(
            (
                key,
                f"missing limits for coordinate{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)}",
            )
        )


def _state_count(ranges: Mapping[Any, Any]) -> int | None:
    count = 1
    for value in ranges.values():
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            return None
        lo, hi = (_integer_value(v) for v in value)
        if lo is None or hi is None or lo > hi:
            return None
        count *= hi - lo + 1
    return count


def _semantic_issues(data: Mapping[str, Any]) -> _Found:
    """Names and expressions, checked on whatever parts of the raw data have the right shape."""
    found: _Found = []
    raw_coordinates = data.get("coordinates")
    coordinates = (
        [c for c in raw_coordinates if isinstance(c, str)]
        if isinstance(raw_coordinates, list)
        else []
    )
    if isinstance(raw_coordinates, list):
        positions = {
            c: i for i, c in reversed(list(enumerate(raw_coordinates))) if isinstance(c, str)
        }
        # Point duplicates at their second occurrence.
        for i, c in enumerate(raw_coordinates):
            if isinstance(c, str) and positions[c] != i:
                found.append((("coordinates", i), f"duplicate coordinate {c!r}"))
        found.extend(
            (k, m)
            for k, m in _check_names(
                dict.fromkeys(coordinates),
                lambda c: ("coordinates", positions[c]),
                "coordinate",
                {},
            )
        )

    raw_parameters = data.get("parameters")
    parameters: dict[str, float] = {}
    if isinstance(raw_parameters, Mapping):
        taken = dict.fromkeys(coordinates, "coordinate")
        found.extend(_check_names(raw_parameters, lambda p: ("parameters", p), "parameter", taken))
        for name, value in raw_parameters.items():
            if not isinstance(name, str):
                continue
            try:
                parameters[name] = _parameter_value(value)
            except PydanticCustomError:
                continue  # reported by the structural pass
    parameter_names = (
        [p for p in (raw_parameters or {}) if isinstance(p, str)]
        if isinstance(raw_parameters, Mapping)
        else []
    )
    space_names = [*coordinates, *parameter_names]

    operator = data.get("operator")
    if isinstance(operator, Mapping):
        if "kinetic" in operator:
            key: _Key = ("operator", "kinetic")
            value = _check_expression(
                key,
                operator["kinetic"],
                lambda t: evaluate_constant(
                    parse_expression(t, parameter_names, values=parameters), parameters
                ),
                found,
            )
            if value is not None and not value > 0:
                found.append((key, f"kinetic must be > 0, got {value:g}"))
        if "potential" in operator:
            _check_expression(
                ("operator", "potential"),
                operator["potential"],
                lambda t: parse_expression(t, space_names, values=parameters),
                found,
            )

    domain = data.get("domain")
    if isinstance(domain, Mapping):
        if "region" in domain:
            _check_expression(
                ("domain", "region"),
                domain["region"],
                lambda t: parse_expression(t, space_names, values=parameters),
                found,
            )
            _check_limits(("domain", "bounds"), domain.get("bounds"), coordinates, found)
        elif "box" in domain:
            _check_limits(("domain", "box"), domain.get("box"), coordinates, found)

    reference = data.get("reference")
    if isinstance(reference, Mapping):
        found.extend(_reference_issues(reference, coordinates, parameter_names, parameters))
    return found


def _reference_issues(
    reference: Mapping[str, Any],
    coordinates: list[str],
    parameter_names: list[str],
    parameters: Mapping[str, float],
) -> _Found:
    found: _Found = []
    present = {k for k, v in reference.items() if v is not None}
    formula_keys = present & {"eigenvalue", "quantum_numbers", "where", "eigenfunction"}
    if "eigenvalues" in present:
        if formula_keys:
            found.append(
                (
                    ("reference",),
                    "use either 'eigenvalues' (a list) or 'eigenvalue' with "
                    f"'quantum_numbers', not both (found {', '.join(sorted(formula_keys))})",
                )
            )
        return found
    if not formula_keys:
        found.append(
            (("reference",), "needs 'eigenvalues' (a list) or 'eigenvalue' with 'quantum_numbers'")
        )
        return found
    for required in ("eigenvalue", "quantum_numbers"):
        if required not in present:
            found.append(((("reference", required)), f"missing required key {required!r}"))

    ranges = reference.get("quantum_numbers")
    if not isinstance(ranges, Mapping):
        return found  # without quantum numbers every name in the formulas would be unknown
    taken = {
        **dict.fromkeys(parameter_names, "parameter"),
        **dict.fromkeys(coordinates, "coordinate"),
    }
    found.extend(
        _check_names(ranges, lambda q: ("reference", "quantum_numbers", q), "quantum number", taken)
    )
    quantum = [q for q in ranges if isinstance(q, str)]
    count = _state_count(ranges)
    if not ranges:
        found.append((("reference", "quantum_numbers"), "needs at least one quantum number"))
    elif count is not None and count > MAX_STATES:
        found.append(
            (
                ("reference", "quantum_numbers"),
                f"the ranges give {count} states (limit {MAX_STATES})",
            )
        )
    names = [*quantum, *parameter_names]
    _check_expression(
        ("reference", "eigenvalue"),
        reference.get("eigenvalue"),
        lambda t: parse_expression(t, names, integer_names=quantum, values=parameters),
        found,
    )
    _check_expression(
        ("reference", "where"),
        reference.get("where"),
        lambda t: _parse_where(t, names, quantum, parameters),
        found,
    )
    _check_expression(
        ("reference", "eigenfunction"),
        reference.get("eigenfunction"),
        lambda t: parse_expression(
            t,
            [*coordinates, *names],
            extra_functions=REFERENCE_FUNCTIONS,
            integer_names=quantum,
            values=parameters,
        ),
        found,
    )
    return found


# --------------------------------------------------------------------------------------
# Reading YAML with line numbers
# --------------------------------------------------------------------------------------


class _YamlProblem(Exception):
    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def _mark_line(error: yaml.YAMLError) -> int | None:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    return None if mark is None else mark.line + 1


def _yaml_message(error: yaml.YAMLError) -> str:
    if isinstance(error, yaml.MarkedYAMLError):
        parts = [p for p in (error.context, error.problem) if p]
        text = "; ".join(parts) if parts else "invalid YAML"
    else:
        text = str(error)
    return "YAML syntax error: " + " ".join(text.split())


def _read_yaml(text: str) -> tuple[Any, dict[_Key, int], list[tuple[int, _Key, str]]]:
    """Safe-load ``text``; return the data, a key-path -> line map, and duplicate keys."""
    try:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise _YamlProblem(
                    event.start_mark.line + 1,
                    "YAML anchors and aliases (&name, *name) are not allowed",
                )
            # The composer recurses per level; refuse silly depths before it runs.
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise _YamlProblem(
                        event.start_mark.line + 1,
                        f"YAML is nested too deeply (limit {MAX_YAML_DEPTH} levels)",
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        raise _YamlProblem(_mark_line(error), _yaml_message(error)) from None
    except RecursionError:
        raise _YamlProblem(None, "YAML is nested too deeply") from None
    except (ValueError, OverflowError) as error:
        raise _YamlProblem(None, f"invalid YAML value: {error}") from None
    lines: dict[_Key, int] = {}
    duplicates: list[tuple[int, _Key, str]] = []
    stack: list[tuple[_Key, yaml.Node]] = [((), node)] if node is not None else []
    while stack:
        path, current = stack.pop()
        if isinstance(current, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in current.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                key_path = (*path, key_node.value)
                line = key_node.start_mark.line + 1
                if key_node.value in seen:
                    duplicates.append((line, key_path, f"duplicate key {key_node.value!r}"))
                seen.add(key_node.value)
                lines.setdefault(key_path, line)
                stack.append((key_path, value_node))
        elif isinstance(current, yaml.SequenceNode):
            for index, item in enumerate(current.value):
                lines[(*path, index)] = item.start_mark.line + 1
                stack.append(((*path, index), item))
    return data, lines, duplicates


def _line_of(lines: Mapping[_Key, int], key: _Key) -> int | None:
    for end in range(len(key), 0, -1):
        prefix = key[:end]
        if prefix in lines:
            return lines[prefix]
        alternative = tuple(str(k) for k in prefix)
        if alternative in lines:
            return lines[alternative]
    return None


def _normalise_key(key: _Key, lines: Mapping[_Key, int]) -> _Key:
    """Integers in pydantic locations are list indices or integer mapping keys; the YAML
    line map knows which (sequence items are stored under ints, mapping keys as text)."""
    parts: list[str | int] = []
    for part in key:
        if isinstance(part, int) and (*parts, part) not in lines:
            parts.append(str(part))
        else:
            parts.append(part)
    return tuple(parts)


def _dotted(key: _Key) -> str:
    text = ""
    for part in key:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


# --------------------------------------------------------------------------------------
# Pydantic errors -> plain messages
# --------------------------------------------------------------------------------------

_MODEL_AT: dict[_Key, type[BaseModel]] = {
    (): Problem,
    ("operator",): Operator,
    ("solver",): Solver,
    ("reference",): Reference,
}


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _structural_issue(error: Mapping[str, Any]) -> tuple[_Key, str]:
    loc = list(error["loc"])
    kind = error["type"]
    model_at = dict(_MODEL_AT)
    if len(loc) >= 2 and loc[0] == "domain" and loc[1] in _DOMAIN_TAGS:
        tag = loc.pop(1)
        if _DOMAIN_TAGS[tag] is not None:
            model_at[("domain",)] = _DOMAIN_TAGS[tag]  # type: ignore[assignment]
        if tag == "whole-space" and kind == "literal_error":
            return ("domain",), f"{_DOMAIN_FORMS}, got {_show(error.get('input'))}"
    if loc and loc[-1] == "[key]":
        loc.pop()
        loc[-1] = str(loc[-1])
        return tuple(loc), f"keys must be names, got {_show(error.get('input'))}"
    key: _Key = tuple(loc)
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind in ("extra_forbidden", "invalid_key"):
        model = model_at.get(key[:-1])
        name = key[-1]
        if model is None:
            return key, f"unknown key {name!r}"
        allowed = _allowed_keys(model)
        hint = difflib.get_close_matches(str(name), allowed, n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        return key, f"unknown key {name!r} (allowed: {', '.join(allowed)}{suggestion})"
    if kind == "missing":
        return key, f"missing required key {key[-1]!r}"
    if kind == "literal_error":
        return key, f"invalid value {_show(value)} (expected {ctx.get('expected', '?')})"
    if kind == "string_pattern_mismatch":
        return key, f"invalid name {_show(value)} (use letters, digits, '_', '.', '-')"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return key, f"expected a mapping (key: value), got {_show(value)}"
    if kind == "list_type":
        return key, f"expected a list, got {_show(value)}"
    if kind == "too_short":
        least = ctx.get("min_length")
        return key, f"needs at least {least} {'entry' if least == 1 else 'entries'}"
    if kind == "too_long":
        return (
            key,
            f"allows at most {ctx.get('max_length')} entries, got {ctx.get('actual_length')}",
        )
    if kind == "domain_form":
        return key, f"{_DOMAIN_FORMS}, got {_show(value)}"
    if "message" in ctx:
        return key, str(ctx["message"])
    message = str(error.get("msg", "invalid value"))
    return key, message.removeprefix("Value error, ")


# --------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------


def parse_problem(text: str, path: str = "<string>") -> Problem:
    """Validate the text of a problem file; raise :class:`ProblemError` listing every issue."""
    path = str(path)

    def fail(line: int | None, message: str, key: str = "") -> ProblemError:
        return ProblemError([ProblemIssue(path, line, key, message)])

    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_FILE_BYTES:
        raise fail(None, f"file is too large ({size} bytes, limit {MAX_FILE_BYTES})")
    try:
        data, lines, duplicates = _read_yaml(text)
    except _YamlProblem as problem:
        raise fail(problem.line, problem.message) from None
    if data is None:
        raise fail(None, "file is empty (expected a mapping with name, coordinates, modes, ...)")
    if not isinstance(data, dict):
        raise fail(1, f"the top level must be a mapping (key: value), got {_show(data)}")

    issues: list[ProblemIssue] = [
        ProblemIssue(path, line, _dotted(key), message) for line, key, message in duplicates
    ]
    found: list[tuple[_Key, str]] = []
    problem: Problem | None = None
    try:
        problem = Problem.model_validate(data, context={"skip_semantic": True})
    except ValidationError as error:
        found.extend(_structural_issue(e) for e in error.errors(include_url=False))
    found.extend(_semantic_issues(data))
    if found or issues:
        for raw_key, message in found:
            key = _normalise_key(raw_key, lines)
            issue = ProblemIssue(path, _line_of(lines, key), _dotted(key), message)
            if issue not in issues:
                issues.append(issue)
        issues.sort(key=lambda i: i.line or 0)
        raise ProblemError(issues)
    assert problem is not None
    problem._source_text = text
    problem._source_path = path
    return problem


def load_problem(path: str | Path) -> Problem:
    """Read and validate a problem file."""
    file = Path(path)
    name = str(path)
    try:
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ProblemError(
                [
                    ProblemIssue(
                        name, None, "", f"file is too large ({size} bytes, limit {MAX_FILE_BYTES})"
                    )
                ]
            )
        raw = file.read_bytes()
    except OSError as error:
        reason = error.strerror or str(error)
        raise ProblemError([ProblemIssue(name, None, "", f"cannot read file: {reason}")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ProblemError(
            [ProblemIssue(name, None, "", f"file is not UTF-8 text (byte {error.start})")]
        ) from None
    return parse_problem(text, name)
