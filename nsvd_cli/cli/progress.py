"""Rich live view on stderr while training: a progress bar (step, time, loss) above a table of
the current estimate of every mode, with the reference and the relative error when the
problem has one.

Shown when stderr is a terminal. Otherwise (a batch job's log, a pipe) one plain line
every tenth of the run says where it is; ``RUN_DIR/metrics.csv`` has every record.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from nsvd_cli.training.loop import ProgressHook
from nsvd_cli.training.state import TrainState
from nsvd_cli.training.tolerance import IntervalCheck

# A terminal shows this many modes; the rest are summarised in one row.
MAX_ROWS = 24


def _error_style(rel: float) -> str:
    if rel < 1e-3:
        return "green"
    if rel < 1e-2:
        return "yellow"
    return "red"


def estimates_table(
    values: Sequence[float],
    reference: Sequence[float] | None = None,
    symbol: str = "E",
    step: int | None = None,
    max_rows: int = MAX_ROWS,
    check: IntervalCheck | None = None,
) -> Table:
    """The current estimate of each mode (mode order), beside its reference if known, and
    (runs to a tolerance) the relative half-width of its interval at the last check."""
    title = "current estimates" + (f" at step {step}" if step is not None else "")
    if check is not None:
        title += f"; intervals at step {check.step}"
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("mode", justify="right")
    table.add_column(symbol, justify="right")
    if check is not None:
        table.add_column("interval ± (rel.)", justify="right")
    if reference is not None:
        table.add_column("reference", justify="right")
        table.add_column("rel. error", justify="right")
    for i, value in enumerate(values[:max_rows]):
        row = [str(i), f"{value:.8g}"]
        if check is not None:
            width = check.widths[i] if i < len(check.widths) else math.nan
            row.append(f"{width:.2e}" if math.isfinite(width) else "none")
        if reference is not None and i < len(reference):
            ref = float(reference[i])
            rel = abs(value - ref) / abs(ref) if ref != 0 else abs(value)
            shown = f"{rel:.2e}" if math.isfinite(rel) else "-"
            style = _error_style(rel) if math.isfinite(rel) else "red"
            row += [f"{ref:.8g}", f"[{style}]{shown}[/{style}]"]
        elif reference is not None:
            row += ["-", "-"]
        table.add_row(*row)
    if len(values) > max_rows:
        more = len(values) - max_rows
        blanks = (2 if reference is not None else 0) + (check is not None)
        table.add_row("...", f"{more} more", *([""] * blanks))
    return table


def last_check(state: TrainState) -> IntervalCheck | None:
    """The newest interval check in the run's history (every few records)."""
    for snap in reversed(state.history):
        if snap.widths:
            return IntervalCheck(snap.step, snap.widths, snap.residuals)
    return None


def _tolerance_text(state: TrainState) -> str:
    check = last_check(state)
    if check is None:
        return ""
    widest = f"{check.widest:.2g}" if math.isfinite(check.widest) else "none"
    tol = "" if state.tolerance is None else f" (tol {state.tolerance.tol:g})"
    return f", widest interval {widest} at step {check.step}{tol}"


def _silent(state: TrainState, loss: float) -> None:
    pass


def _plain_lines(total: int, symbol: str, console: Console) -> ProgressHook:
    """One line per tenth of the run (and the last step), for logs that are not terminals."""
    every = max(total // 10, 1)
    last = {"step": -1}

    def hook(state: TrainState, loss: float) -> None:
        due = state.step // every > last["step"] // every or state.step == total
        if not due or state.step == last["step"]:
            return
        last["step"] = state.step
        values = state.history[-1].eigenvalues if state.history else []
        shown = ", ".join(f"{v:.6g}" for v in values)  # every mode: a log is read later
        console.print(
            f"step {state.step}/{total} ({100 * state.step // total}%): loss {loss:.5g}, "
            f"{symbol} ~ [{shown}]{_tolerance_text(state)}, {state.elapsed:.0f} s",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )

    return hook


@contextmanager
def training_progress(
    total: int,
    start: int = 0,
    enabled: bool | None = None,
    symbol: str = "E",
    reference: Sequence[float] | None = None,
    console: Console | None = None,
) -> Iterator[ProgressHook]:
    """Yield a hook ``(state, loss) -> None`` for ``train``'s ``on_progress``; ``symbol``
    names the estimates shown (E: eigenvalues, s: singular values), ``reference`` their
    reference values in mode order."""
    console = console or Console(stderr=True)
    show = console.is_terminal if enabled is None else enabled
    if not show:
        yield _plain_lines(total, symbol, console) if enabled is None else _silent
        return
    progress = Progress(
        TextColumn("[bold]training"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("loss {task.fields[loss]}"),
        console=console,
    )
    task = progress.add_task("train", total=total, completed=start, loss="-")
    view = Group(progress, estimates_table([], reference, symbol))
    with Live(view, console=console, refresh_per_second=4, transient=False) as live:

        def hook(state: TrainState, loss: float) -> None:
            progress.update(task, completed=state.step, loss=f"{loss:.5g}")
            # The objective's own reading (eigenvalues, or singular values).
            values = state.history[-1].eigenvalues if state.history else []
            table = estimates_table(
                values, reference, symbol, state.step, check=last_check(state)
            )
            live.update(Group(progress, table))

        yield hook
