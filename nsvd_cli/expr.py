"""Safe expression strings: parse them into SymPy, compile SymPy to torch or numpy.

Problem files may come from untrusted sources, so expression text never reaches ``eval``,
``sympify`` or ``parse_expr`` (all of which can execute code).  Instead the text is parsed
with :func:`ast.parse`, every node is checked against a whitelist, and the SymPy expression
is built node by node.  Limits on size, nesting, literals and exponents keep SymPy from
spending unbounded time on exact big-integer arithmetic (``9**9**9**9``).

Compilation does not go through ``lambdify``: its torch printer emits ``max(0, x)`` for
``Max`` and ``heaviside(x, 1/2)`` for ``Heaviside`` (both fail on Python scalars),
``sqrt(2)`` for constants (torch functions reject plain numbers) and lets ``Piecewise``
branches that are constants come out as float32/int64.  Walking the SymPy tree ourselves
folds constants once at compile time, binds parameters without ``subs`` (so SymPy never
auto-expands e.g. ``hermite(n, x)`` for a huge ``n``) and gives one code path for torch and
numpy.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Collection, Mapping, Sequence
from functools import reduce
from typing import Any

import numpy as np
import scipy.special as sps
import sympy as sp
import torch
from sympy.core.relational import Relational

__all__ = [
    "BASE_FUNCTIONS",
    "CONSTANTS",
    "REFERENCE_FUNCTIONS",
    "ExpressionError",
    "compile_numpy",
    "compile_numpy_condition",
    "compile_torch",
    "evaluate_constant",
    "parse_condition",
    "parse_expression",
]

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

_SYMPY_FUNCTIONS: dict[str, Callable[..., Any]] = {
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

# (fewest, most) positional arguments.
_ARITY: dict[str, tuple[int, int]] = {
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

# Arguments whose literal value is capped by MAX_SPECIAL_ARGUMENT (indices).
_CAPPED_ARGUMENTS: dict[str, tuple[int, ...]] = {
    "factorial": (0,),
    "binomial": (0, 1),
    "hermite": (0,),
    "laguerre": (0,),
    "assoc_laguerre": (0, 1),
    "legendre": (0,),
    "assoc_legendre": (0, 1),
}


class ExpressionError(ValueError):
    """An expression string is not acceptable; the message is one human-readable line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------

# Operators that chain on a left spine (a + b - c, a * b / c % d).
_GROUPS: dict[type[ast.operator], str] = {
    ast.Add: "sum",
    ast.Sub: "sum",
    ast.Mult: "product",
    ast.Div: "product",
    ast.Mod: "product",
}

_COMPARISONS: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Lt: sp.Lt,
    ast.LtE: sp.Le,
    ast.Gt: sp.Gt,
    ast.GtE: sp.Ge,
    ast.Eq: sp.Eq,
    ast.NotEq: sp.Ne,
}

