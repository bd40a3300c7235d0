"""Field types for the problem models, whose errors are plain one-line messages.

Pydantic's own messages ("Input should be a valid number, unable to parse string as a
number") are written for programmers; these validators say what was expected and what the
file had instead.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from pydantic import PlainValidator
from pydantic_core import PydanticCustomError

from nsvd_cli.expr import ExpressionError, evaluate_constant, parse_expression

# PyYAML follows YAML 1.1, where 1e-3 (no dot) is a string; accept such spellings as numbers.
_NUMBER_TEXT = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_PROBLEM_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def magnitude(value: int) -> str:
    """``10**400`` -> ``about 10^400``, without converting the integer to text."""
    return f"about 10^{round(math.log10(abs(value)))}"


def quote(value: Any) -> str:
    """A name or key from the file, quoted, with non-ASCII and invisible characters escaped
    (a Cyrillic 'а' shows as '\\u0430', not as a lookalike of 'a')."""
    return ascii(value) if isinstance(value, str) else show(value)


def show(value: Any) -> str:
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
        return ascii(text)
    if isinstance(value, int):
        # str() of a huge integer is slow, then refused (sys.get_int_max_str_digits).
        return repr(value) if abs(value) < 10**15 else f"an integer of {magnitude(value)}"
    if isinstance(value, float):
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


def _number_type(
    gt: float | None = None, ge: float | None = None, le: float | None = None
) -> Callable[[Any], float]:
    def validate(value: Any) -> float:
        number = _as_float(value)
        if number is None:
            raise _fail("number_type", f"expected a number, got {show(value)}")
        if not math.isfinite(number):
            raise _fail("number_type", f"expected a finite number, got {show(value)}")
        if gt is not None and not number > gt:
            raise _fail("number_range", f"must be > {gt:g}, got {number:g}")
        if ge is not None and not number >= ge:
            raise _fail("number_range", f"must be >= {ge:g}, got {number:g}")
        if le is not None and not number <= le:
            raise _fail("number_range", f"must be <= {le:g}, got {number:g}")
        return number

    return validate


def integer_value(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    number = _as_float(value)
    if number is not None and math.isfinite(number) and number.is_integer():
        return int(number)
    return None


def integer_type(
    ge: int | None = None, le: int | None = None, even: bool = False
) -> Callable[[Any], int]:
    def validate(value: Any) -> int:
        number = integer_value(value)
        if number is None:
            raise _fail("integer_type", f"expected an integer, got {show(value)}")
        if ge is not None and number < ge:
            raise _fail("number_range", f"must be >= {ge}, got {show(number)}")
        if le is not None and number > le:
            raise _fail("number_range", f"must be <= {le}, got {show(number)}")
        if even and number % 2:
            raise _fail("number_range", f"must be even, got {show(number)}")
        return number

    return validate


def _expression_text(value: Any) -> float | str:
    if isinstance(value, str):
        return value
    number = _as_float(value)
    if number is None or not math.isfinite(number):
        raise _fail(
            "expression_type", f"expected a number or an expression string, got {show(value)}"
        )
    # Integers stay integers so that "potential: 0" is SymPy's exact 0, not 0.0.
    return value if isinstance(value, int) else number


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise _fail("string_type", f"expected a string, got {show(value)}")
    return value


def _problem_name(value: Any) -> str:
    text = _string(value)
    if not _PROBLEM_NAME.fullmatch(text):
        raise _fail(
            "name_pattern", f"invalid name {show(text)} (use letters, digits, '_', '.', '-')"
        )
    return text


def _interval(value: Any) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise _fail("interval_type", f"expected [lo, hi], got {show(value)}")
    lo, hi = (_as_float(v) for v in value)
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        got = ", ".join(show(v) for v in value)
        raise _fail("interval_type", f"expected [lo, hi] with two numbers, got [{got}]")
    if not lo < hi:
        raise _fail("interval_order", f"lower end must be below upper end, got [{lo:g}, {hi:g}]")
    if not math.isfinite(hi - lo):
        raise _fail("interval_range", f"the interval [{lo:g}, {hi:g}] is too wide for float64")
    return (lo, hi)


def _integer_interval(value: Any) -> tuple[int, int]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise _fail("interval_type", f"expected an integer range [lo, hi], got {show(value)}")
    lo, hi = (integer_value(v) for v in value)
    if lo is None or hi is None:
        got = ", ".join(show(v) for v in value)
        raise _fail("interval_type", f"expected two integers [lo, hi], got [{got}]")
    if lo > hi:
        raise _fail(
            "interval_order", f"lower end must not exceed upper end, got [{show(lo)}, {show(hi)}]"
        )
    return (lo, hi)


@functools.lru_cache(maxsize=1024)
def _constant_text(text: str) -> tuple[float, str]:
    """(value, "") or (nan, error): the structural and semantic passes both need it."""
    try:
        return evaluate_constant(parse_expression(text, ())), ""
    except ExpressionError as error:
        return math.nan, str(error)


def parameter_value(value: Any) -> float:
    if isinstance(value, str):
        number, error = _constant_text(value)
        if error:
            raise _fail("expression", error)
        return number
    return _number_type()(value)


Number = Annotated[float, PlainValidator(_number_type())]
PositiveNumber = Annotated[float, PlainValidator(_number_type(gt=0))]
Fraction = Annotated[float, PlainValidator(_number_type(gt=0, le=1))]
Expression = Annotated[float | str, PlainValidator(_expression_text)]
Text = Annotated[str, PlainValidator(_string)]
Interval = Annotated[tuple[float, float], PlainValidator(_interval)]
IntegerInterval = Annotated[tuple[int, int], PlainValidator(_integer_interval)]
Parameter = Annotated[float, PlainValidator(parameter_value)]
PositiveInt = Annotated[int, PlainValidator(integer_type(ge=1))]
ProblemName = Annotated[str, PlainValidator(_problem_name)]


MAX_COORDINATES = 64


def diffusion_form(value: Any) -> float | str | list[list[float | str]]:
    """``diffusion:`` a scalar expression, or a d x d matrix of expressions (list of rows);
    its size and symmetry are checked against the coordinates by the semantic pass."""
    if isinstance(value, dict):
        shape = f"expected an expression or a d x d matrix, got {show(value)}"
        raise _fail("diffusion_form", shape)
    if not isinstance(value, list):
        return _expression_text(value)
    if not value or len(value) > MAX_COORDINATES or not all(isinstance(r, list) for r in value):
        raise _fail(
            "diffusion_form",
            f"expected an expression or a d x d matrix (a list of rows), got {show(value)}",
        )
    return [[_expression_text(entry) for entry in row] for row in value]


Diffusion = Annotated[float | str | list[list[float | str]], PlainValidator(diffusion_form)]
