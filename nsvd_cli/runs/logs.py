"""Training logs beside a run's results: ``RUN_DIR/metrics.csv`` (always) and TensorBoard
event files under ``RUN_DIR/tensorboard/`` (optional; needs the ``tensorboard`` package).

Both are progress hooks ``(state, loss) -> None``, called on rank 0 each time the loop
records a snapshot. The CSV is rewritten from the state's history on its first call and
after a roll-back, and appended to otherwise, so a resumed or rolled-back run's log holds
exactly the steps of its history (a line cut by a crash is gone after ``--resume``).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Protocol

from nsvd_cli.errors import RunFileError
from nsvd_cli.files.atomic import atomic_path
from nsvd_cli.files.run_folder import METRICS_NAME, TENSORBOARD_DIR
from nsvd_cli.training.state import Snapshot, TrainState


class TrainingLog(Protocol):
    def __call__(self, state: TrainState, loss: float) -> None: ...

    def close(self) -> None: ...


def metrics_header(modes: int, symbol: str, checks: bool = False) -> list[str]:
    """Columns: step, loss, learning rate, operator shift, seconds, then one per mode; a run
    to a tolerance adds each mode's interval half-width (relative) and residual, filled at
    the steps it checked them (nan elsewhere)."""
    columns = ["step", "loss", "learning_rate", "shift", "elapsed_s"]
    columns += [f"{symbol}_{i}" for i in range(modes)]
    if checks:
        columns += [f"width_{i}" for i in range(modes)] + [f"residual_{i}" for i in range(modes)]
    return columns


def _padded(values: list[float], modes: int) -> list[float]:
    return (list(values) + [math.nan] * modes)[:modes]


def _row(snapshot: Snapshot, modes: int, checks: bool) -> list[str]:
    numbers = [snapshot.loss, snapshot.learning_rate, snapshot.shift, snapshot.elapsed]
    numbers += _padded(snapshot.eigenvalues, modes)
    if checks:
        numbers += _padded(snapshot.widths, modes) + _padded(snapshot.residuals, modes)
    return [str(snapshot.step)] + [repr(float(v)) for v in numbers]


class MetricsCsv:
    """``RUN_DIR/metrics.csv``: one row per recorded step (every 100 steps, and the last)."""

    def __init__(self, run_dir: Path, modes: int, symbol: str = "E", checks: bool = False) -> None:
        self.path = run_dir / METRICS_NAME
        self.modes = modes
        self.checks = checks
        self.header = metrics_header(modes, symbol, checks)
        self._steps: list[int] | None = None  # the steps in the file, None before the first

    def __call__(self, state: TrainState, loss: float) -> None:
        history = state.history
        steps = [s.step for s in history]
        if self._steps is not None and steps[:-1] == self._steps:
            with open(self.path, "a", newline="") as f:
                csv.writer(f).writerow(_row(history[-1], self.modes, self.checks))
        else:  # the first call (fresh or resumed) or after a roll-back shortened the history
            text = io.StringIO()
            writer = csv.writer(text)
            writer.writerow(self.header)
            writer.writerows(_row(s, self.modes, self.checks) for s in history)
            with atomic_path(self.path, durable=False) as tmp:
                tmp.write_text(text.getvalue())
        self._steps = steps

    def close(self) -> None:
        pass


def read_metrics(path: Path) -> dict[str, list[float]]:
    """The columns of a metrics.csv (for plots and tests)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    return {name: [float(r[i]) for r in body] for i, name in enumerate(header)}


def tensorboard_available() -> bool:
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


class TensorBoardLog:
    """Scalars ``loss``, ``learning_rate``, ``shift`` and ``{symbol}/{mode}`` per record."""

    def __init__(self, run_dir: Path, symbol: str = "E") -> None:
        if not tensorboard_available():
            raise RunFileError(
                "--tensorboard needs the tensorboard package: pip install 'nsvd[tensorboard]'"
            )
        self.folder = run_dir / TENSORBOARD_DIR
        self.symbol = symbol
        self._writer: Any = None

    def __call__(self, state: TrainState, loss: float) -> None:
        snap = state.history[-1]
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            # A resumed run drops the events logged after its checkpoint.
            self._writer = SummaryWriter(str(self.folder), purge_step=snap.step)
        w = self._writer
        w.add_scalar("loss", snap.loss, snap.step)
        w.add_scalar("learning_rate", snap.learning_rate, snap.step)
        w.add_scalar("shift", snap.shift, snap.step)
        for i, v in enumerate(snap.eigenvalues):
            w.add_scalar(f"{self.symbol}/{i}", v, snap.step)
        for i, v in enumerate(snap.widths):
            w.add_scalar(f"width/{i}", v, snap.step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
