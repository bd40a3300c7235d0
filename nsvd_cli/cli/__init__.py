"""The ``nsvd`` command line (Typer): the entry point. Commands parse arguments, call
``runner``, and print with Rich: ``check`` and ``solve`` in ``cli_solve``; ``eval``,
``export`` and ``reference`` in ``cli_results``; the app, consoles and early exits in
``cli_base``.

Exit codes: 0 success, 1 a run or file that cannot be used (or training that diverged),
2 a bad problem file, bad arguments or a memory bound, 130 / 143 interrupted by SIGINT /
SIGTERM (a checkpoint and an incomplete results.h5 were written; ``--resume`` continues).
"""

from __future__ import annotations

import warnings
from typing import Any

from nsvd_cli.cli.common import app, err
from nsvd_cli.training import distributed

# Imported in the order --help lists the commands; each module registers its own on ``app``.
# isort: off
from nsvd_cli.cli import solve as cli_solve  # noqa: F401
from nsvd_cli.cli import results as cli_results  # noqa: F401
from nsvd_cli.cli import library as cli_library  # noqa: F401
from nsvd_cli.cli import plot as cli_plot  # noqa: F401

# isort: on

__all__ = ["app", "main"]


_shown: set[str] = set()


def _show_warning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    # File warnings (a damaged checkpoint passed over) as one plain line, not a source line;
    # once each (--resume reads the checkpoint for its settings and again for its state).
    text = f"warning: {message}"
    if text not in _shown:
        _shown.add(text)
        err.print(text, highlight=False)


def main() -> None:
    warnings.showwarning = _show_warning
    try:
        app()
    except SystemExit as exc:
        if distributed.joined():  # a torchrun rank: exit without the teardown (see leave)
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            distributed.leave(code)
        raise


if __name__ == "__main__":
    main()
