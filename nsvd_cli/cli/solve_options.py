"""The solver options of ``nsvd solve``: applied to the settings, checked against the
problem's kind (an option it cannot honour is refused, never recorded as used) and, with
``--resume``, against the settings of the run being continued."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from nsvd_cli.errors import ResumeMismatch, UnsupportedOption, UsageError
from nsvd_cli.kinds import Kind, refusals
from nsvd_cli.objectives.formulations import FORMULATION_NAMES
from nsvd_cli.objectives.methods import get_method
from nsvd_cli.spec import Problem, located_error
from nsvd_cli.training.settings import Settings

# --precision names -> solver.dtype values.
PRECISIONS = {"fp32": "float32", "tf32": "tf32", "bf16-mixed": "bf16-mixed", "fp64": "float64"}
# Settings field -> its command-line flag and its problem-file key.
FLAGS = {
    "method": "--method",
    "derivatives": "--derivatives",
    "dtype": "--precision",
    "compile": "--compile",
    "seed": "--seed",
    "tol": "--tol",
}


@dataclass(frozen=True)
class GivenOptions:
    """The solver options typed on the command line (None: not given), as Settings values."""

    method: str | None = None
    derivatives: str | None = None
    dtype: str | None = None
    compile: bool | None = None
    seed: int | None = None
    tol: float | None = None  # settings.optimiser.tol

    @staticmethod
    def parse(
        method: str | None,
        derivatives: str | None,
        precision: str | None,
        compile_step: bool | None,
        seed: int | None,
        tol: float | None = None,
    ) -> GivenOptions:
        """Check the names (exit 2 naming the flag and the known values)."""
        if derivatives is not None and derivatives not in FORMULATION_NAMES:
            known = ", ".join(FORMULATION_NAMES)
            raise UsageError(f"--derivatives: unknown {derivatives!r} (known: {known})")
        if precision is not None and precision not in PRECISIONS:
            known = " | ".join(PRECISIONS)
            raise UsageError(f"--precision: unknown {precision!r} (known: {known})")
        if method is not None:
            try:
                get_method(method)
            except ValueError as exc:
                raise UsageError(f"--method: {exc}") from None
        dtype = None if precision is None else PRECISIONS[precision]
        return GivenOptions(method, derivatives, dtype, compile_step, seed, tol)

    def given(self) -> dict[str, str | bool | int]:
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}


def _shown(field: str, value: object) -> str:
    if field == "dtype":
        names = {v: k for k, v in PRECISIONS.items()}
        return names.get(str(value), str(value))
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def check_resume(settings: Settings, options: GivenOptions, run_dir: Path) -> None:
    """A resumed run continues with its own settings: an option that differs is refused."""
    for field, value in options.given().items():
        started = settings.get_flat(field)
        if value != started:
            raise ResumeMismatch(
                f"{FLAGS[field]} {_shown(field, value)}: the run in {run_dir} was started with "
                f"{_shown(field, started)}; resume without {FLAGS[field]}, or start a new run "
                "with another --out"
            )


def apply_options(settings: Settings, options: GivenOptions) -> None:
    for field, value in options.given().items():
        if field != "tol":  # ``prepare`` applied it (it also sets the step budget)
            settings.set_flat(field, value)


def refuse_unsupported(
    kind: Kind, problem: Problem, settings: Settings, options: GivenOptions
) -> None:
    """Refuse (exit 2) what ``kind`` cannot honour, naming the flag, or the file's line and
    key when the value came from the problem file."""
    given = options.given()
    for refusal in refusals(kind, settings):
        if refusal.setting in given:
            flag = FLAGS[refusal.setting]
            named = flag if refusal.setting == "compile" else f"{flag} {refusal.value}"
            raise UnsupportedOption(f"{named}: {refusal.message}")
        raise located_error(problem, ("solver", refusal.setting), refusal.message)


def refuse_unchecked_tolerance(
    kind: Kind, problem: Problem, settings: Settings, options: GivenOptions
) -> None:
    """A tolerance on a problem that can have no error intervals (a Coulomb potential in
    2-D) is refused up front, naming --tol or the file's solver.tol."""
    try:
        kind.monitor(kind.build(problem, settings))
    except ValueError as exc:
        message = f"{exc}, so a tolerance cannot be checked; train a fixed --steps instead"
        if options.tol is not None:
            raise UnsupportedOption(f"--tol {options.tol:g}: {message}") from None
        raise located_error(problem, ("solver", "tol"), message) from None
