"""Checkpoints: torch bytes behind a SHA-256 header, the newest and the one before it."""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from nsvd_cli.errors import RunFileError
from nsvd_cli.files.atomic import CHECKPOINT_NAME, PREVIOUS_CHECKPOINT_NAME, atomic_path

_MAGIC = b"NSVD-CHECKPOINT sha256="


class RunFileWarning(UserWarning):
    """A damaged file was passed over for an older good one."""


def save_checkpoint(run_dir: Path, payload: dict[str, Any]) -> Path:
    """Write CHECKPOINT_NAME (a SHA-256 header line, then torch's bytes) and keep the one it
    replaces as PREVIOUS_CHECKPOINT_NAME. A crash between the two renames leaves only the
    previous file, which ``load_checkpoint`` falls back to."""
    path = run_dir / CHECKPOINT_NAME
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(_MAGIC + hashlib.sha256(data).hexdigest().encode() + b"\n")
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())  # durable before the current one is rotated out
        if path.exists():
            os.replace(path, run_dir / PREVIOUS_CHECKPOINT_NAME)
    return path


def read_checkpoint(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    if raw.startswith(_MAGIC):
        header, _, data = raw.partition(b"\n")
        if hashlib.sha256(data).hexdigest().encode() != header[len(_MAGIC) :]:
            raise RunFileError(f"{path}: checksum mismatch (truncated or damaged file)")
    else:
        data = raw  # written before checksums
    try:
        # weights_only: tensors and plain containers only, so a checkpoint from someone
        # else cannot run code when it is loaded (full unpickling could).
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling failure means the file is unusable
        raise RunFileError(f"{path}: unreadable checkpoint ({exc})") from exc


def has_checkpoint(run_dir: Path) -> bool:
    return any((run_dir / name).exists() for name in (CHECKPOINT_NAME, PREVIOUS_CHECKPOINT_NAME))


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    """The newest good checkpoint: CHECKPOINT_NAME, or with a RunFileWarning the previous one
    when that is missing, truncated or damaged."""
    path = run_dir / CHECKPOINT_NAME
    previous = run_dir / PREVIOUS_CHECKPOINT_NAME
    if not path.is_file() and not previous.is_file():
        raise RunFileError(f"{path}: no checkpoint to resume from")
    problem = f"{path}: missing"
    if path.is_file():
        try:
            return read_checkpoint(path)
        except RunFileError as exc:
            problem = str(exc)
        except OSError as exc:
            problem = f"{path}: unreadable ({exc})"
    if not previous.is_file():
        raise RunFileError(f"{problem}; no previous checkpoint to fall back to")
    try:
        state = read_checkpoint(previous)
    except RunFileError as exc:  # name both: the user needs to know neither is usable
        raise RunFileError(f"{problem}; the previous one is no better: {exc}") from exc
    warnings.warn(
        f"{problem}; resuming from the previous one, {previous}", RunFileWarning, stacklevel=2
    )
    return state
