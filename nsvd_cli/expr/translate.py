"""A SymPy tree translated into nested closures over torch or numpy arrays (constants folded
to plain scalars); the rules it knows decide what an expression may contain."""

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

Scalar = int | float | bool


class Lazy:
    """A subexpression that depends on the input points; constants stay plain scalars."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn


Node = Scalar | Lazy


RELATIONS: dict[type, Callable[[Any, Any], Any]] = {
    sp.StrictLessThan: operator.lt,
    sp.LessThan: operator.le,
    sp.StrictGreaterThan: operator.gt,
    sp.GreaterThan: operator.ge,
    sp.Equality: operator.eq,
    sp.Unequality: operator.ne,
}


class Compiler:
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

    def _eval(self, node: Node, x: Any) -> Any:
        return node.fn(x) if isinstance(node, Lazy) else node

    def _fold(self, name: str, args: Sequence[Scalar]) -> Scalar:
        with np.errstate(all="ignore"):
            result = NUMPY_FUNCTIONS[name](*args)
        return float(result)

    # -- the walk --------------------------------------------------------------------------

    def build(self, e: sp.Basic) -> Node:
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

    def _symbol(self, e: sp.Symbol) -> Node:
        name = e.name
        if name in self.index:
            i = self.index[name]
            return Lazy(lambda x: x[..., i])
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

    def _nary(self, nodes: list[Node], op: Callable[[Any, Any], Any], unit: int) -> Node:
        constants = [n for n in nodes if not isinstance(n, Lazy)]
        lazies = [n for n in nodes if isinstance(n, Lazy)]
        with np.errstate(all="ignore"):
            constant = reduce(op, [np.float64(c) for c in constants], np.float64(unit))
        constant_value: Scalar = float(constant)
        if float(constant_value).is_integer() and abs(constant_value) <= 2**53:
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

        return Lazy(combined)

    def _pow(self, base: Node, exponent: Node) -> Node:
        if not isinstance(base, Lazy) and not isinstance(exponent, Lazy):
            with np.errstate(all="ignore"):
                return float(np.power(np.float64(base), np.float64(exponent)))
        if not isinstance(exponent, Lazy):
            b = base.fn  # type: ignore[union-attr]
            p = exponent
            if p == 0.5:
                sqrt = torch.sqrt if self.torch else np.sqrt
                return Lazy(lambda x: sqrt(b(x)))
            if p == -0.5:
                if self.torch:
                    return Lazy(lambda x: torch.rsqrt(b(x)))
                return Lazy(lambda x: 1.0 / np.sqrt(b(x)))
            if float(p).is_integer() and abs(p) <= 2**31:
                k = int(p)
                if k == 1:
                    return base
                return Lazy(lambda x: b(x) ** k)
            pf = float(p)
            return Lazy(lambda x: b(x) ** pf)
        e = exponent.fn
        power = torch.pow if self.torch else np.power
        if not isinstance(base, Lazy):
            c = float(base)
            return Lazy(lambda x: power(c, e(x)))
        b2 = base.fn
        return Lazy(lambda x: power(b2(x), e(x)))

    def _piecewise(self, e: sp.Piecewise) -> Node:
        branches: list[tuple[Node, Node]] = []
        default: Node = math.nan
        for value_expr, cond_expr in e.args:
            cond = self.build(cond_expr)
            if not isinstance(cond, Lazy):
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

        return Lazy(piecewise)

    def _relation(self, e: Relational) -> Node:
        op = RELATIONS.get(type(e))
        if op is None:
            raise ExpressionError(f"cannot compile relation {e}")
        lhs, rhs = self.build(e.lhs), self.build(e.rhs)
        if not isinstance(lhs, Lazy) and not isinstance(rhs, Lazy):
            return bool(op(lhs, rhs))

        def relation(x: Any) -> Any:
            return op(self._tensor(self._eval(lhs, x), x), self._eval(rhs, x))

        return Lazy(relation)

    def _logic(self, e: sp.Basic) -> Node:
        is_and = isinstance(e, sp.And)
        nodes = [self.build(a) for a in e.args]
        lazies: list[Lazy] = []
        for node in nodes:
            if isinstance(node, Lazy):
                lazies.append(node)
            elif bool(node) != is_and:
                # A constant False decides an And, a constant True decides an Or.
                return not is_and
        if not lazies:
            return is_and
        combine: Callable[[Any, Any], Any]
        if self.torch:
            combine = torch.logical_and if is_and else torch.logical_or
        else:
            combine = np.logical_and if is_and else np.logical_or
        fns = [n.fn for n in lazies]
        return Lazy(lambda x: reduce(combine, (f(x) for f in fns[1:]), fns[0](x)))

    def _not(self, node: Node) -> Node:
        if not isinstance(node, Lazy):
            return not node
        negate = torch.logical_not if self.torch else np.logical_not
        fn = node.fn
        return Lazy(lambda x: negate(fn(x)))

    def _function(self, e: sp.Basic) -> Node:
        name = type(e).__name__
        args = [self.build(a) for a in e.args]
        if not any(isinstance(a, Lazy) for a in args):
            return self._fold(name, args)  # type: ignore[arg-type]
        if not self.torch:
            impl = NUMPY_FUNCTIONS[name]

            def call_numpy(x: Any) -> Any:
                return impl(*(self._eval(a, x) for a in args))

            return Lazy(call_numpy)
        if name in POLYNOMIALS:
            return self._torch_polynomial(name, args)
        if name not in TORCH_FUNCTIONS:
            raise ExpressionError(f"function {name!r} cannot be compiled to torch")
        impl_t = TORCH_FUNCTIONS[name]

        def call_torch(x: Any) -> Any:
            return impl_t(*(self._tensor(self._eval(a, x), x) for a in args))

        return Lazy(call_torch)

    def _torch_polynomial(self, name: str, args: list[Node]) -> Node:
        *degree_nodes, argument = args
        degrees: list[int] = []
        for node in degree_nodes:
            if isinstance(node, Lazy) or not float(node).is_integer():
                raise ExpressionError(
                    f"{name}(): degrees must be integer constants to compile to torch"
                )
            degrees.append(int(node))
        if degrees[0] < 0:
            raise ExpressionError(f"{name}(): the degree must be >= 0")
        # With constant degrees the argument is lazy: the caller folds all-constant calls.
        fn = argument.fn  # type: ignore[union-attr]
        return Lazy(lambda x: torch_polynomial(name, degrees, fn(x)))


# What Compiler.build knows (besides the functions of NUMPY_FUNCTIONS).
COMPILED_TYPES = (
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
    *RELATIONS,
)


def uncompilable_part(expr: sp.Basic) -> sp.Basic | None:
    """The first subexpression the compiler has no rule for, if any (checked at parse time,
    so that an expression that validates also compiles)."""
    for node in sp.preorder_traversal(expr):
        if not isinstance(node, COMPILED_TYPES) and type(node).__name__ not in NUMPY_FUNCTIONS:
            return node
    return None

