"""The commands that take a problem file and train: ``check`` and ``solve`` (with its
signal handling: a first SIGINT / SIGTERM finishes the step, saves and exits 130 / 143)."""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from signal import SIGINT, SIGTERM
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nsvd_cli.cli import check_report
from nsvd_cli.cli.common import (
    CheckedBound,
    MaxMemory,
    app,
    device_or_exit,
    err,
    fail,
    load_or_exit,
    memory_bound,
    out,
    problem_errors,
    user_errors,
)
from nsvd_cli.cli.progress import training_progress
from nsvd_cli.cli.solve_options import (
    GivenOptions,
    apply_options,
    check_resume,
    refuse_unchecked_tolerance,
    refuse_unsupported,
)
from nsvd_cli.cli.tables import interval_note, run_warnings, values_table
from nsvd_cli.errors import UsageError
from nsvd_cli.files import Results
from nsvd_cli.files.atomic import CHECKPOINT_NAME, atomic_path
from nsvd_cli.files.checkpoint import has_checkpoint
from nsvd_cli.kinds import kind_of
from nsvd_cli.references.closed_form import reference_eigenvalues, usable_reference
from nsvd_cli.runs import prepare, resume_settings, solve
from nsvd_cli.runs.cpu_load import contention_warning
from nsvd_cli.runs.estimate import StepTime, time_steps
from nsvd_cli.runs.logs import tensorboard_available
from nsvd_cli.spec.load import Problem, ProblemError, load_problem, located_error
from nsvd_cli.spec.schema import problem_json_schema
from nsvd_cli.training.distributed import Context, from_environment, local_device, rank_batch
from nsvd_cli.training.guard import TrainingFailed
from nsvd_cli.training.loop import resolve_device
from nsvd_cli.training.settings import Settings

if TYPE_CHECKING:
    from torch import device as torch_device


@app.command()
def check(
    problem_file: Annotated[Path, typer.Argument(help="Problem file (YAML).")],
    table: Annotated[
        bool | None,
        typer.Option(
            "--table/--plain",
            help="Errors as one table, or as FILE:LINE: key: message lines "
            "(default: a table when stderr is a terminal).",
        ),
    ] = None,
    derived: Annotated[
        bool, typer.Option("--derived", help="Also show the settings `nsvd solve` would derive.")
    ] = False,
) -> None:
    """Validate a problem file and report every error in it (exit 2 if any)."""
    try:
        problem = load_problem(problem_file)
        _check_reference(problem)
        kind_of(problem).check(problem)
    except ProblemError as exc:
        # Scripts and pipes read one line per error; a person at a terminal gets the table.
        if table or (table is None and err.is_terminal):
            check_report.error_console().print(
                check_report.error_table(str(problem_file), exc.errors)
            )
            raise typer.Exit(2) from None
        raise problem_errors(exc) from None
    out.print(
        f"{problem_file}: ok ({problem.name}, d={len(problem.coordinates)}, {problem.modes} modes)",
        highlight=False,
        markup=False,  # a path may hold "[...]"
        soft_wrap=True,
    )
    lines = check_report.summary(problem, derived)
    if derived:
        try:
            settings = prepare(problem)
            lines += check_report.derived(settings, _timed(problem, settings))
        except ProblemError as exc:  # found while deriving (e.g. an overflowing potential)
            raise problem_errors(exc) from None
    width = max(len(label) for label, _ in lines) + 2
    for label, value in lines:
        # soft_wrap: one line per item, whatever the width (for grep).
        out.print(f"  {label:<{width}}{value}", markup=False, highlight=False, soft_wrap=True)


