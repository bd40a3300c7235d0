"""The errors a command reports to its user: one base class that carries the exit code.

Every layer raises a subclass of :class:`NsvdError` for what the user must fix (a problem
file, an option, a run folder); the command line prints its message and exits with
``exit_code``, in one place. Exit codes: 1 a run or file that cannot be used (or training
that failed), 2 a bad problem file, bad arguments or a memory bound.
"""

from __future__ import annotations


class NsvdError(Exception):
    """Something the user must fix; the message names the file, key or option."""

    exit_code: int = 1


class UsageError(NsvdError):
    """Bad arguments: an option that does not apply, a value out of range."""

    exit_code = 2


class UnsupportedOption(UsageError):
    """An option the problem's kind of operator cannot honour, refused before any work."""


class ResumeMismatch(UsageError):
    """``--resume`` with an option that differs from the checkpoint's run."""


class RunFileError(NsvdError):
    """A run folder or HDF5 file that cannot be used, with a message naming it."""


class NoReference(NsvdError):
    """``nsvd eval`` of a problem with no closed form and no ``--against`` file: nothing to
    compare with (exit 1, as the contract asks; the run's own intervals are still shown)."""
