"""The problem file: reading, validation and errors with file and line.

A problem file is untrusted data.  It is read with PyYAML's safe loader without anchors or
aliases (:mod:`nsvd_cli.spec.yaml_reader`), and every expression goes through :mod:`nsvd_cli.expr`,
which never executes text.

Validation happens in two passes over the raw YAML data so that one run reports everything
wrong with a file: pydantic checks the structure (keys, types, numeric ranges;
:mod:`nsvd_cli.spec.models`, messages from :mod:`nsvd_cli.spec.messages`) and a semantic pass
checks names and expressions on whatever parts have the right shape
(:mod:`nsvd_cli.spec.semantics`).  Each problem found becomes a :class:`ProblemIssue`
carrying the file, the line of the offending key and the dotted key path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from nsvd_cli.errors import NsvdError
from nsvd_cli.spec.fields import show
from nsvd_cli.spec.messages import structural_issue
from nsvd_cli.spec.models import BoxDomain, Operator, Problem, Reference, RegionDomain, Solver
from nsvd_cli.spec.scope import MAX_STATES
from nsvd_cli.spec.semantics import expression_budget_issue, semantic_issues
from nsvd_cli.spec.yaml_reader import Key, YamlProblem, dotted, line_of, normalise_key, read_yaml

__all__ = [
    "BoxDomain",
    "MAX_FILE_BYTES",
    "MAX_STATES",
    "Operator",
    "Problem",
    "ProblemError",
    "ProblemIssue",
    "Reference",
    "RegionDomain",
    "Solver",
    "load_problem",
    "located_error",
    "parse_problem",
]

MAX_FILE_BYTES = 1_000_000
# A file with thousands of errors (a generated list of bad values) reports the first ones.
MAX_ISSUES = 100


def _one_line(text: str) -> str:
    # Keys and values are quoted with escapes where they are shown; this is the last guard
    # of the one-error-per-line contract.
    return " ".join(text.splitlines())


@dataclass(frozen=True)
class ProblemIssue:
    """One thing wrong with a problem file."""

    path: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        key, message = _one_line(self.key), _one_line(self.message)
        return f"{where}: {key}: {message}" if key else f"{where}: {message}"


class ProblemError(NsvdError):
    """A problem file is invalid; ``errors`` lists every issue found, one per line."""

    exit_code = 2

    def __init__(self, errors: list[ProblemIssue]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


def _file_error(path: str, message: str, line: int | None = None) -> ProblemError:
    """An error about the file as a whole (no key), which stops validation at once."""
    return ProblemError([ProblemIssue(path, line, "", message)])


def _check_size(path: str, size: int) -> None:
    if size > MAX_FILE_BYTES:
        raise _file_error(path, f"file is too large ({size} bytes, limit {MAX_FILE_BYTES})")


def parse_problem(text: str, path: str = "<string>") -> Problem:
    """Validate the text of a problem file; raise :class:`ProblemError` listing every issue."""
    path = str(path)
    _check_size(path, len(text.encode("utf-8", errors="replace")))
    try:
        data, lines, duplicates = read_yaml(text)
    except YamlProblem as bad:
        raise _file_error(path, bad.message, bad.line) from None
    if data is None:
        raise _file_error(
            path, "file is empty (expected a mapping with name, coordinates, modes, ...)"
        )
    if not isinstance(data, dict):
        raise _file_error(
            path, f"the top level must be a mapping (key: value), got {show(data)}", 1
        )

    issues: list[ProblemIssue] = [
        ProblemIssue(path, line, dotted(key), message) for line, key, message in duplicates
    ]
    over_budget = expression_budget_issue(data)
    if over_budget is not None:  # checked before any parsing: it bounds the time of the rest
        key, message = over_budget
        issues.append(ProblemIssue(path, line_of(lines, key), dotted(key), message))
        raise ProblemError(issues)
    found: list[tuple[Key, str]] = []
    problem: Problem | None = None
    try:
        problem = Problem.model_validate(data, context={"skip_semantic": True})
    except ValidationError as error:
        found.extend(structural_issue(e) for e in error.errors(include_url=False))
    found.extend(semantic_issues(data))
    if found or issues:
        for raw_key, message in found:
            key = normalise_key(raw_key, lines)
            issues.append(ProblemIssue(path, line_of(lines, key), dotted(key), message))
        issues = sorted(dict.fromkeys(issues), key=lambda i: i.line or 0)
        if len(issues) > MAX_ISSUES:
            more = len(issues) - MAX_ISSUES
            issues = issues[:MAX_ISSUES]
            issues.append(ProblemIssue(path, None, "", f"... and {more} more errors"))
        raise ProblemError(issues)
    assert problem is not None
    problem._source_text = text
    problem._source_path = path
    return problem


def located_error(problem: Problem, key: Key, message: str) -> ProblemError:
    """An error found in a valid problem after loading (deriving its settings), reported
    like the validation errors: file, line of ``key``, key path."""
    lines: dict[Key, int] = {}
    if problem.source_text:
        try:
            _, lines, _ = read_yaml(problem.source_text)
        except YamlProblem:
            pass
    issue = ProblemIssue(problem.source_path, line_of(lines, key), dotted(key), message)
    return ProblemError([issue])


def load_problem(path: str | Path) -> Problem:
    """Read and validate a problem file."""
    file = Path(path)
    name = str(path)
    try:
        _check_size(name, file.stat().st_size)
        raw = file.read_bytes()
    except OSError as error:
        reason = error.strerror or str(error)
        raise _file_error(name, f"cannot read file: {reason}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise _file_error(name, f"file is not UTF-8 text (byte {error.start})") from None
    return parse_problem(text, name)
