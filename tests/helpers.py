"""Problem files the tests share, written once: a 1-D harmonic oscillator with a closed
form (E_n = n + 1/2), sized per test through its solver block, and a rank-two kernel with
a closed-form singular value decomposition."""

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


# k(x, y) = sqrt(2) (sin(pi x) cos(pi y) + sin(2 pi x) cos(2 pi y) / 2) on [0, 1] x [-1, 1]:
# singular values 1 and 1/2 exactly, left functions sqrt(2) sin(k pi x), right cos(k pi y).
RANK2 = """
name: rank-two
coordinates: [x]
operator:
  kernel: "sqrt(2)*(sin(pi*x)*cos(pi*y) + sin(2*pi*x)*cos(2*pi*y)/2)"
  input_coordinates: [y]
  input_domain: {box: {y: [-1, 1]}}
domain: {box: {x: [0, 1]}}
modes: 2
solver: {steps: 2000, learning_rate: 3.0e-3, batch_size: 256, eval_samples: 16384, hidden: 32}
reference:
  singular_value: "1/k"
  quantum_numbers: {k: [1, 2]}
  left_function: "sin(k*pi*x)"
  right_function: "cos(k*pi*y)"
"""
