"""Safe expression strings: parse them into SymPy, compile SymPy to torch or numpy.

This module is the public face of three parts: :mod:`nsvd_cli.expr_rules` (the whitelist,
limits and :class:`ExpressionError`), :mod:`nsvd_cli.expr_parse` (text -> SymPy without
ever executing the text) and :mod:`nsvd_cli.expr_compile` (SymPy -> numpy/torch functions of
points, with the numeric kernels in :mod:`nsvd_cli.expr_backends`).
"""

from __future__ import annotations

from .expr_compile import compile_numpy, compile_numpy_condition, compile_torch, evaluate_constant
from .expr_parse import parse_condition, parse_expression
from .expr_rules import BASE_FUNCTIONS, CONSTANTS, REFERENCE_FUNCTIONS, ExpressionError

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
