"""The semantic pass over a problem: names and expressions, beyond what pydantic checks.

The pass runs on raw YAML data, checking whatever parts have the right shape, so that one
run reports every problem in a file together with the structural ones.  The same
:class:`ExpressionScope` parses expressions here and in the :class:`~nsvd_cli.spec.Problem`
accessors, so a file that passes the checks parses the same way later.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import sympy as sp
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
from .spec_fields import integer_value, parameter_value
from .spec_yaml import Key

MAX_STATES = 100_000

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_RESERVED = frozenset(BASE_FUNCTIONS) | frozenset(REFERENCE_FUNCTIONS) | frozenset(CONSTANTS)

Found = list[tuple[Key, str]]


@dataclass(frozen=True)
class ExpressionScope:
    """The names each kind of expression in a problem may use, and the parameter values
    (known values let the parser bound constant exponents that use parameters)."""

    coordinates: Sequence[str]
    parameters: Sequence[str]
    values: Mapping[str, float]
    quantum_numbers: Sequence[str] = ()

    def kinetic(self, text: float | str) -> float:
        """The kinetic coefficient: a constant over parameters."""
        return evaluate_constant(
            parse_expression(text, self.parameters, values=self.values), self.values
        )

    def over_space(self, text: float | str) -> sp.Expr:
        """The potential or the region: coordinates and parameters."""
        return parse_expression(text, [*self.coordinates, *self.parameters], values=self.values)

    def eigenvalue(self, text: float | str) -> sp.Expr:
        return parse_expression(
            text,
            [*self.quantum_numbers, *self.parameters],
            integer_names=self.quantum_numbers,
            values=self.values,
        )

    def where(self, text: float | str) -> sp.Basic:
        if not isinstance(text, str):
            raise ExpressionError("expected a condition such as 'abs(m) <= l'")
        return parse_condition(
            text,
            [*self.quantum_numbers, *self.parameters],
            integer_names=self.quantum_numbers,
            values=self.values,
        )

    def eigenfunction(self, text: float | str) -> sp.Expr:
        return parse_expression(
            text,
            [*self.coordinates, *self.quantum_numbers, *self.parameters],
            extra_functions=REFERENCE_FUNCTIONS,
            integer_names=self.quantum_numbers,
            values=self.values,
        )


def _check_names(
    names: Iterable[Any], where: Callable[[Any], Key], what: str, taken: Mapping[str, str]
) -> Found:
    found: Found = []
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


def _check_expression(key: Key, text: Any, make: Callable[[Any], Any], found: Found) -> Any:
    if not isinstance(text, (str, int, float)) or isinstance(text, bool):
        return None  # wrong type: the structural pass reports it
    try:
        return make(text)
    except ExpressionError as error:
        found.append((key, str(error)))
        return None


def _check_limits(key: Key, limits: Any, coordinates: list[str], found: Found) -> None:
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
        lo, hi = (integer_value(v) for v in value)
        if lo is None or hi is None or lo > hi:
            return None
        count *= hi - lo + 1
    return count


def semantic_issues(data: Mapping[str, Any]) -> Found:
    """Names and expressions, checked on whatever parts of the raw data have the right shape."""
    found: Found = []
    raw_coordinates = data.get("coordinates")
    coordinates: list[str] = []
    if isinstance(raw_coordinates, list):
        coordinates = [c for c in raw_coordinates if isinstance(c, str)]
        positions = {
            c: i for i, c in reversed(list(enumerate(raw_coordinates))) if isinstance(c, str)
        }
        # Point duplicates at their second occurrence.
        for i, c in enumerate(raw_coordinates):
            if isinstance(c, str) and positions[c] != i:
                found.append((("coordinates", i), f"duplicate coordinate {c!r}"))
        found.extend(
            _check_names(
                dict.fromkeys(coordinates),
                lambda c: ("coordinates", positions[c]),
                "coordinate",
                {},
            )
        )

    raw_parameters = data.get("parameters")
    parameter_names: list[str] = []
    parameters: dict[str, float] = {}
    if isinstance(raw_parameters, Mapping):
        taken = dict.fromkeys(coordinates, "coordinate")
        found.extend(_check_names(raw_parameters, lambda p: ("parameters", p), "parameter", taken))
        parameter_names = [p for p in raw_parameters if isinstance(p, str)]
        for name in parameter_names:
            try:
                parameters[name] = parameter_value(raw_parameters[name])
            except PydanticCustomError:
                continue  # reported by the structural pass
    scope = ExpressionScope(coordinates, parameter_names, parameters)

    operator = data.get("operator")
    if isinstance(operator, Mapping):
        if "kinetic" in operator:
            key: Key = ("operator", "kinetic")
            value = _check_expression(key, operator["kinetic"], scope.kinetic, found)
            if value is not None and not value > 0:
                found.append((key, f"kinetic must be > 0, got {value:g}"))
        if "potential" in operator:
            _check_expression(
                ("operator", "potential"), operator["potential"], scope.over_space, found
            )

    domain = data.get("domain")
    if isinstance(domain, Mapping):
        if "region" in domain:
            _check_expression(("domain", "region"), domain["region"], scope.over_space, found)
            _check_limits(("domain", "bounds"), domain.get("bounds"), coordinates, found)
        elif "box" in domain:
            _check_limits(("domain", "box"), domain.get("box"), coordinates, found)

    reference = data.get("reference")
    if isinstance(reference, Mapping):
        found.extend(_reference_issues(reference, scope))
    return found


def _reference_issues(reference: Mapping[str, Any], scope: ExpressionScope) -> Found:
    found: Found = []
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
            found.append((("reference", required), f"missing required key {required!r}"))

    ranges = reference.get("quantum_numbers")
    if not isinstance(ranges, Mapping):
        return found  # without quantum numbers every name in the formulas would be unknown
    taken = {
        **dict.fromkeys(scope.parameters, "parameter"),
        **dict.fromkeys(scope.coordinates, "coordinate"),
    }
    found.extend(
        _check_names(ranges, lambda q: ("reference", "quantum_numbers", q), "quantum number", taken)
    )
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
    scope = replace(scope, quantum_numbers=[q for q in ranges if isinstance(q, str)])
    for name, parse in (
        ("eigenvalue", scope.eigenvalue),
        ("where", scope.where),
        ("eigenfunction", scope.eigenfunction),
    ):
        _check_expression(("reference", name), reference.get(name), parse, found)
    return found
