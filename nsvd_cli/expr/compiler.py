"""Compilation of SymPy expressions into torch or numpy functions of points.

Compilation does not go through ``lambdify``: its torch printer emits ``max(0, x)`` for
``Max`` and ``heaviside(x, 1/2)`` for ``Heaviside`` (both fail on Python scalars),
``sqrt(2)`` for constants (torch functions reject plain numbers) and lets ``Piecewise``
branches that are constants come out as float32/int64.  Walking the SymPy tree ourselves
folds constants once at compile time, binds parameters without ``subs`` (so SymPy never
auto-expands e.g. ``hermite(n, x)`` for a huge ``n``) and gives one code path for torch and
numpy.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from functools import reduce
from typing import Any

import numpy as np
import sympy as sp
import torch
from sympy.core.relational import Relational
from sympy.functions.elementary.piecewise import ExprCondPair
from sympy.logic.boolalg import BooleanAtom

from nsvd_cli.expr.backends import NUMPY_FUNCTIONS, POLYNOMIALS, TORCH_FUNCTIONS, torch_polynomial
from nsvd_cli.expr.rules import ExpressionError

__all__ = [
    "compile_numpy",
    "compile_numpy_condition",
    "compile_torch",
    "evaluate_constant",
    "uncompilable_part",
]

Scalar = int | float | bool


class _Lazy:
    """A subexpression that depends on the input points; constants stay plain scalars."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn


_Node = Scalar | _Lazy


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
            result = NUMPY_FUNCTIONS[name](*args)
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
        if isinstance(e, sp.ITE):
            # SymPy writes a comparison of a Piecewise, Piecewise((x, x > 0), ...) > 1, as
            # ITE(a, b, c), which is (a & b) | (~a & c).
            a, b, c = e.args
            return self.build(sp.Or(sp.And(a, b), sp.And(sp.Not(a), c)))
        if type(e).__name__ in NUMPY_FUNCTIONS:
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
        args = [self.build(a) for a in e.args]
        if not any(isinstance(a, _Lazy) for a in args):
            return self._fold(name, args)  # type: ignore[arg-type]
        if not self.torch:
            impl = NUMPY_FUNCTIONS[name]

            def call_numpy(x: Any) -> Any:
                return impl(*(self._eval(a, x) for a in args))

            return _Lazy(call_numpy)
        if name in POLYNOMIALS:
            return self._torch_polynomial(name, args)
        if name not in TORCH_FUNCTIONS:
            raise ExpressionError(f"function {name!r} cannot be compiled to torch")
        impl_t = TORCH_FUNCTIONS[name]

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
        # With constant degrees the argument is lazy: the caller folds all-constant calls.
        fn = argument.fn  # type: ignore[union-attr]
        return _Lazy(lambda x: torch_polynomial(name, degrees, fn(x)))


# What _Compiler.build knows (besides the functions of NUMPY_FUNCTIONS).
_COMPILED_TYPES = (
    sp.Symbol,
    sp.Number,
    sp.NumberSymbol,
    BooleanAtom,
    sp.Add,
    sp.Mul,
    sp.Pow,
    sp.Piecewise,
    ExprCondPair,
    sp.And,
    sp.Or,
    sp.Not,
    sp.ITE,
    *_RELATIONS,
)


def uncompilable_part(expr: sp.Basic) -> sp.Basic | None:
    """The first subexpression the compiler has no rule for, if any (checked at parse time,
    so that an expression that validates also compiles)."""
    for node in sp.preorder_traversal(expr):
        if not isinstance(node, _COMPILED_TYPES) and type(node).__name__ not in NUMPY_FUNCTIONS:
            return node
    return None


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
