"""Numeric implementations of SymPy functions, by class name, for numpy and torch.

The numpy side uses :mod:`scipy.special` for special functions, evaluated directly rather
than expanded symbolically.  The torch side sticks to differentiable ops (autograd, double
backward, ``torch.func.jvp``), so orthogonal polynomials are built from their recurrences.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import reduce
from typing import Any

import numpy as np
import scipy.special as sps
import torch

__all__ = ["NUMPY_FUNCTIONS", "POLYNOMIALS", "TORCH_FUNCTIONS", "torch_polynomial"]


def _int_degree(value: Any) -> Any:
    # scipy's eval_* polynomials only have integer-degree loops.
    array = np.asarray(value)
    if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        array = array.astype(np.int64)
    return array if array.ndim else array.item()


def _np_heaviside(a: Any, h: Any = 0.5) -> Any:
    return np.heaviside(a, h)


NUMPY_FUNCTIONS: dict[str, Callable[..., Any]] = {
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


TORCH_FUNCTIONS: dict[str, Callable[..., Any]] = {
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

POLYNOMIALS = ("hermite", "laguerre", "assoc_laguerre", "legendre", "assoc_legendre")


def torch_polynomial(name: str, degrees: list[int], t: torch.Tensor) -> torch.Tensor:
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