# Float evaluation of constant subtrees: only what is needed to bound magnitudes.
_FLOAT_FUNCTIONS: dict[str, Callable[..., float]] = {
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


def _describe(node: ast.AST) -> str:
    kinds: dict[type[ast.AST], str] = {
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
    return kinds.get(type(node), type(node).__name__)


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
        self.symbols: dict[str, sp.Symbol] = {}
        integers = set(integer_names)
        for name in self.names:
            if name in integers:
                self.symbols[name] = sp.Symbol(name, integer=True)
            else:
                self.symbols[name] = sp.Symbol(name, real=True)
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
        if name in self.functions or name in _SYMPY_FUNCTIONS:
            raise ExpressionError(f"'{name}' is a function; call it like {name}(...)")
        allowed = ", ".join([*self.names, *CONSTANTS])
        raise ExpressionError(f"unknown name {name!r} (allowed: {allowed})")

    def _binop(self, node: ast.BinOp, in_exponent: bool) -> tuple[Any, float | None]:
        if isinstance(node.op, ast.Pow):
            return self._pow(node, in_exponent)
        group = _GROUPS.get(type(node.op))
        if group is None:
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")
        # Sums and products of many terms parse as a long left spine; walk it in a loop
        # and hand SymPy all terms at once (adding one term at a time is quadratic).
        spine: list[tuple[ast.operator, ast.expr]] = []
        head: ast.expr = node
        while isinstance(head, ast.BinOp) and _GROUPS.get(type(head.op)) == group:
            spine.append((head.op, head.right))
            head = head.left
        first, value = self.value(head, in_exponent)
        items = [first]
        for op, operand in reversed(spine):
            item, item_value = self.value(operand, in_exponent)
            if isinstance(op, ast.Add):
                value = _float_op(operator.add, value, item_value)
            elif isinstance(op, ast.Sub):
                item = -item
                value = _float_op(operator.sub, value, item_value)
            elif isinstance(op, ast.Mult):
                value = _float_op(operator.mul, value, item_value)
            else:
                if item_value == 0.0:
                    raise ExpressionError("division by zero")
                if isinstance(op, ast.Div):
                    item = _sympy_call(operator.pow, item, -1)
                    value = _float_op(operator.truediv, value, item_value)
                else:
                    # Mod is not associative with products: fold what we have so far.
                    items = [_sympy_call(sp.Mod, _sympy_call(sp.Mul, *items), item)]
                    value = _float_op(math.fmod, value, item_value)
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
        value = _float_op(operator.pow, base_value, exponent_value)
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
            if name in _SYMPY_FUNCTIONS:
                raise ExpressionError(f"function '{name}' is not allowed here (allowed: {allowed})")
            raise ExpressionError(f"unknown function {name!r} (allowed: {allowed})")
        if node.keywords:
            raise ExpressionError(f"{name}(): keyword arguments are not allowed")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise ExpressionError(f"{name}(): '*' unpacking is not allowed")
        low, high = _ARITY.get(name, (1, 1))
        if not low <= len(node.args) <= high:
            expected = str(low) if low == high else f"{low} to {high}"
            raise ExpressionError(
                f"{name}() takes {expected} argument{'s' if high > 1 else ''}, got {len(node.args)}"
            )
        if name == "Piecewise":
            return self._piecewise(node, in_exponent)
        args = [self.value(a, in_exponent) for a in node.args]
        for index in _CAPPED_ARGUMENTS.get(name, ()):
            arg, value = args[index]
            if value is None and not arg.free_symbols:
                raise ExpressionError(f"{name}(): cannot bound the constant argument {arg}")
            if value is not None and abs(value) > MAX_SPECIAL_ARGUMENT:
                raise ExpressionError(
                    f"{name}(): argument {value:g} is too large (limit {MAX_SPECIAL_ARGUMENT})"
                )
        values = [v for _, v in args]
        value: float | None = None
        if name in _FLOAT_FUNCTIONS and all(v is not None for v in values):
            value = _float_call(_FLOAT_FUNCTIONS[name], values)
        return _sympy_call(_SYMPY_FUNCTIONS[name], *(a for a, _ in args)), value

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


def _float_op(op: Callable[[Any, Any], Any], a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return _float_call(op, [a, b])


def _float_call(fn: Callable[..., Any], args: Sequence[float | None]) -> float | None:
    try:
        result = fn(*args)
    except OverflowError:
        raise ExpressionError("a constant subexpression is too large for float64") from None
    except ZeroDivisionError:
        raise ExpressionError("division by zero") from None
    except ValueError:
        # sqrt(-1), log(0): refused rather than left to SymPy, whose complex/infinite
        # results would also escape the magnitude bounds above.
        raise ExpressionError("a constant subexpression is undefined or not real") from None
    except TypeError:
        return None
    if isinstance(result, complex) or math.isnan(float(result)):
        raise ExpressionError("a constant subexpression is undefined or not real")
    result = float(result)
    if math.isinf(result):
        raise ExpressionError("a constant subexpression is too large for float64")
    return result


def _sympy_call(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except (TypeError, ValueError, AttributeError, ZeroDivisionError) as error:
        raise ExpressionError(f"invalid expression: {error}") from None


def _check_tree(tree: ast.AST) -> None:
    """Bound size and nesting before the recursive translation walks the tree."""
    count = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, ast.expr):
            count += 1
        if count > MAX_NODES:
            raise ExpressionError(f"expression is too large (more than {MAX_NODES} terms)")
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression is nested too deeply (limit {MAX_DEPTH})")
        for child in ast.iter_child_nodes(node):
            # A long sum or product is one level (it is walked in a loop), not many.
            same_chain = (
                isinstance(node, ast.BinOp)
                and child is node.left
                and isinstance(child, ast.BinOp)
                and _GROUPS.get(type(child.op)) is not None
                and _GROUPS.get(type(child.op)) == _GROUPS.get(type(node.op))
            )
            stack.append((child, depth if same_chain else depth + 1))


def _parse_tree(text: str) -> ast.expr:
    if not isinstance(text, str):
        raise ExpressionError(f"expected an expression string, got {type(text).__name__}")
    if len(text) > MAX_TEXT_LENGTH:
        raise ExpressionError(
            f"expression is too long ({len(text)} characters, limit {MAX_TEXT_LENGTH})"
        )
    if not text.strip():
        raise ExpressionError("expression is empty")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        where = f" at column {error.offset}" if error.offset else ""
        raise ExpressionError(f"syntax error{where}: {error.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise ExpressionError("expression is too complex to parse") from None
    _check_tree(tree)
    return tree.body


def _allowed_functions(extra_functions: Collection[str]) -> list[str]:
    unknown = [f for f in extra_functions if f not in _SYMPY_FUNCTIONS]
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
        tree = _parse_tree(text)
    parser = _Parser(names, _allowed_functions(extra_functions), integer_names, values or {})
    expr, _ = parser.value(tree)
    if not isinstance(expr, sp.Expr):
        raise ExpressionError("expected a numeric expression")
    return expr


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
    tree = _parse_tree(text)
    parser = _Parser(names, _allowed_functions(extra_functions), integer_names, values or {})
    return parser.condition(tree)


# --------------------------------------------------------------------------------------
# Compilation
# --------------------------------------------------------------------------------------

Scalar = int | float | bool


class _Lazy:
    """A subexpression that depends on the input points; constants stay plain scalars."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn


_Node = Scalar | _Lazy


def _int_degree(value: Any) -> Any:
    # scipy's eval_* polynomials only have integer-degree loops.
    array = np.asarray(value)
    if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        array = array.astype(np.int64)
    return array if array.ndim else array.item()


def _np_heaviside(a: Any, h: Any = 0.5) -> Any:
    return np.heaviside(a, h)


_NUMPY: dict[str, Callable[..., Any]] = {
    "exp": np.exp,
    "log": np.log,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "tanh": np.tanh,
    "cosh": np.cosh,
    "sinh": np.sinh,
    "asin": np.arcsin,
    "acos": np.arccos,
    "atan": np.arctan,
    "asinh": np.arcsinh,
    "acosh": np.arccosh,
    "atanh": np.arctanh,
    "atan2": np.arctan2,
    "Abs": np.abs,
    "sign": np.sign,
    "erf": sps.erf,
    "erfc": sps.erfc,
    "Max": lambda *a: reduce(np.maximum, a),
    "Min": lambda *a: reduce(np.minimum, a),
    "Heaviside": _np_heaviside,
    "Mod": np.mod,
    "floor": np.floor,
    "ceiling": np.ceil,
    "gamma": sps.gamma,
    "factorial": lambda n: sps.gamma(np.asarray(n, dtype=float) + 1.0),
    "binomial": sps.binom,
    "hermite": lambda n, t: sps.eval_hermite(_int_degree(n), t),
    "laguerre": lambda n, t: sps.eval_laguerre(_int_degree(n), t),
    "assoc_laguerre": lambda n, a, t: sps.eval_genlaguerre(_int_degree(n), a, t),
    "legendre": lambda n, t: sps.eval_legendre(_int_degree(n), t),
    "assoc_legendre": lambda n, m, t: sps.lpmv(m, n, t),
    "besselj": sps.jv,
}


def _lgamma_exp(t: torch.Tensor) -> torch.Tensor:
    return torch.exp(torch.lgamma(t))


def _torch_heaviside(a: torch.Tensor, h: Any = 0.5) -> torch.Tensor:
    # torch.heaviside has no derivative formula; this piecewise-constant version has zero.
    h_t = torch.as_tensor(h, dtype=a.dtype, device=a.device)
    return torch.where(a > 0, torch.ones_like(a), torch.where(a < 0, torch.zeros_like(a), h_t))


_TORCH: dict[str, Callable[..., Any]] = {
    "exp": torch.exp,
    "log": torch.log,
    "sin": torch.sin,
    "cos": torch.cos,
    "tan": torch.tan,
    "tanh": torch.tanh,
    "cosh": torch.cosh,
    "sinh": torch.sinh,
    "asin": torch.asin,
    "acos": torch.acos,
    "atan": torch.atan,
    "asinh": torch.asinh,
    "acosh": torch.acosh,
    "atanh": torch.atanh,
    "atan2": torch.atan2,
    "Abs": torch.abs,
    "sign": torch.sign,
    "erf": torch.special.erf,
    "erfc": torch.special.erfc,
    "Max": lambda *a: reduce(torch.maximum, a),
    "Min": lambda *a: reduce(torch.minimum, a),
    "Heaviside": _torch_heaviside,
    "Mod": torch.remainder,
    "floor": torch.floor,
    "ceiling": torch.ceil,
    "gamma": _lgamma_exp,
    "factorial": lambda n: _lgamma_exp(n + 1.0),
    "binomial": lambda n, k: torch.exp(
        torch.lgamma(n + 1.0) - torch.lgamma(k + 1.0) - torch.lgamma(n - k + 1.0)
    ),
}

_POLYNOMIALS = ("hermite", "laguerre", "assoc_laguerre", "legendre", "assoc_legendre")


def _torch_polynomial(name: str, degrees: list[int], t: torch.Tensor) -> torch.Tensor:
    """Classical orthogonal polynomials by their three-term recurrences (autograd-friendly)."""
    one = torch.ones_like(t)
    if name == "hermite":
        (n,) = degrees
        prev, cur = one, 2.0 * t
        if n == 0:
            return one
        for k in range(1, n):
            prev, cur = cur, 2.0 * t * cur - 2.0 * k * prev
        return cur
    if name in ("laguerre", "assoc_laguerre"):
        n = degrees[0]
        alpha = float(degrees[1]) if name == "assoc_laguerre" else 0.0
        prev, cur = one, 1.0 + alpha - t
        if n == 0:
            return one
        for k in range(1, n):
            prev, cur = cur, ((2 * k + 1 + alpha - t) * cur - (k + alpha) * prev) / (k + 1)
        return cur
    if name == "legendre":
        (n,) = degrees
        prev, cur = one, t
        if n == 0:
            return one
        for k in range(1, n):
            prev, cur = cur, ((2 * k + 1) * t * cur - k * prev) / (k + 1)
        return cur
    n, m = degrees
    factor = 1.0
    if m < 0:
        # P_n^{-m} = (-1)^m (n-m)!/(n+m)! P_n^m, the convention SymPy and scipy share.
        m = -m
        factor = (-1) ** m * math.exp(math.lgamma(n - m + 1) - math.lgamma(n + m + 1))
    if m > n:
        return torch.zeros_like(t)
    double_factorial = math.prod(range(1, 2 * m, 2))
    p_mm = (-1) ** m * double_factorial * torch.sqrt(1.0 - t * t) ** m
    if n == m:
        return factor * p_mm
    prev, cur = p_mm, (2 * m + 1) * t * p_mm
    for k in range(m + 1, n):
        prev, cur = cur, ((2 * k + 1) * t * cur - (k + m) * prev) / (k - m + 1)
    return factor * cur


_RELATIONS: dict[type, Callable[[Any, Any], Any]] = {
    sp.StrictLessThan: operator.lt,
    sp.LessThan: operator.le,
    sp.StrictGreaterThan: operator.gt,
    sp.GreaterThan: operator.ge,
    sp.Equality: operator.eq,
    sp.Unequality: operator.ne,
}


class _Compiler:
    """Turns a SymPy tree into nested closures over torch or numpy arrays."""

    def __init__(self, backend: str, index: Mapping[str, int], values: Mapping[str, Scalar]):
        self.torch = backend == "torch"
        self.index = dict(index)
        self.values = dict(values)

    # -- helpers -------------------------------------------------------------------------

    def _tensor(self, value: Any, x: Any) -> Any:
        """Scalars become arrays where the backend function refuses plain numbers."""
        if self.torch and not isinstance(value, torch.Tensor):
            return torch.as_tensor(value, dtype=x.dtype, device=x.device)
        return value

    def _eval(self, node: _Node, x: Any) -> Any:
        return node.fn(x) if isinstance(node, _Lazy) else node

    def _fold(self, name: str, args: Sequence[Scalar]) -> Scalar:
        with np.errstate(all="ignore"):
            result = _NUMPY[name](*args)
        return float(result)

    # -- the walk --------------------------------------------------------------------------

    def build(self, e: sp.Basic) -> _Node:
        if isinstance(e, sp.Symbol):
            return self._symbol(e)
        if isinstance(e, (sp.Number, sp.NumberSymbol)):
            return self._number(e)
        if e is sp.true or e is sp.false:
            return bool(e)
        if isinstance(e, sp.Add):
            return self._nary([self.build(a) for a in e.args], operator.add, 0)
        if isinstance(e, sp.Mul):
            return self._nary([self.build(a) for a in e.args], operator.mul, 1)
        if isinstance(e, sp.Pow):
            return self._pow(self.build(e.base), self.build(e.exp))
        if isinstance(e, sp.Piecewise):
            return self._piecewise(e)
        if isinstance(e, Relational):
            return self._relation(e)
        if isinstance(e, (sp.And, sp.Or)):
            return self._logic(e)
        if isinstance(e, sp.Not):
            return self._not(self.build(e.args[0]))
        if type(e).__name__ in _NUMPY:
            # Max/Min are not sp.Function subclasses, so dispatch on the class name.
            return self._function(e)
        raise ExpressionError(f"cannot compile {type(e).__name__}: {e}")

    def _symbol(self, e: sp.Symbol) -> _Node:
        name = e.name
        if name in self.index:
            i = self.index[name]
            return _Lazy(lambda x: x[..., i])
        if name in self.values:
            return self.values[name]
        allowed = ", ".join([*self.index, *self.values])
        raise ExpressionError(f"unknown name {name!r} (allowed: {allowed})")

    def _number(self, e: sp.Basic) -> Scalar:
        if isinstance(e, sp.Integer) and abs(int(e)) <= 2**53:
            # Keep small integers exact: they become integer powers (valid for x < 0).
            return int(e)
        if e is sp.zoo or e is sp.oo:
            return math.inf
        if e is sp.nan:
            return math.nan
        if e is sp.I:
            raise ExpressionError("expression is not real (contains the imaginary unit)")
        try:
            return float(e)
        except OverflowError:
            return math.inf if e > 0 else -math.inf

    def _nary(self, nodes: list[_Node], op: Callable[[Any, Any], Any], unit: int) -> _Node:
        constants = [n for n in nodes if not isinstance(n, _Lazy)]
        lazies = [n for n in nodes if isinstance(n, _Lazy)]
        with np.errstate(all="ignore"):
            constant = reduce(op, [np.float64(c) for c in constants], np.float64(unit))
        constant_value: Scalar = float(constant)
        if constant_value.is_integer() and abs(constant_value) <= 2**53:
            constant_value = int(constant_value)
        if not lazies:
            return constant_value
        fns = [n.fn for n in lazies]
        first, rest = fns[0], fns[1:]
        if constant_value == unit:

            def combined(x: Any) -> Any:
                return reduce(op, (f(x) for f in rest), first(x))

        else:

            def combined(x: Any) -> Any:
                return reduce(op, (f(x) for f in fns), constant_value)

        return _Lazy(combined)

    def _pow(self, base: _Node, exponent: _Node) -> _Node:
        if not isinstance(base, _Lazy) and not isinstance(exponent, _Lazy):
            with np.errstate(all="ignore"):
                return float(np.power(np.float64(base), np.float64(exponent)))
        if not isinstance(exponent, _Lazy):
            b = base.fn  # type: ignore[union-attr]
            p = exponent
            if p == 0.5:
                sqrt = torch.sqrt if self.torch else np.sqrt
                return _Lazy(lambda x: sqrt(b(x)))
            if p == -0.5:
                if self.torch:
                    return _Lazy(lambda x: torch.rsqrt(b(x)))
                return _Lazy(lambda x: 1.0 / np.sqrt(b(x)))
            if float(p).is_integer() and abs(p) <= 2**31:
                k = int(p)
                if k == 1:
                    return base
                return _Lazy(lambda x: b(x) ** k)
            pf = float(p)
            return _Lazy(lambda x: b(x) ** pf)
        e = exponent.fn
        power = torch.pow if self.torch else np.power
        if not isinstance(base, _Lazy):
            c = float(base)
            return _Lazy(lambda x: power(c, e(x)))
        b2 = base.fn
        return _Lazy(lambda x: power(b2(x), e(x)))

    def _piecewise(self, e: sp.Piecewise) -> _Node:
        branches: list[tuple[_Node, _Node]] = []
        default: _Node = math.nan
        for value_expr, cond_expr in e.args:
            cond = self.build(cond_expr)
            if not isinstance(cond, _Lazy):
                if cond:
                    default = self.build(value_expr)
                    break
                continue
            branches.append((self.build(value_expr), cond))
        if not branches:
            return default
        where = torch.where if self.torch else np.where
        otherwise = default

        def piecewise(x: Any) -> Any:
            result = self._tensor(self._eval(otherwise, x), x)
            for value, cond in reversed(branches):
                result = where(cond.fn(x), self._tensor(self._eval(value, x), x), result)  # type: ignore[union-attr]
            return result

        return _Lazy(piecewise)

    def _relation(self, e: Relational) -> _Node:
        op = _RELATIONS.get(type(e))
        if op is None:
            raise ExpressionError(f"cannot compile relation {e}")
        lhs, rhs = self.build(e.lhs), self.build(e.rhs)
        if not isinstance(lhs, _Lazy) and not isinstance(rhs, _Lazy):
            return bool(op(lhs, rhs))

        def relation(x: Any) -> Any:
            return op(self._tensor(self._eval(lhs, x), x), self._eval(rhs, x))

        return _Lazy(relation)

    def _logic(self, e: sp.Basic) -> _Node:
        is_and = isinstance(e, sp.And)
        nodes = [self.build(a) for a in e.args]
        lazies: list[_Lazy] = []
        for node in nodes:
            if isinstance(node, _Lazy):
                lazies.append(node)
            elif bool(node) != is_and:
                # A constant False decides an And, a constant True decides an Or.
                return not is_and
        if not lazies:
            return is_and
        if self.torch:
            combine = torch.logical_and if is_and else torch.logical_or
        else:
            combine = np.logical_and if is_and else np.logical_or
        fns = [n.fn for n in lazies]
        return _Lazy(lambda x: reduce(combine, (f(x) for f in fns[1:]), fns[0](x)))

    def _not(self, node: _Node) -> _Node:
        if not isinstance(node, _Lazy):
            return not node
        negate = torch.logical_not if self.torch else np.logical_not
        fn = node.fn
        return _Lazy(lambda x: negate(fn(x)))

    def _function(self, e: sp.Basic) -> _Node:
        name = type(e).__name__
        if name not in _NUMPY:
            raise ExpressionError(f"cannot compile function {name!r}")
        args = [self.build(a) for a in e.args]
        if not any(isinstance(a, _Lazy) for a in args):
            return self._fold(name, args)  # type: ignore[arg-type]
        if not self.torch:
            impl = _NUMPY[name]

            def call_numpy(x: Any) -> Any:
                return impl(*(self._eval(a, x) for a in args))

            return _Lazy(call_numpy)
        if name in _POLYNOMIALS:
            return self._torch_polynomial(name, args)
        if name not in _TORCH:
            raise ExpressionError(f"function {name!r} cannot be compiled to torch")
        impl_t = _TORCH[name]

        def call_torch(x: Any) -> Any:
            return impl_t(*(self._tensor(self._eval(a, x), x) for a in args))

        return _Lazy(call_torch)

    def _torch_polynomial(self, name: str, args: list[_Node]) -> _Node:
        *degree_nodes, argument = args
        degrees: list[int] = []
        for node in degree_nodes:
            if isinstance(node, _Lazy) or not float(node).is_integer():
                raise ExpressionError(
                    f"{name}(): degrees must be integer constants to compile to torch"
                )
            degrees.append(int(node))
        if degrees[0] < 0:
            raise ExpressionError(f"{name}(): the degree must be >= 0")
        if not isinstance(argument, _Lazy):  # pragma: no cover - folded by the caller
            return self._fold(name, args)  # type: ignore[arg-type]
        fn = argument.fn
        return _Lazy(lambda x: _torch_polynomial(name, degrees, fn(x)))


def _names_of(variables: Sequence[sp.Symbol | str]) -> list[str]:
    names = [v.name if isinstance(v, sp.Symbol) else str(v) for v in variables]
    if len(set(names)) != len(names):
        raise ValueError(f"variables must be distinct, got {names}")
    return names


def _compile(
    expr: sp.Basic,
    variables: Sequence[sp.Symbol | str],
    parameters: Mapping[str, Scalar] | None,
    backend: str,
) -> tuple[_Node, int]:
    names = _names_of(variables)
    values = dict(parameters or {})
    clash = [n for n in names if n in values]
    if clash:
        raise ValueError(f"names are both variables and parameters: {', '.join(clash)}")
    if isinstance(expr, bool) or not isinstance(expr, (sp.Basic, int, float)):
        # Never sympify arbitrary objects: strings would go through eval.
        raise TypeError(f"expected a SymPy expression, got {type(expr).__name__}")
    if isinstance(expr, int):
        expr = sp.Integer(expr)
    elif isinstance(expr, float):
        expr = sp.Float(expr)
    compiler = _Compiler(backend, {n: i for i, n in enumerate(names)}, values)
    return compiler.build(expr), len(names)


def compile_torch(
    expr: sp.Basic,
    variables: Sequence[sp.Symbol | str],
    parameters: Mapping[str, float] | None = None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Compile ``expr`` into a torch function of points.

    The function maps ``x`` of shape ``(..., d)`` (``x[..., i]`` is ``variables[i]``) to a
    tensor of shape ``(...)`` with ``x``'s dtype and device; ``(B, d) -> (B,)`` in the usual
    case.  ``parameters`` are bound as constants.  Symbols match by name, so symbols with
    different assumptions still line up.  Everything is made of differentiable torch ops
    (autograd, double backward and ``torch.func.jvp``); constants are tied to ``x`` by
    ``0 * x[..., 0]`` so that gradients of a constant expression are zeros, not errors.
    Non-finite values (``-1/r`` at ``r = 0``) are returned as they are.
    """
    node, dim = _compile(expr, variables, parameters, "torch")

    def evaluate(x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != dim:
            raise ValueError(f"expected points with {dim} coordinates, got shape {tuple(x.shape)}")
        if isinstance(node, _Lazy):
            out = node.fn(x)
            if not isinstance(out, torch.Tensor):
                out = torch.as_tensor(out, dtype=x.dtype, device=x.device)
            if out.dtype != x.dtype:
                out = out.to(x.dtype)
            if out.shape != x.shape[:-1]:
                out = out.expand(x.shape[:-1])
            if x.requires_grad and not out.requires_grad and dim > 0:
                # Piecewise with constant branches: keep the graph so gradients are zeros.
                out = out + x[..., 0] * 0.0
            return out
        if dim == 0:
            return torch.full(x.shape[:-1], float(node), dtype=x.dtype, device=x.device)
        return x[..., 0] * 0.0 + float(node)

    return evaluate


def _numpy_wrapper(node: _Node, dim: int, dtype: type) -> Callable[[np.ndarray], np.ndarray]:
    def evaluate(x: np.ndarray) -> np.ndarray:
        points = np.asarray(x, dtype=np.float64)
        if points.ndim == 0 or points.shape[-1] != dim:
            raise ValueError(f"expected points with {dim} coordinates, got shape {points.shape}")
        with np.errstate(all="ignore"):
            out = node.fn(points) if isinstance(node, _Lazy) else node
        out = np.broadcast_to(np.asarray(out, dtype=dtype), points.shape[:-1])
        return np.array(out, dtype=dtype)

    return evaluate


def compile_numpy(
    expr: sp.Basic,
    variables: Sequence[sp.Symbol | str],
    parameters: Mapping[str, float] | None = None,
) -> Callable[[np.ndarray], np.ndarray]:
    """Compile ``expr`` into a float64 numpy function ``(..., d) -> (...)``.

    Special functions go through :mod:`scipy.special` (``besselj`` -> ``jv``, ``hermite`` ->
    ``eval_hermite``, ...), evaluated directly rather than expanded symbolically, so bound
    quantum numbers (``parameters``) never make SymPy build huge polynomials.
    """
    node, dim = _compile(expr, variables, parameters, "numpy")
    return _numpy_wrapper(node, dim, np.float64)


def compile_numpy_condition(
    condition: sp.Basic,
    variables: Sequence[sp.Symbol | str],
    parameters: Mapping[str, float] | None = None,
) -> Callable[[np.ndarray], np.ndarray]:
    """Like :func:`compile_numpy` for a condition; the function returns a boolean array."""
    node, dim = _compile(condition, variables, parameters, "numpy")
    return _numpy_wrapper(node, dim, np.bool_)


def evaluate_constant(expr: sp.Basic, parameters: Mapping[str, float] | None = None) -> float:
    """The value of an expression without coordinates, e.g. ``hbar**2/2``."""
    if isinstance(expr, sp.Basic):
        missing = sorted(s.name for s in expr.free_symbols if s.name not in (parameters or {}))
        if missing:
            raise ExpressionError(f"expected a constant, but it uses {', '.join(missing)}")
    node, _ = _compile(expr, [], parameters, "numpy")
    if isinstance(node, _Lazy):  # pragma: no cover - no variables means nothing is lazy
        raise ExpressionError("expression is not constant")
    return float(node)