@app.command("schema")
def schema_cmd(
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write it to this file.")
    ] = None,
) -> None:
    """Print the JSON Schema of problem files (for editor completion and checks)."""
    text = json.dumps(problem_json_schema(), indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    with user_errors():
        with atomic_path(output) as tmp:
            tmp.write_text(text)
    err.print(f"wrote {output}", highlight=False)


def _default_run_dir(problem: Problem) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{problem.name}-{stamp}"
    path, i = base, 1
    while path.exists():
        path, i = Path(f"{base}-{i}"), i + 1
    return path


Tolerance = Annotated[
    float | None,
    typer.Option(
        help="Train until every mode's 95% error interval has at most this relative "
        "half-width (solver.tol); --steps is then the budget (default 4x the usual).",
    ),
]
MaxTime = Annotated[
    float | None,
    typer.Option(
        "--max-time",
        help="With a tolerance: stop training after this many seconds (then read out).",
    ),
]


@app.command("solve")
def solve_cmd(
    problem_file: Annotated[Path, typer.Argument(help="Problem file (YAML).")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Run folder.")] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="Training steps.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:i")] = "auto",
    resume: Annotated[bool, typer.Option(help="Continue from RUN_DIR's checkpoint.")] = False,
    method: Annotated[
        str | None,
        typer.Option(help="neuralsvd-sequential | neuralsvd-joint | neuralef | spin"),
    ] = None,
    derivatives: Annotated[
        str | None,
        typer.Option(help="auto | forward-laplacian | hutchinson | weak | autograd"),
    ] = None,
    compile_step: Annotated[
        bool | None,
        typer.Option("--compile/--no-compile", help="torch.compile the training step."),
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(help="fp32 | tf32 | bf16-mixed | fp64 (solver.dtype); read-out is fp64"),
    ] = None,
    max_memory: MaxMemory = None,
    tensorboard: Annotated[
        bool,
        typer.Option(
            "--tensorboard",
            help="Also log to RUN_DIR/tensorboard/ (pip install 'nsvd[tensorboard]').",
        ),
    ] = False,
    tol: Tolerance = None,
    max_time: MaxTime = None,
) -> None:
    """Train networks for the lowest eigenpairs and write RUN_DIR/results.h5 (and a
    metrics.csv of every recorded step)."""
    problem = load_or_exit(problem_file)
    if tensorboard and not tensorboard_available():
        raise fail(
            "--tensorboard needs the tensorboard package: pip install 'nsvd[tensorboard]'", 2
        )
    dev = local_device(device_or_exit(device))
    context = from_environment(dev)  # torchrun: one process per rank
    if resume and out_dir is None:
        raise fail("--resume needs --out RUN_DIR (the run to continue)", 2)
    run_dir = context.broadcast_object(out_dir or _default_run_dir(problem))
    if resume and not has_checkpoint(run_dir):
        # A job killed before its first checkpoint is restarted by the same command.
        err.print(f"warning: {run_dir} has no checkpoint yet; starting from step 0")
        resume = False
    with user_errors():
        options = GivenOptions.parse(method, derivatives, precision, compile_step, seed, tol)
        settings = _settings(problem, run_dir, resume, steps, options, max_time)
    if context.active:
        _check_distributable(problem_file, problem, settings, context)
    _check_memory(problem_file, problem, settings, memory_bound(max_memory, dev))
    stops = StopRequests()
    if context.main:
        _announce(run_dir, dev)
    try:
        with stops, user_errors(), _failed_training(problem_file, run_dir):
            shown = training_progress(
                settings.optimiser.steps,
                symbol=kind_of(problem).symbol,
                reference=_live_reference(problem),
            )
            with shown if context.main else contextlib.nullcontext() as hook:
                results, complete = solve(
                    problem, settings, run_dir, dev, resume=resume, on_progress=hook,
                    stop=stops.requested, context=context, tensorboard=tensorboard,
                    max_time=max_time,
                )
    finally:
        context.close()
    if results is not None:  # rank 0 reports
        _report(problem_file, problem, settings, run_dir, results)
    if not complete:  # the shell's convention: 128 + the signal (130 Ctrl-C, 143 SIGTERM)
        raise typer.Exit(128 + stops.signal)
    if results is not None:
        err.print(f"wrote {run_dir / 'results.h5'}", highlight=False)


def _announce(run_dir: Path, device: torch_device) -> None:
    err.print(f"run folder: {run_dir}", highlight=False)
    if (busy := contention_warning(device)) is not None:
        err.print(f"warning: {busy}", highlight=False)


def _settings(
    problem: Problem,
    run_dir: Path,
    resume: bool,
    steps: int | None,
    options: GivenOptions,
    max_time: float | None,
) -> Settings:
    """A fresh run's settings with the options applied, or the resumed run's own; refused
    where the kind cannot honour them or they differ from the checkpoint's."""
    _positive({"--tol": options.tol, "--max-time": max_time})
    if resume:
        settings = resume_settings(run_dir, problem, steps)
        check_resume(settings, options, run_dir)
    else:
        settings = prepare(problem, steps, tol=options.tol)
        apply_options(settings, options)
    kind = kind_of(problem)
    refuse_unsupported(kind, problem, settings, options)
    if settings.optimiser.tol is not None:
        refuse_unchecked_tolerance(kind, problem, settings, options)
    elif max_time is not None:
        raise UsageError(
            "--max-time applies to a run to a tolerance (--tol or solver.tol); a run of "
            "fixed length is sized with --steps"
        )
    return settings


def _positive(values: dict[str, float | None]) -> None:
    for flag, value in values.items():
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UsageError(f"{flag}: must be a positive number, got {value:g}")


class StopRequests:
    """SIGINT / SIGTERM while training: the first finishes the step, checkpoints and writes
    results; a second aborts."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequests:
        self.previous = {s: signal.signal(s, self._on_signal) for s in (SIGINT, SIGTERM)}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.received:
            raise KeyboardInterrupt
        self.received.append(signum)
        name = signal.Signals(signum).name
        err.print(f"{name}: finishing the current step and saving (again to abort)")

    def requested(self) -> bool:
        return bool(self.received)

    @property
    def signal(self) -> int:
        return int(self.received[0] if self.received else SIGINT)


@contextlib.contextmanager
def _failed_training(problem_file: Path, run_dir: Path) -> Iterator[None]:
    try:
        yield
    except TrainingFailed as exc:
        kept = run_dir / CHECKPOINT_NAME
        where = f"checkpoint kept: {kept}" if kept.exists() else "no checkpoint saved"
        raise fail(
            f"{problem_file}: {exc}; results.h5 not written ({where}). Try a lower "
            "solver.learning_rate, or check the potential and domain for overflow"
        ) from None


def _report(
    problem_file: Path, problem: Problem, settings: Settings, run_dir: Path, results: Results
) -> None:
    """The read-out table, and what the user should know about the run."""
    # In memory every kind's values are in mode order (a singular kind's largest first),
    # as its intervals are.
    out.print(values_table(problem, results.eigenvalues, results.stderr, results.intervals))
    note = interval_note(results.intervals)
    if note is not None:
        err.print(note, highlight=False)
    note = results.attrs.get("tol_note")
    if note is not None:
        prefix = "" if results.attrs.get("tol_met") else "warning: "
        err.print(f"{prefix}{note}", highlight=False)
    for warning in run_warnings(results):
        err.print(f"warning: {warning}", highlight=False)
    variance = results.attrs.get("hutchinson_relative_variance")
    if variance is not None:
        err.print(
            f"hutchinson: relative variance of the Laplacian estimate {variance:.3g} per point "
            f"and draw ({settings.hutchinson_probes} probes), "
            f"{variance / settings.optimiser.batch_size:.2g}"
            " for a batch mean",
            highlight=False,
        )
    if not results.attrs.get("complete", True):
        err.print(
            f"interrupted at step {results.attrs['steps']}: results.h5 holds what was learned "
            f"so far (marked incomplete); continue with: nsvd solve {problem_file} "
            f"--out {run_dir} --resume",
            highlight=False,
        )


def _check_memory(
    problem_file: Path, problem: Problem, settings: Settings, bound: CheckedBound
) -> None:
    """Refuse now what the training step or the read-out could not hold."""
    for need in kind_of(problem).memory_needs(problem, settings):
        bound.require(f"{problem_file}: {need.what}", need.bytes, need.advice)


def _timed(problem: Problem, settings: Settings) -> StepTime | None:
    """A few timed steps for ``check --derived``; None (and a note) where they fail: the
    check still reports the settings."""
    try:
        return time_steps(problem, settings, resolve_device("auto"))
    except (TrainingFailed, RuntimeError) as exc:  # RuntimeError: out of memory
        err.print(f"note: training time not measured ({str(exc).splitlines()[0]})")
        return None


def _check_reference(problem: Problem) -> None:
    """What only enumerating the reference finds (too few states for ``modes``, a value that
    is not finite), reported by ``check`` like a validation error instead of at eval."""
    try:
        reference_eigenvalues(problem)
    except ValueError as exc:
        raise located_error(problem, ("reference",), str(exc)) from None


def _live_reference(problem: Problem) -> list[float] | None:
    """The closed-form values the live table compares with (mode order), if any."""
    values = usable_reference(problem)
    return None if values is None else [float(v) for v in values]


def _check_distributable(
    problem_file: Path, problem: Problem, settings: Settings, context: Context
) -> None:
    """What a multi-process job cannot do yet, refused before any process starts work."""
    if settings.method == "spin":
        raise fail("spin keeps per-step Jacobian averages and trains in one process only", 2)
    try:
        rank_batch(settings.optimiser.batch_size, context)
    except ValueError as exc:
        raise fail(f"{problem_file}: solver.batch_size: {exc}", 2) from None
