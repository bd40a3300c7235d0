"""Runs: solve a problem into a run folder, reload it, evaluate and export it.

The steps behind the commands, without printing (:mod:`nsvd_cli.cli` prints). The same path
for every kind of operator: each step asks the problem's or the run's kind.
"""

from nsvd_cli.runs.results import Export, evaluate, export, grid_reference, load_run
from nsvd_cli.runs.solving import prepare, resume_settings, solve

__all__ = [
    "Export",
    "evaluate",
    "export",
    "grid_reference",
    "load_run",
    "prepare",
    "resume_settings",
    "solve",
]
