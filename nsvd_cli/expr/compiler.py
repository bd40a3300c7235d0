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

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import sympy as sp
import torch

from nsvd_cli.expr.rules import ExpressionError
from nsvd_cli.expr.translate import Compiler, Lazy, Node, Scalar

__all__ = [
    "compile_numpy",
    "compile_numpy_condition",
    "compile_torch",
    "evaluate_constant",
]


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
) -> tuple[Node, int]:
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
    compiler = Compiler(backend, {n: i for i, n in enumerate(names)}, values)
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
        if isinstance(node, Lazy):
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


def _numpy_wrapper(node: Node, dim: int, dtype: type) -> Callable[[np.ndarray], np.ndarray]:
    def evaluate(x: np.ndarray) -> np.ndarray:
        points = np.asarray(x, dtype=np.float64)
        if points.ndim == 0 or points.shape[-1] != dim:
            raise ValueError(f"expected points with {dim} coordinates, got shape {points.shape}")
        with np.errstate(all="ignore"):
            out = node.fn(points) if isinstance(node, Lazy) else node
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
    if isinstance(node, Lazy):  # pragma: no cover - no variables means nothing is lazy
        raise ExpressionError("expression is not constant")
    return float(node)
