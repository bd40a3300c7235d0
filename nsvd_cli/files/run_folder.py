"""The run folder: its file names, the lock of a running solve, an earlier run set aside."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nsvd_cli.errors import RunFileError
from nsvd_cli.files.atomic import (
    CHECKPOINT_NAME,
    PREVIOUS_CHECKPOINT_NAME,
    RESULTS_NAME,
)

# What one run writes into its folder (logs and figures are folders): set aside together.
METRICS_NAME = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"
PLOTS_DIR = "plots"
RUN_FILES = (
    RESULTS_NAME,
    CHECKPOINT_NAME,
    PREVIOUS_CHECKPOINT_NAME,
    METRICS_NAME,
    TENSORBOARD_DIR,
    PLOTS_DIR,
)


def set_aside_previous_run(run_dir: Path) -> Path | None:
    """Move an earlier run's results and checkpoints into ``RUN_DIR/replaced-STAMP/`` so that
    a fresh run in the same folder never destroys them; return that folder (None: nothing)."""
    found = [run_dir / name for name in RUN_FILES if (run_dir / name).exists()]
    if not found:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target, i = run_dir / f"replaced-{stamp}", 1
    while target.exists():
        target, i = run_dir / f"replaced-{stamp}-{i}", i + 1
    try:
        target.mkdir()
        for path in found:
            os.replace(path, target / path.name)
    except OSError as exc:
        raise RunFileError(f"{run_dir}: cannot set the earlier run aside ({exc})") from exc
    return target


LOCK_NAME = ".nsvd.lock"


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on RUN_DIR for one writer: a second ``nsvd solve`` on the same
    folder (a job relaunched while the first still runs) is refused instead of both writing
    the same checkpoints. The kernel drops the lock when its holder dies, even by SIGKILL."""
    path = run_dir / LOCK_NAME
    try:
        fh = open(path, "a+")  # held, and locked, for the whole block
    except OSError as exc:
        raise RunFileError(f"{path}: cannot create the lock file ({exc.strerror})") from exc
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            raise RunFileError(
                f"{run_dir}: in use by another nsvd solve (pid {holder}); wait for it or use "
                "another --out"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        fh.close()


