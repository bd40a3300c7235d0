"""The problem file: safe YAML, validated models, errors located by file, line and key.

:mod:`.load` reads and validates a file in two passes (:mod:`.models` for structure,
:mod:`.semantics` for names and expressions); :mod:`.schema` is the JSON Schema of the
models and :mod:`.library` the shipped problems. A problem file never executes code.
"""

from nsvd_cli.spec.load import (
    MAX_FILE_BYTES,
    MAX_STATES,
    BoxDomain,
    Operator,
    Problem,
    ProblemError,
    ProblemIssue,
    Reference,
    RegionDomain,
    Solver,
    load_problem,
    located_error,
    parse_problem,
)
from nsvd_cli.spec.models import GaussianDomain, Network

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_STATES",
    "BoxDomain",
    "GaussianDomain",
    "Network",
    "Operator",
    "Problem",
    "ProblemError",
    "ProblemIssue",
    "Reference",
    "RegionDomain",
    "Solver",
    "load_problem",
    "located_error",
    "parse_problem",
]
