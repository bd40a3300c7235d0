"""Problem files the tests share, written once: a 1-D harmonic oscillator with a closed
form (E_n = n + 1/2), sized per test through its solver block."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = ROOT / "problems"


def oscillator(
    name: str,
    modes: int = 2,
    solver: dict[str, object] | None = None,
    reference: bool = True,
    functions: bool = False,
) -> str:
    """The text of ``-1/2 d^2/dx^2 + x^2/2`` with ``modes`` modes; ``reference`` adds the
    closed-form values, ``functions`` the Hermite functions too. Solver values are written
    as given (a placeholder string such as "STEPS" can be replaced later)."""
    lines = [
        f"name: {name}",
        "coordinates: [x]",
        'operator: {potential: "x**2/2"}',
        f"modes: {modes}",
    ]
    if solver:
        lines.append("solver: {" + ", ".join(f"{k}: {v}" for k, v in solver.items()) + "}")
    if reference:
        lines += ["reference:", '  eigenvalue: "n + 1/2"', "  quantum_numbers: {n: [0, 10]}"]
    if reference and functions:
        lines.append('  eigenfunction: "hermite(n, x)*exp(-x**2/2)"')
    return "\n".join(lines) + "\n"
