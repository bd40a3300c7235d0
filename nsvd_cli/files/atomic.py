"""Atomic writes: every file nsvd writes goes to a temporary file first.

A crash or Ctrl-C at any moment leaves either the old complete file or the new complete
file, never a torn one: data goes to ``NAME.tmp-PID`` in the same folder, is fsynced, and
replaces ``NAME`` with one atomic ``os.replace``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nsvd_cli.errors import RunFileError

RESULTS_NAME = "results.h5"
CHECKPOINT_NAME = "checkpoint.pt"
PREVIOUS_CHECKPOINT_NAME = "checkpoint.prev.pt"


@contextmanager
def atomic_path(path: Path, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success fsync it and rename over ``path``.

    Any OS error (disk full, read-only folder, quota) becomes a ``RunFileError`` naming
    ``path``; the file that was there before is untouched. ``durable=False`` skips the
    fsyncs (still never a torn file) for logs that a resume rewrites anyway.
    """
    tmp = path.with_name(f"{path.name}{_TMP_MARK}{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        if durable:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        if durable:
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise RunFileError(
            f"{path}: cannot write ({reason}); the file that was there before is unchanged"
        ) from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


_TMP_MARK = ".tmp-"


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete ``NAME.tmp-PID`` files left by writers that were killed (their PID is gone);
    return them. A live writer's file is left alone."""
    removed = []
    for tmp in folder.glob(f"*{_TMP_MARK}*") if folder.is_dir() else []:
        pid = tmp.name.rpartition(_TMP_MARK)[2]
        if not pid.isdigit() or process_alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed.append(tmp)
    return removed

def process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
