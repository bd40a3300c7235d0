"""Safe parsing of expression text into SymPy.

Problem files may come from untrusted sources, so expression text never reaches ``eval``,
``sympify`` or ``parse_expr`` (all of which can execute code).  Instead the text is parsed
with :func:`ast.parse`, every node is checked against a whitelist, and the SymPy expression
is built node by node.  Limits on size, nesting, literals and exponents keep SymPy from
spending unbounded time on exact big-integer arithmetic (``9**9**9**9``).
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Collection, Mapping
from typing import Any

import sympy as sp

from nsvd_cli.expr.rules import (
    ARITY,
    BASE_FUNCTIONS,
    CAPPED_ARGUMENTS,
    CONSTANTS,
    FLOAT_FUNCTIONS,
    MAX_EXPANDED_DEGREE,
    MAX_EXPONENT,
    MAX_LITERAL,
    MAX_SPECIAL_ARGUMENT,
    POLYNOMIAL_FUNCTIONS,
    SYMPY_FUNCTIONS,
    UNEVALUATED_FUNCTIONS,
    ExpressionError,
    float_call,
    float_op,
)
from nsvd_cli.expr.syntax import OPERATOR_GROUPS, parse_tree
from nsvd_cli.expr.translate import uncompilable_part

__all__ = ["parse_condition", "parse_expression"]

# Operators that chain on a left spine (a + b - c, a * b / c % d).
_COMPARISONS: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Lt: sp.Lt,
    ast.LtE: sp.Le,
    ast.Gt: sp.Gt,
    ast.GtE: sp.Ge,
    ast.Eq: sp.Eq,
    ast.NotEq: sp.Ne,
}


# How refused syntax is named in error messages.
_KIND_NAMES: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access ('.')",
    ast.Subscript: "subscripts ('[...]')",
    ast.Lambda: "lambda",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.List: "lists",
    ast.Dict: "dicts",
    ast.Set: "sets",
    ast.Starred: "'*' unpacking",
    ast.IfExp: "'... if ... else ...' (use Piecewise)",
    ast.NamedExpr: "':=' assignments",
    ast.JoinedStr: "strings",
    ast.Await: "await",
    ast.Yield: "yield",
}


def _describe(node: ast.AST) -> str:
    return _KIND_NAMES.get(type(node), type(node).__name__)


class _Parser:
    """Checks a Python AST against the whitelist and translates it into SymPy."""

    def __init__(
        self,
        names: Collection[str],
        functions: Collection[str],
        integer_names: Collection[str],
        values: Mapping[str, float],
    ) -> None:
        self.names = list(dict.fromkeys(names))
        self.functions = list(dict.fromkeys(functions))
        integers = set(integer_names)
        self.symbols = {
            name: sp.Symbol(name, integer=True) if name in integers else sp.Symbol(name, real=True)
            for name in self.names
        }
        self.values = dict(values)

    # A node is translated into (SymPy object, float value or None).  The float value is
    # known when the subtree is constant (literals, pi, E, names with known values); it
    # bounds magnitudes and exponents before SymPy does any exact arithmetic.

    def value(self, node: ast.AST, in_exponent: bool = False) -> tuple[Any, float | None]:
        if isinstance(node, ast.Constant):
            return self._constant(node.value)
        if isinstance(node, ast.Name):
            return self._name(node.id)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, (ast.UAdd, ast.USub)):
                inner, val = self.value(node.operand, in_exponent)
                if isinstance(node.op, ast.USub):
                    return -inner, (None if val is None else -val)
                return inner, val
            if isinstance(node.op, ast.Not):
                raise ExpressionError("'not' is only allowed in conditions")
            raise ExpressionError("'~' is only allowed in conditions")
        if isinstance(node, ast.BinOp):
            return self._binop(node, in_exponent)
        if isinstance(node, ast.Call):
            return self._call(node, in_exponent)
        if isinstance(node, (ast.Compare, ast.BoolOp)):
            raise ExpressionError(
                "comparisons and 'and'/'or' are only allowed in conditions "
                "(e.g. Piecewise((x, x > 0), (0, True)))"
            )
        if isinstance(node, ast.Tuple):
            raise ExpressionError("tuples are only allowed as Piecewise arguments")
        raise ExpressionError(f"{_describe(node)} not allowed in expressions")

    def condition(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            return sp.true if node.value else sp.false
        if isinstance(node, ast.Compare):
            parts = []
            left, _ = self.value(node.left)
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                make = _COMPARISONS.get(type(op))
                if make is None:
                    raise ExpressionError("only < <= > >= == != comparisons are allowed")
                right, _ = self.value(comparator)
                parts.append(_sympy_call(make, left, right))
                left = right
            return _sympy_call(sp.And, *parts) if len(parts) > 1 else parts[0]
        if isinstance(node, ast.BoolOp):
            items = [self.condition(v) for v in node.values]
            make = sp.And if isinstance(node.op, ast.And) else sp.Or
            return _sympy_call(make, *items)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.Invert)):
            return _sympy_call(sp.Not, self.condition(node.operand))
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            # SymPy spells 'and'/'or' as & and | on conditions.
            make = sp.And if isinstance(node.op, ast.BitAnd) else sp.Or
            return _sympy_call(make, self.condition(node.left), self.condition(node.right))
        if isinstance(node, (ast.Constant, ast.Name, ast.BinOp, ast.UnaryOp, ast.Call)):
            raise ExpressionError("expected a condition such as 'x > 0' or 'abs(m) <= l'")
        raise ExpressionError(f"{_describe(node)} not allowed in expressions")

    def _constant(self, value: object) -> tuple[Any, float | None]:
        if isinstance(value, bool):
            raise ExpressionError("True/False are only allowed as Piecewise conditions")
        if isinstance(value, int):
            if abs(value) > MAX_LITERAL:
                raise ExpressionError(f"number {value} is too large (limit 1e12)")
            return sp.Integer(value), float(value)
        if isinstance(value, float):
            if not math.isfinite(value) or abs(value) > MAX_LITERAL:
                raise ExpressionError("number is too large (limit 1e12)")
            return sp.Float(value), value
        if isinstance(value, (str, bytes)):
            raise ExpressionError("strings are not allowed in expressions")
        raise ExpressionError(f"constant {value!r} is not allowed (only real numbers)")

    def _name(self, name: str) -> tuple[Any, float | None]:
        if name in self.symbols:
            value = self.values.get(name)
            return self.symbols[name], (None if value is None else float(value))
        if name == "pi":
            return sp.pi, math.pi
        if name == "E":
            return sp.E, math.e
        if name in self.functions or name in SYMPY_FUNCTIONS:
            raise ExpressionError(f"'{name}' is a function; call it like {name}(...)")
        allowed = ", ".join([*self.names, *CONSTANTS])
        raise ExpressionError(
            f"unknown name {name!r} (allowed: {allowed}); declare constants under `parameters:`"
        )

    def _binop(self, node: ast.BinOp, in_exponent: bool) -> tuple[Any, float | None]:
        if isinstance(node.op, ast.Pow):
            return self._pow(node, in_exponent)
        group = OPERATOR_GROUPS.get(type(node.op))
        if group is None:
            hint = (
                "; '^' is XOR in Python syntax: write powers as x**2"
                if isinstance(node.op, ast.BitXor)
                else ""
            )
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed{hint}")
        # Sums and products of many terms parse as a long left spine; walk it in a loop
        # and hand SymPy all terms at once (adding one term at a time is quadratic).
        spine: list[tuple[ast.operator, ast.expr]] = []
        head: ast.expr = node
        while isinstance(head, ast.BinOp) and OPERATOR_GROUPS.get(type(head.op)) == group:
            spine.append((head.op, head.right))
            head = head.left
        first, value = self.value(head, in_exponent)
        items = [first]
        for op, operand in reversed(spine):
            item, item_value = self.value(operand, in_exponent)
            if isinstance(op, ast.Add):
                value = float_op(operator.add, value, item_value)
            elif isinstance(op, ast.Sub):
                item = -item
                value = float_op(operator.sub, value, item_value)
            elif isinstance(op, ast.Mult):
                value = float_op(operator.mul, value, item_value)
            else:
                if item_value == 0.0:
                    raise ExpressionError("division by zero")
                if isinstance(op, ast.Div):
                    item = _sympy_call(operator.pow, item, -1)
                    value = float_op(operator.truediv, value, item_value)
                else:
                    # Mod is not associative with products: fold what we have so far.
                    items = [_sympy_call(sp.Mod, _sympy_call(sp.Mul, *items), item)]
                    value = float_op(math.fmod, value, item_value)
                    continue
            items.append(item)
        make = sp.Add if group == "sum" else sp.Mul
        return _sympy_call(make, *items), value

    def _pow(self, node: ast.BinOp, in_exponent: bool) -> tuple[Any, float | None]:
        if in_exponent:
            raise ExpressionError("power towers are not allowed (a power inside an exponent)")
        base, base_value = self.value(node.left, in_exponent)
        exponent, exponent_value = self.value(node.right, in_exponent=True)
        for part, part_value in ((base, base_value), (exponent, exponent_value)):
            if part_value is None and not part.free_symbols:
                # A constant we could not bound (a Piecewise, a special function): SymPy
                # might raise it to exact big-integer powers, so refuse it here.
                raise ExpressionError(f"cannot bound the constant {part} in a power")
        if exponent_value is not None and abs(exponent_value) > MAX_EXPONENT:
            raise ExpressionError(
                f"exponent {exponent_value:g} is too large (limit {MAX_EXPONENT})"
            )
        value = float_op(operator.pow, base_value, exponent_value)
        return _sympy_call(operator.pow, base, exponent), value

    def _call(self, node: ast.Call, in_exponent: bool) -> tuple[Any, float | None]:
        if not isinstance(node.func, ast.Name):
            raise ExpressionError(
                f"only plain function calls like sin(x) are allowed (not {_describe(node.func)})"
            )
        name = node.func.id
        if name not in self.functions:
            allowed = ", ".join(self.functions)
            if name in self.symbols:
                raise ExpressionError(f"'{name}' is not a function")
            if name in SYMPY_FUNCTIONS:
                raise ExpressionError(f"function '{name}' is not allowed here (allowed: {allowed})")
            raise ExpressionError(f"unknown function {name!r} (allowed: {allowed})")
        if node.keywords:
            raise ExpressionError(f"{name}(): keyword arguments are not allowed")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise ExpressionError(f"{name}(): '*' unpacking is not allowed")
        low, high = ARITY.get(name, (1, 1))
        if not low <= len(node.args) <= high:
            expected = str(low) if low == high else f"{low} to {high}"
            raise ExpressionError(
                f"{name}() takes {expected} argument{'s' if high > 1 else ''}, got {len(node.args)}"
            )
        if name == "Piecewise":
            return self._piecewise(node, in_exponent)
        args = [self.value(a, in_exponent) for a in node.args]
        for index in CAPPED_ARGUMENTS.get(name, ()):
            arg, value = args[index]
            if value is None and not arg.free_symbols:
                raise ExpressionError(f"{name}(): cannot bound the constant argument {arg}")
            if value is not None and abs(value) > MAX_SPECIAL_ARGUMENT:
                raise ExpressionError(
                    f"{name}(): argument {value:g} is too large (limit {MAX_SPECIAL_ARGUMENT})"
                )
        values = [v for _, v in args]
        result: float | None = None
        if name in FLOAT_FUNCTIONS and all(v is not None for v in values):
            result = float_call(FLOAT_FUNCTIONS[name], values)
        make = SYMPY_FUNCTIONS[name]
        degree = values[0]
        if name in UNEVALUATED_FUNCTIONS or (
            name in POLYNOMIAL_FUNCTIONS and (degree is None or abs(degree) > MAX_EXPANDED_DEGREE)
        ):
            return _sympy_call(_unevaluated(make), *(a for a, _ in args)), result
        return _sympy_call(make, *(a for a, _ in args)), result

    def _piecewise(self, node: ast.Call, in_exponent: bool) -> tuple[Any, float | None]:
        pairs = []
        for arg in node.args:
            if not isinstance(arg, ast.Tuple) or len(arg.elts) != 2:
                raise ExpressionError(
                    "Piecewise arguments must be (value, condition) pairs, "
                    "e.g. Piecewise((x, x > 0), (0, True))"
                )
            expr, _ = self.value(arg.elts[0], in_exponent)
            pairs.append((expr, self.condition(arg.elts[1])))
        return _sympy_call(sp.Piecewise, *pairs), None


def _unevaluated(make: Callable[..., Any]) -> Callable[..., Any]:
    def build(*args: Any) -> Any:
        return make(*args, evaluate=False)

    return build


def _sympy_call(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except (TypeError, ValueError, AttributeError, ZeroDivisionError) as error:
        raise ExpressionError(f"invalid expression: {error}") from None


def _allowed_functions(extra_functions: Collection[str]) -> list[str]:
    unknown = [f for f in extra_functions if f not in SYMPY_FUNCTIONS]
    if unknown:
        raise ValueError(f"unsupported extra functions: {', '.join(unknown)}")
    return [*BASE_FUNCTIONS, *extra_functions]


def parse_expression(
    text: str | int | float,
    names: Collection[str],
    *,
    extra_functions: Collection[str] = (),
    integer_names: Collection[str] = (),
    values: Mapping[str, float] | None = None,
) -> sp.Expr:
    """Parse an expression string (or a plain number) into a SymPy expression.

    ``names`` are the symbols the text may use (besides ``pi`` and ``E``); they become real
    symbols, or integer symbols for ``integer_names``.  ``values`` gives known values of some
    names (parameters) so that constant exponents using them are bounded too.  Raises
    :class:`ExpressionError` for anything outside the whitelist.
    """
    if isinstance(text, bool):
        raise ExpressionError("expected a number or an expression string, got a boolean")
    if isinstance(text, (int, float)):
        tree: ast.expr = ast.Constant(value=text)
    else:
        tree = parse_tree(text)
    parser = _Parser(names, _allowed_functions(extra_functions), integer_names, values or {})
    expr, _ = parser.value(tree)
    if not isinstance(expr, sp.Expr):
        raise ExpressionError("expected a numeric expression")
    _check_defined(expr)
    return expr


# What SymPy folds 1/(x - x), log(x - x) or sqrt(x - x - 1) into.
_UNDEFINED = (sp.zoo, sp.nan, sp.oo, -sp.oo)


def _check_defined(expr: sp.Basic) -> None:
    if expr.has(*_UNDEFINED):
        raise ExpressionError(
            "expression has an undefined or infinite part (such as 1/(x - x) or log(x - x))"
        )
    if expr.has(sp.I):
        raise ExpressionError("expression is not real (e.g. sqrt(x - x - 1) is sqrt(-1))")
    part = uncompilable_part(expr)
    if part is not None:
        raise ExpressionError(
            f"SymPy rewrites part of it as {type(part).__name__}, which cannot be evaluated "
            "numerically; write it differently"
        )


def parse_condition(
    text: str,
    names: Collection[str],
    *,
    extra_functions: Collection[str] = (),
    integer_names: Collection[str] = (),
    values: Mapping[str, float] | None = None,
) -> sp.Basic:
    """Parse a condition such as ``"abs(m) <= l"`` into a SymPy boolean."""
    if isinstance(text, bool):
        return sp.true if text else sp.false
    tree = parse_tree(text)
    parser = _Parser(names, _allowed_functions(extra_functions), integer_names, values or {})
    condition = parser.condition(tree)
    _check_defined(condition)
    return condition
