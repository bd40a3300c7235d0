"""What an expression may contain: function whitelists, size limits and the error type.

The float evaluation of constant subtrees lives here too: the parser uses it only to bound
magnitudes and exponents before SymPy does any exact (and possibly unbounded) arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import sympy as sp

from nsvd_cli.errors import NsvdError

BASE_FUNCTIONS: tuple[str, ...] = (
    "sqrt",
    "exp",
    "log",
    "sin",
    "cos",
    "tan",
    "tanh",
    "cosh",
    "sinh",
    "atan2",
    "Abs",
    "abs",
    "sign",
    "Piecewise",
    "Max",
    "Min",
    "erf",
)
REFERENCE_FUNCTIONS: tuple[str, ...] = (
    "hermite",
    "laguerre",
    "assoc_laguerre",
    "legendre",
    "assoc_legendre",
    "besselj",
    "factorial",
    "binomial",
)
CONSTANTS: tuple[str, ...] = ("pi", "E")

MAX_TEXT_LENGTH = 2000
MAX_DEPTH = 60
MAX_NODES = 2000
MAX_LITERAL = 1e12
MAX_EXPONENT = 64
# factorial(171) overflows float64; larger polynomial degrees make SymPy expand for long.
MAX_SPECIAL_ARGUMENT = 170

SYMPY_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": sp.sqrt,
    "exp": sp.exp,
    "log": sp.log,
    "sin": sp.sin,
    "cos": sp.cos,
    "tan": sp.tan,
    "tanh": sp.tanh,
    "cosh": sp.cosh,
    "sinh": sp.sinh,
    "atan2": sp.atan2,
    "Abs": sp.Abs,
    "abs": sp.Abs,
    "sign": sp.sign,
    "Piecewise": sp.Piecewise,
    "Max": sp.Max,
    "Min": sp.Min,
    "erf": sp.erf,
    "hermite": sp.hermite,
    "laguerre": sp.laguerre,
    "assoc_laguerre": sp.assoc_laguerre,
    "legendre": sp.legendre,
    "assoc_legendre": sp.assoc_legendre,
    "besselj": sp.besselj,
    "factorial": sp.factorial,
    "binomial": sp.binomial,
}

# (fewest, most) positional arguments; functions not listed take exactly one.
ARITY: dict[str, tuple[int, int]] = {
    "log": (1, 2),
    "atan2": (2, 2),
    "Piecewise": (1, 64),
    "Max": (1, 64),
    "Min": (1, 64),
    "hermite": (2, 2),
    "laguerre": (2, 2),
    "assoc_laguerre": (3, 3),
    "legendre": (2, 2),
    "assoc_legendre": (3, 3),
    "besselj": (2, 2),
    "factorial": (1, 1),
    "binomial": (2, 2),
}

# Built unevaluated: SymPy compares every pair of Max/Min arguments (seconds for 64 of
# them) and expands polynomials of a literal degree into huge exact sums.  The compiler
# evaluates them numerically either way.
UNEVALUATED_FUNCTIONS = frozenset({"Max", "Min"})
POLYNOMIAL_FUNCTIONS = frozenset(
    {"hermite", "laguerre", "assoc_laguerre", "legendre", "assoc_legendre"}
)
# Polynomials of literal degree up to this are expanded (cheap, and SymPy-comparable).
MAX_EXPANDED_DEGREE = 8

# Arguments whose literal value is capped by MAX_SPECIAL_ARGUMENT (indices).
CAPPED_ARGUMENTS: dict[str, tuple[int, ...]] = {
    "factorial": (0,),
    "binomial": (0, 1),
    "hermite": (0,),
    "laguerre": (0,),
    "assoc_laguerre": (0, 1),
    "legendre": (0,),
    "assoc_legendre": (0, 1),
}

# Float evaluation of constant subtrees: only what is needed to bound magnitudes.
FLOAT_FUNCTIONS: dict[str, Callable[..., float]] = {
    "sqrt": math.sqrt,
    "exp": math.exp,
    "log": lambda a, b=math.e: math.log(a, b),
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "tanh": math.tanh,
    "cosh": math.cosh,
    "sinh": math.sinh,
    "atan2": math.atan2,
    "Abs": abs,
    "abs": abs,
    "sign": lambda a: float((a > 0) - (a < 0)),
    "erf": math.erf,
    "Max": max,
    "Min": min,
    "factorial": lambda a: math.gamma(a + 1.0),
    "binomial": lambda n, k: math.gamma(n + 1.0) / (math.gamma(k + 1.0) * math.gamma(n - k + 1.0)),
}


class ExpressionError(NsvdError, ValueError):
    """An expression string is not acceptable; the message is one human-readable line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


def float_op(op: Callable[[Any, Any], Any], a: float | None, b: float | None) -> float | None:
    """``op(a, b)`` when both values are known, else None."""
    if a is None or b is None:
        return None
    return float_call(op, [a, b])


def float_call(fn: Callable[..., Any], args: Sequence[float | None]) -> float | None:
    """``fn(*args)`` as a finite real float; out-of-range results are expression errors."""
    try:
        result = fn(*args)
    except OverflowError:
        raise ExpressionError("a constant subexpression is too large for float64") from None
    except ZeroDivisionError:
        raise ExpressionError("division by zero") from None
    except ValueError:
        # sqrt(-1), log(0): refused rather than left to SymPy, whose complex/infinite
        # results would also escape the magnitude bounds.
        raise ExpressionError("a constant subexpression is undefined or not real") from None
    except TypeError:
        return None
    if isinstance(result, complex) or math.isnan(float(result)):
        raise ExpressionError("a constant subexpression is undefined or not real")
    result = float(result)
    if math.isinf(result):
        raise ExpressionError("a constant subexpression is too large for float64")
    return result
