"""Rich progress on stderr while training: step, loss, time, current eigenvalue estimates.

Shown only when stderr is a terminal; otherwise silent, so logs and pipes stay clean.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .train import TrainState


def _estimates(values: list[float], symbol: str = "E", shown: int = 4) -> str:
    if not values:
        return ""
    head = ", ".join(f"{v:.6g}" for v in values[:shown])
    more = f", ... ({len(values)} modes)" if len(values) > shown else ""
    return f"{symbol} ~ [{head}{more}]"


@contextmanager
def training_progress(
    total: int, start: int = 0, enabled: bool | None = None, symbol: str = "E"
) -> Iterator:
    """Yield a hook ``(state, loss) -> None`` for ``train``'s ``on_progress``; ``symbol``
    names the estimates shown (E: eigenvalues, s: singular values)."""
    console = Console(stderr=True)
    show = console.is_terminal if enabled is None else enabled
    if not show:
        yield lambda state, loss: None
        return
    progress = Progress(
        TextColumn("[bold]training"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[estimates]}"),
        console=console,
        transient=False,
    )
    with progress:
        task = progress.add_task("train", total=total, completed=start, loss="-", estimates="")

        def hook(state: TrainState, loss: float) -> None:
            progress.update(
                task,
                completed=state.step,
                loss=f"{loss:.5g}",
                # The objective's own reading (eigenvalues, or singular values).
                estimates=_estimates(
                    state.history[-1].eigenvalues if state.history else [], symbol
                ),
            )

        yield hook
