"""nsvd: eigenpairs of PDE operators with neural networks (NeuralSVD).

The public face for scripts, notebooks and benchmarks::

    import nsvd_cli as nsvd
    problem = nsvd.load_problem("problems/oscillator-1d.yaml")
    settings = nsvd.prepare(problem, steps=2000)
    nsvd.solve(problem, settings, Path("runs/x"), nsvd.resolve_device("auto"))
    report = nsvd.evaluate(nsvd.load_run(Path("runs/x")))  # .to_json() for the CLI's keys
    grids = nsvd.export(run, points=64)                      # functions on grids
    reference = nsvd.grid_reference(problem)                 # d <= 3

Names are imported on first use, so ``import nsvd_cli`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> the module that defines it
_FACE = {
    "load_problem": "nsvd_cli.spec",
    "parse_problem": "nsvd_cli.spec",
    "Problem": "nsvd_cli.spec",
    "ProblemError": "nsvd_cli.spec",
    "prepare": "nsvd_cli.runs",
    "solve": "nsvd_cli.runs",
    "resume_settings": "nsvd_cli.runs",
    "load_run": "nsvd_cli.runs",
    "evaluate": "nsvd_cli.runs",
    "export": "nsvd_cli.runs",
    "grid_reference": "nsvd_cli.runs",
    "Evaluation": "nsvd_cli.kinds",
    "Run": "nsvd_cli.kinds",
    "KINDS": "nsvd_cli.kinds",
    "kind_of": "nsvd_cli.kinds",
    "Settings": "nsvd_cli.training",
    "resolve_device": "nsvd_cli.training",
    "NsvdError": "nsvd_cli.errors",
    "GridReference": "nsvd_cli.files",
    "read_reference": "nsvd_cli.files",
    "reference_eigenvalues": "nsvd_cli.references",
    "init_state": "nsvd_cli.training",
    "train": "nsvd_cli.training",
}

__all__ = [
    "KINDS",
    "Evaluation",
    "GridReference",
    "init_state",
    "read_reference",
    "reference_eigenvalues",
    "train",
    "NsvdError",
    "Problem",
    "ProblemError",
    "Run",
    "Settings",
    "__version__",
    "evaluate",
    "export",
    "grid_reference",
    "kind_of",
    "load_problem",
    "load_run",
    "parse_problem",
    "prepare",
    "resolve_device",
    "resume_settings",
    "solve",
]

if TYPE_CHECKING:
    from nsvd_cli.errors import NsvdError
    from nsvd_cli.files import GridReference, read_reference
    from nsvd_cli.kinds import KINDS, Evaluation, Run, kind_of
    from nsvd_cli.references import reference_eigenvalues
    from nsvd_cli.runs import (
        evaluate,
        export,
        grid_reference,
        load_run,
        prepare,
        resume_settings,
        solve,
    )
    from nsvd_cli.spec import Problem, ProblemError, load_problem, parse_problem
    from nsvd_cli.training import Settings, init_state, resolve_device, train


def __getattr__(name: str) -> Any:
    if name in _FACE:
        return getattr(importlib.import_module(_FACE[name]), name)
    raise AttributeError(f"module 'nsvd_cli' has no attribute {name!r}")
