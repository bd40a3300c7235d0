"""Safe expression strings: parse them into SymPy, compile SymPy to torch or numpy.

This module is the public face of three parts: :mod:`nsvd_cli.expr.rules` (the whitelist,
limits and :class:`ExpressionError`), :mod:`nsvd_cli.expr.parse` (text -> SymPy without
ever executing the text) and :mod:`nsvd_cli.expr.compiler` (SymPy -> numpy/torch functions of
points, with the numeric kernels in :mod:`nsvd_cli.expr.backends`).
"""

from __future__ import annotations

from nsvd_cli.expr.compiler import (
    compile_numpy,
    compile_numpy_condition,
    compile_torch,
    evaluate_constant,
)
from nsvd_cli.expr.parse import parse_condition, parse_expression
from nsvd_cli.expr.rules import BASE_FUNCTIONS, CONSTANTS, REFERENCE_FUNCTIONS, ExpressionError

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
