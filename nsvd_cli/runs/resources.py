"""Memory bounds: what a grid export or an evaluation sample will hold, against what is free.

The estimates count the float64 arrays each step keeps alive at once (points, values,
operator values and their concatenated copies) plus one chunk's network workspace; they
are meant to refuse a request that cannot fit before hours are spent, not to be exact.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from nsvd_cli.errors import NsvdError
from nsvd_cli.numerics.memory import FLOAT, network_workspace, readout_bytes

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)


__all__ = [
    "Bound",
    "MemoryBoundError",
    "export_bytes",
    "largest_grid",
    "network_workspace",
    "parse_size",
    "readout_bytes",
]


class MemoryBoundError(NsvdError, ValueError):
    """A request that needs more memory than the bound; the message has both numbers."""

    exit_code = 2


def parse_size(text: str) -> int:
    """``"8G"``, ``"512MiB"``, ``"1.5gb"``, ``"1000000"`` -> bytes (binary multiples)."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"not a memory size: {text!r} (examples: 8G, 512M, 1.5GiB)")
    value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if value < 1:
        raise ValueError(f"not a memory size: {text!r} (must be at least 1 byte)")
    return int(value)


def format_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} TiB"


def _cgroup_room() -> int | None:
    """Bytes left under a cgroup v2 memory limit (containers), None without one."""
    base = Path("/sys/fs/cgroup")
    try:
        limit = (base / "memory.max").read_text().strip()
        used = int((base / "memory.current").read_text())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(0, int(limit) - used)


def _host_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def available_bytes(device: torch.device) -> int:
    """Free memory where the work will run: the GPU's free memory, or the host's available
    memory (within the container's limit when there is one)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    room = _cgroup_room()
    host = _host_available()
    return host if room is None else min(host, room)


@dataclass(frozen=True)
class Bound:
    """The memory a command may use, and where that number came from."""

    bytes: int
    source: str  # "--max-memory" or "available memory on cpu"

    @staticmethod
    def resolve(max_memory: str | None, device: torch.device) -> Bound:
        if max_memory is not None:
            return Bound(parse_size(max_memory), "--max-memory")
        return Bound(available_bytes(device), f"available memory on {device}")

    def require(self, what: str, needed: int, advice: str) -> None:
        if needed > self.bytes:
            raise MemoryBoundError(
                f"{what} needs about {format_size(needed)}, more than the "
                f"{format_size(self.bytes)} allowed ({self.source}); {advice}"
            )


def export_bytes(sides: list[int], grid: int, modes: int) -> int:
    """A grid export: per side of dimension d, N = grid^d points (mesh and point arrays,
    2 d N) and the mode values (N modes, about four live copies: chunks, their concatenation,
    the transposed array, the masked one)."""
    return sum(grid**d * (2 * d + 4 * modes) * FLOAT for d in sides)


def largest_grid(sides: list[int], modes: int, bound: int) -> int:
    """The largest points-per-axis whose export fits ``bound`` (at least 2)."""
    lo, hi = 2, 2
    while export_bytes(sides, hi, modes) <= bound and hi < 1 << 40:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if export_bytes(sides, mid, modes) <= bound else (lo, mid)
    return lo
