"""The names an expression of a problem file may use, and the small checks every semantic
pass shares (names, one expression, limits, counts of states)."""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sympy as sp

from nsvd_cli.expr import (
    BASE_FUNCTIONS,
    CONSTANTS,
    REFERENCE_FUNCTIONS,
    ExpressionError,
    evaluate_constant,
    parse_condition,
    parse_expression,
)
from nsvd_cli.spec.fields import integer_value, quote
from nsvd_cli.spec.yaml_reader import Key

MAX_STATES = 100_000
MANY_STATES = 10**15
MAX_PARAMETERS = 256

IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
RESERVED = frozenset(BASE_FUNCTIONS) | frozenset(REFERENCE_FUNCTIONS) | frozenset(CONSTANTS)

Found = list[tuple[Key, str]]


@dataclass(frozen=True)
class ExpressionScope:
    """The names each kind of expression in a problem may use, and the parameter values
    (known values let the parser bound constant exponents that use parameters)."""

    coordinates: Sequence[str]
    parameters: Sequence[str]
    values: Mapping[str, float]
    quantum_numbers: Sequence[str] = ()
    input_coordinates: Sequence[str] = ()

    def kinetic(self, text: float | str) -> float:
        """The kinetic coefficient: a constant over parameters."""
        return evaluate_constant(
            parse_expression(text, self.parameters, values=self.values), self.values
        )

    def over_space(self, text: float | str) -> sp.Expr:
        """The potential or the region: coordinates and parameters."""
        return parse_expression(text, [*self.coordinates, *self.parameters], values=self.values)

    def kernel(self, text: float | str) -> sp.Expr:
        """An integral kernel k(x, y): coordinates, input coordinates and parameters."""
        return parse_expression(
            text,
            [*self.coordinates, *self.input_coordinates, *self.parameters],
            values=self.values,
        )

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

    def right_function(self, text: float | str) -> sp.Expr:
        """A right singular function: input coordinates, quantum numbers and parameters."""
        return parse_expression(
            text,
            [*self.input_coordinates, *self.quantum_numbers, *self.parameters],
            extra_functions=REFERENCE_FUNCTIONS,
            integer_names=self.quantum_numbers,
            values=self.values,
        )


def check_names(
    names: Iterable[Any], where: Callable[[Any], Key], what: str, taken: Mapping[str, str]
) -> Found:
    found: Found = []
    seen: set[str] = set()
    for item in names:
        if not isinstance(item, str):
            continue
        key = where(item)
        if not IDENTIFIER.fullmatch(item) or keyword.iskeyword(item):
            found.append(
                (
                    key,
                    f"invalid {what} name {quote(item)} (use letters, digits and '_', "
                    "starting with a letter)",
                )
            )
        elif item in RESERVED:
            found.append((key, f"{what} name {quote(item)} is reserved (a function or constant)"))
        elif item in taken:
            found.append((key, f"{what} name {quote(item)} is already used as a {taken[item]}"))
        elif item in seen:
            found.append((key, f"duplicate {what} name {quote(item)}"))
        seen.add(item)
    return found


def check_expression(key: Key, text: Any, make: Callable[[Any], Any], found: Found) -> Any:
    if not isinstance(text, (str, int, float)) or isinstance(text, bool):
        return None  # wrong type: the structural pass reports it
    try:
        return make(text)
    except ExpressionError as error:
        found.append((key, str(error)))
        return None


def check_limits(key: Key, limits: Any, coordinates: list[str], found: Found) -> None:
    if not isinstance(limits, Mapping):
        return
    for name in limits:
        if isinstance(name, str) and name not in coordinates:
            found.append(
                (
                    (*key, str(name)),
                    f"unknown coordinate {quote(name)} (coordinates: {', '.join(coordinates)})",
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


def state_count(ranges: Mapping[Any, Any]) -> int | None:
    count = 1
    for value in ranges.values():
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            return None
        lo, hi = (integer_value(v) for v in value)
        if lo is None or hi is None or lo > hi:
            return None
        # Capped: many ranges of huge integers would make a number too long to print.
        count = min(count * (hi - lo + 1), MANY_STATES)
    return count

