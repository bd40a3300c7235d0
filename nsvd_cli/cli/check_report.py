"""What ``nsvd check`` shows: every error of a file as one table (on a terminal), or a short
summary of a valid problem. The plain ``FILE:LINE: key: message`` lines stay the form for
scripts (``cli_base.problem_errors``)."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table
from rich.text import Text

from nsvd_cli.objectives.batch import RULE_NAMES
from nsvd_cli.runs.estimate import TIMED_STEPS, StepTime
from nsvd_cli.spec.load import BoxDomain, Problem, ProblemIssue, RegionDomain
from nsvd_cli.spec.medium import diffusion_kind, weight_expr
from nsvd_cli.spec.models import GaussianDomain
from nsvd_cli.training.settings import Settings
from nsvd_cli.training.tolerance import CHECK_EVERY

# Expressions can be long; the summary shows their start (the file has the rest).
SHOWN_CHARS = 60


def error_console() -> Console:
    # Made per call: the width follows the terminal (or COLUMNS) at the time of printing.
    return Console(stderr=True, highlight=False, emoji=False)


def error_table(path: str, issues: list[ProblemIssue]) -> Table:
    count = f"{len(issues)} error" + ("" if len(issues) == 1 else "s")
    table = Table(title=Text(f"{path}: {count}"), title_justify="left")
    table.add_column("line", justify="right", no_wrap=True)
    table.add_column("key", overflow="fold")
    table.add_column("problem", overflow="fold")
    for issue in issues:
        # Text, not markup: keys and messages quote the file, which may hold "[...]".
        table.add_row(
            Text("-" if issue.line is None else str(issue.line)),
            Text(issue.key or "(file)"),
            Text(" ".join(issue.message.splitlines())),
        )
    return table


def _short(value: float | str) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def _number(value: float) -> str:
    return f"{value:g}"


def _intervals(limits: dict[str, tuple[float, float]]) -> str:
    return ", ".join(f"{k} in [{_number(a)}, {_number(b)}]" for k, (a, b) in limits.items())


def _walls(problem: Problem) -> str:
    walls = problem.walls()
    return f", {walls} walls" if walls not in (None, "dirichlet") else ""


def _domain(domain: object) -> str:
    if isinstance(domain, BoxDomain):
        return f"box {_intervals(domain.box)}"
    if isinstance(domain, RegionDomain):
        return f"region {_short(domain.region)} > 0 within {_intervals(domain.bounds)}"
    if isinstance(domain, GaussianDomain):
        return f"Gaussian measure N(0, {_number(domain.gaussian.scale)}^2 I)"
    return "whole space"


def _operator(problem: Problem) -> str:
    op = problem.operator
    if op.kernel is not None:
        args = f"{', '.join(problem.coordinates)}; {', '.join(problem.input_coordinates)}"
        return f"integral operator, k({args}) = {_short(op.kernel)}"
    if op.langevin is not None:
        t, u = _short(op.langevin.temperature), _short(op.langevin.potential)
        return (f"L = ({t}) Laplacian - grad U . grad, U = {u}; solved as -({t}) Laplacian + "
                "|grad U|^2 / (4 T) - Laplacian(U) / 2")
    if isinstance(op.diffusion, list):
        rows = "; ".join(", ".join(map(str, row)) for row in op.diffusion)
        text = f"H = -div(A grad) + V, A = [{_short(rows)}], V = {_short(op.potential)}"
    elif op.diffusion is not None and diffusion_kind(problem) in ("scalar", "jump"):
        text = f"H = -div(k grad) + V, k = {_short(op.diffusion)}, V = {_short(op.potential)}"
        if diffusion_kind(problem) == "jump":
            text += " (k may jump: weak form only)"
    else:
        kinetic = op.kinetic if op.diffusion is None else op.diffusion
        text = f"H = -({_short(kinetic)}) Laplacian + V, V = {_short(op.potential)}"
    if weight_expr(problem) is not None:
        text += f"; H u = E rho u, rho = {_short(op.weight or 1)}"
    if op.drift:
        text += f"; + b . grad, b = ({_short(', '.join(map(str, op.drift)))})"
    return text


def _reference(problem: Problem) -> str:
    ref = problem.reference
    if ref is None:
        return "none (`nsvd eval` needs one; `nsvd reference FILE` computes one for d <= 3)"
    if ref.is_list:
        values = ref.values or []
        return f"a list of {len(values)} values"
    names = ", ".join(problem.quantum_number_names())
    functions = [
        key
        for key in ("eigenfunction", "left_function", "right_function")
        if getattr(ref, key) is not None
    ]
    text = f"closed form over {names}" if names else "closed form"
    if ref.where is not None:
        text += f" where {_short(ref.where)}"
    if functions:
        text += ", with " + " and ".join(f.replace("_", " ") + "s" for f in functions)
    return text


def summary(problem: Problem, derived: bool = False) -> list[tuple[str, str]]:
    """Label and value lines describing a valid problem (``derived``: the derived settings
    follow, so the solver line does not point to --derived)."""
    wanted = {
        "lowest": "lowest eigenvalues",
        "smallest-singular": "smallest singular values",
        "largest-singular": "largest singular values",
    }[problem.wanted]
    if problem.operator.langevin is not None:
        wanted = "slowest relaxation rates (eigenvalues of -L, from 0)"
    lines = [
        ("operator", _operator(problem)),
        ("wants", f"the {problem.modes} {wanted}"),
        ("domain", _domain(problem.domain) + _walls(problem)),
    ]
    if problem.is_singular and problem.operator.input_domain is not None:
        lines.append(("input domain", _domain(problem.operator.input_domain)))
    if problem.parameters:
        shown = ", ".join(f"{k} = {_number(v)}" for k, v in problem.parameters.items())
        lines.append(("parameters", shown))
    lines.append(("reference", _reference(problem)))
    given = sorted(problem.solver.model_fields_set - {"method"})
    solver = problem.solver.method + (f"; set: {', '.join(given)}" if given else "")
    rest = "; the rest derived:" if derived else "; the rest derived (--derived shows them)"
    lines.append(("solver", solver + rest))
    return lines


def _cusp(rate: float) -> str:
    return f", exact Coulomb cusp factor (rate {_number(rate)})" if rate else ""


def derived(settings: Settings, timing: StepTime | None = None) -> list[tuple[str, str]]:
    """The derived settings that decide a run's cost and accuracy, and (``timing``) the
    training time they imply."""
    shift = "adaptive" if settings.transform.shift is None else _number(settings.transform.shift)
    if settings.transform.shift is None and settings.transform.shift_floor is not None:
        shift += f" (at least {_number(settings.transform.shift_floor)})"
    network = settings.network
    return [
        *_length(settings),
        ("batch size", str(settings.optimiser.batch_size)),
        ("learning rate", _number(settings.optimiser.learning_rate)),
        ("network", f"{network.architecture}, {network.depth} x {network.hidden}"
                    + _buffer(network.buffer_modes) + _cusp(network.cusp)),
        ("derivatives", settings.derivatives),
        ("shift, scale", f"{shift}, {_number(settings.transform.scale)}"),
        *_sampling(settings),
        _readout(settings),
        ("checkpoint every", f"{settings.optimiser.checkpoint_every} steps"),
        *_duration(settings, timing),
    ]


def _readout(settings: Settings) -> tuple[str, str]:
    rule = settings.readout.quadrature
    if rule:
        return ("read-out", f"quadrature: {RULE_NAMES[rule]}")
    return ("eval samples", str(settings.readout.eval_samples))


def _duration(settings: Settings, timing: StepTime | None) -> list[tuple[str, str]]:
    if timing is None:
        return []
    up_to = "up to " if settings.optimiser.tol is not None else ""
    per_step = f"{1000 * timing.seconds_per_step:.3g} ms per step"
    threads = f"{timing.threads} thread{'s' if timing.threads != 1 else ''}"
    where = f"timed over {TIMED_STEPS} steps on {timing.device}, {threads}"
    rows = [("training time", f"{up_to}{_duration_text(timing.total)} ({per_step}, {where})")]
    return rows + _one_thread(timing)


def _one_thread(timing: StepTime) -> list[tuple[str, str]]:
    """The one-thread timing, and the advice to use it where it is clearly faster (a busy
    machine: the thread team waits on threads the scheduler set aside)."""
    if timing.one_thread is None:
        return []
    text = f"{1000 * timing.one_thread:.3g} ms per step"
    if timing.one_thread < 0.8 * timing.seconds_per_step:
        text += (
            f": faster here than {timing.threads} threads (a busy machine?), "
            f"{_duration_text(timing.one_thread * timing.steps)} in all with OMP_NUM_THREADS=1"
        )
    return [("one thread", text)]


def _duration_text(seconds: float) -> str:
    if seconds < 120:
        return f"about {seconds:.0f} s"
    if seconds < 7200:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"


def _buffer(count: int) -> str:
    if not count:
        return ""
    return f", {count} buffer function{'s' if count > 1 else ''} above the wanted modes"


def _length(settings: Settings) -> list[tuple[str, str]]:
    tol = settings.optimiser.tol
    if tol is None:
        return [("steps", str(settings.optimiser.steps))]
    return [
        ("tolerance", f"{_number(tol)} (relative interval half-width, checked every "
                      f"{CHECK_EVERY} steps)"),
        ("steps", f"at most {settings.optimiser.steps}"),
    ]  # fmt: skip


def _sampling(settings: Settings) -> list[tuple[str, str]]:
    """Whole space: the Gaussian mixture's scales (per coordinate, shown as their rms)."""
    if not settings.sampler.scales:
        return []
    rms = [math.sqrt(sum(v * v for v in c) / len(c)) for c in settings.sampler.scales]
    return [("sampling scales", ", ".join(_number(r) for r in rms) + " (rms over coordinates)")]
