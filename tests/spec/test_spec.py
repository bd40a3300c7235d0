"""The problem file: valid files load, each kind of invalid file gets a clear, located error."""

from __future__ import annotations

import re
import textwrap
import time
from pathlib import Path

import pytest
import sympy as sp

from nsvd_cli.spec.load import (
    BoxDomain,
    Problem,
    ProblemError,
    ProblemIssue,
    RegionDomain,
    load_problem,
    parse_problem,
)

PROBLEMS = sorted((Path(__file__).resolve().parents[2] / "problems").glob("*.yaml"))
ROOT = Path(__file__).resolve().parents[2]
# The team's contract sits beside the checkout (../shared); the user's copy is in docs/.
SHARED_FORMAT = ROOT.parent / "shared" / "problem-format.md"
DOCS_FORMAT = ROOT / "docs" / "problem-format.md"

FORMAT_EXAMPLE = """\
name: hydrogen-2d                  # required; [A-Za-z0-9_.-]+, used in run folder names
description: 2D hydrogen atom      # optional free text
coordinates: [x, y]                # required; d = len(coordinates), 1 <= d <= 64
parameters: {Z: 1}                 # optional named constants usable in every expression

operator:                          # H = -kinetic * Laplacian + potential
  kinetic: 1/2                     # optional, default 1/2 (a number or an expression string)
  potential: "-Z/sqrt(x**2 + y**2)"  # SymPy syntax over coordinates and parameters

domain: whole-space                # default. Other forms:

modes: 16                          # required; how many eigenpairs (the lowest eigenvalues of H)

solver:                            # optional; every key has a default
  method: neuralsvd-sequential     # | neuralsvd-joint | spin | neuralef
  steps: 20000
  batch_size: 1024
  learning_rate: 1.0e-3
  seed: 0

reference:                         # optional; what `nsvd eval` compares against
  eigenvalue: "-Z**2/(2*(n + abs(m) + 1/2)**2)"   # closed form in quantum numbers
  quantum_numbers: {n: [0, 10], m: [-10, 10]}     # inclusive integer ranges
"""

MINIMAL = "name: p\ncoordinates: [x]\nmodes: 2\n"


def errors_of(text: str) -> list[ProblemIssue]:
    with pytest.raises(ProblemError) as info:
        parse_problem(text, "problem.yaml")
    return info.value.errors


def one_error(text: str) -> ProblemIssue:
    errors = errors_of(text)
    assert len(errors) == 1, "\n".join(map(str, errors))
    return errors[0]


def doc(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# -- valid files ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", PROBLEMS, ids=[p.name for p in PROBLEMS])
def test_shipped_problems_load(path: Path) -> None:
    problem = load_problem(path)
    assert problem.name == path.stem
    assert problem.description
    # Every shipped problem has a closed form, or says how to get a grid reference.
    assert problem.reference is not None or "nsvd reference" in problem.description
    assert problem.source_text == path.read_text()
    assert problem.source_path == str(path)
    assert problem.kinetic_value() > 0
    assert isinstance(problem.potential_expr(), sp.Expr)
    names = {s.name for s in problem.potential_expr().free_symbols}
    assert names <= set(problem.coordinates) | set(problem.parameters)


def test_format_example_loads() -> None:
    problem = parse_problem(FORMAT_EXAMPLE, "hydrogen-2d.yaml")
    assert problem.coordinates == ["x", "y"]
    assert problem.parameter_values() == {"Z": 1.0}
    assert problem.kinetic_value() == 0.5
    assert problem.domain == "whole-space"
    assert problem.solver.method == "neuralsvd-sequential"
    assert problem.solver.steps == 20000 and problem.solver.learning_rate == 1e-3
    assert problem.reference is not None
    assert problem.reference.quantum_numbers == {"n": (0, 10), "m": (-10, 10)}
    x, y, z = sp.Symbol("x", real=True), sp.Symbol("y", real=True), sp.Symbol("Z", real=True)
    assert problem.potential_expr() == -z / sp.sqrt(x**2 + y**2)
    assert problem.symbols() == [x, y]


@pytest.mark.parametrize("document", [SHARED_FORMAT, DOCS_FORMAT], ids=["shared", "docs"])
def test_format_document_yaml_block_loads(document: Path) -> None:
    if document == SHARED_FORMAT and not document.exists():
        pytest.skip("the team's shared folder is not beside this checkout")
    block = re.search(r"```yaml\n(.*?)```", document.read_text(), re.S)
    assert block is not None
    problem = parse_problem(block.group(1), "format.yaml")
    assert problem.modes == 16


def test_other_domain_forms_from_the_format() -> None:
    box = parse_problem(
        MINIMAL.replace("[x]", "[x, y]") + "domain: {box: {x: [0, 1], y: [0, 2]}}\n"
    )
    assert isinstance(box.domain, BoxDomain)
    assert box.domain_bounds() == [(0.0, 1.0), (0.0, 2.0)]
    assert box.region_expr() is None
    region = parse_problem(
        MINIMAL.replace("[x]", "[x, y]")
        + 'domain: {region: "1 - x**2 - y**2",\n         bounds: {y: [-1, 1], x: [-1, 1]}}\n'
    )
    assert isinstance(region.domain, RegionDomain)
    assert region.domain_bounds() == [(-1.0, 1.0), (-1.0, 1.0)]
    assert str(region.region_expr()) == "-x**2 - y**2 + 1"


def test_defaults_and_reference_forms() -> None:
    problem = parse_problem(MINIMAL)
    assert problem.kinetic_value() == 0.5
    assert problem.potential_expr() == 0
    assert problem.reference is None and problem.solver.steps is None
    listed = parse_problem(MINIMAL + "reference: {eigenvalues: [1, 2, 2]}\n")
    assert listed.reference is not None and listed.reference.eigenvalues == [1.0, 2.0, 2.0]
    formula = parse_problem(
        MINIMAL
        + doc("""
        reference:
          eigenvalue: "n + l"
          quantum_numbers: {n: [0, 3], l: [0, 3]}
          where: "l <= n"
          eigenfunction: "hermite(n, x)*exp(-x**2/2)"
        """)
    )
    assert formula.where_expr() is not None and formula.eigenfunction_expr() is not None


def test_parameters_may_be_constant_expressions_and_kinetic_uses_them() -> None:
    problem = parse_problem(
        MINIMAL + 'parameters: {hbar: "sqrt(4)", m: 2}\noperator: {kinetic: "hbar**2/(2*m)"}\n'
    )
    assert problem.parameter_values() == {"hbar": 2.0, "m": 2.0}
    assert problem.kinetic_value() == 1.0


def test_yaml_exponent_without_dot_is_a_number() -> None:
    # PyYAML reads 1e-3 as a string (YAML 1.1); the file format means a number.
    problem = parse_problem(MINIMAL + "solver: {learning_rate: 1e-3, steps: 2e4}\n")
    assert problem.solver.learning_rate == 1e-3 and problem.solver.steps == 20000


def test_direct_construction_runs_semantic_checks() -> None:
    Problem(name="a", coordinates=["x"], modes=1, operator={"potential": "x**2"})
    with pytest.raises(ValueError, match="unknown name 'y'"):
        Problem(name="a", coordinates=["x"], modes=1, operator={"potential": "y"})


# -- invalid files -------------------------------------------------------------------------


def test_unknown_top_level_key() -> None:
    issue = one_error(MINIMAL + "modse: 3\n")
    assert issue.line == 4 and issue.key == "modse"
    assert "unknown key 'modse'" in issue.message and "modes" in issue.message
    issue = one_error(MINIMAL + "1: 2\n")
    assert issue.line == 4 and issue.message.startswith("unknown key 1 (allowed: name,")


def test_unknown_nested_key_names_key_and_line() -> None:
    issue = one_error(MINIMAL + "operator:\n  kinetic: 1\n  potentail: x**2\n")
    assert issue.line == 6
    assert issue.key == "operator.potentail"
    allowed = "unknown key 'potentail' (allowed: kinetic, diffusion, potential"
    assert issue.message.startswith(allowed)
    assert str(issue).startswith("problem.yaml:6: operator.potentail: unknown key 'potentail'")


def test_wrong_types() -> None:
    issue = one_error("name: p\ncoordinates: [x]\nmodes: many\n")
    assert (issue.line, issue.key) == (3, "modes")
    assert issue.message == "expected an integer, got 'many'"
    issue = one_error(MINIMAL + "operator: 3\n")
    assert issue.key == "operator" and "mapping" in issue.message
    issue = one_error(MINIMAL + "solver: {learning_rate: fast}\n")
    assert issue.key == "solver.learning_rate" and "expected a number" in issue.message
    issue = one_error(MINIMAL + "solver: {method: adam}\n")
    assert issue.key == "solver.method" and "'spin'" in issue.message
    issue = one_error(MINIMAL + "solver: {spin_decay: 1.5}\n")
    assert issue.key == "solver.spin_decay" and "<= 1" in issue.message
    issue = one_error(MINIMAL.replace("modes: 2", "modes: true"))
    assert issue.key == "modes" and "boolean" in issue.message


def test_missing_required_key() -> None:
    issue = one_error("name: p\ncoordinates: [x]\n")
    assert issue.key == "modes" and issue.message == "missing required key 'modes'"
    assert str(issue) == "problem.yaml: modes: missing required key 'modes'"


def test_bad_name_pattern() -> None:
    issue = one_error(MINIMAL.replace("name: p", "name: my problem/1"))
    assert (issue.line, issue.key) == (1, "name")
    assert "invalid name 'my problem/1'" in issue.message


def test_bad_ranges() -> None:
    text = MINIMAL.replace("[x]", "[x, y]") + doc("""
        domain:
          box:
            x: [0, 1]
            y: [2, 1]
        """)
    issue = one_error(text)
    assert (issue.line, issue.key) == (7, "domain.box.y")
    assert "lower end must be below upper end" in issue.message
    issue = one_error(MINIMAL + "reference:\n  eigenvalue: n\n  quantum_numbers: {n: [3, 1]}\n")
    assert issue.key == "reference.quantum_numbers.n" and issue.line == 6
    # Found by the fuzz test: an integral float of 1e308 used to end in an OverflowError.
    huge = MINIMAL + "reference:\n  eigenvalue: n\n  quantum_numbers: {n: [-1.0e+308, -1.0e+308]}\n"
    issue = one_error(huge)
    assert issue.key == "reference.quantum_numbers.n" and "+-1000000" in issue.message
    issue = one_error(MINIMAL + "solver: {batch_size: 7}\n")
    assert issue.message == "must be even, got 7"
    issue = one_error(MINIMAL.replace("modes: 2", "modes: 0"))
    assert issue.message == "must be >= 1, got 0"


def test_box_naming_a_non_coordinate() -> None:
    errors = errors_of(MINIMAL + "domain: {box: {x: [0, 1], z: [0, 1]}}\n")
    assert [(e.line, e.key) for e in errors] == [(4, "domain.box.z")]
    assert errors[0].message == "unknown coordinate 'z' (coordinates: x)"
    issue = one_error(MINIMAL.replace("[x]", "[x, y]") + "domain: {box: {x: [0, 1]}}\n")
    assert issue.key == "domain.box" and "missing limits for coordinate y" in issue.message


def test_undeclared_name_in_potential() -> None:
    text = doc("""
        name: p
        coordinates: [x, y]
        parameters: {Z: 1}
        operator:
          potential: "-q/sqrt(x**2 + y**2)"
        modes: 1
        """)
    issue = one_error(text)
    assert (
        str(issue)
        == "problem.yaml:5: operator.potential: unknown name 'q' (allowed: x, y, Z, pi, E); "
        "declare constants under `parameters:`"
    )


def test_hostile_expression_in_file() -> None:
    start = time.process_time()
    issue = one_error(MINIMAL + "operator: {potential: \"__import__('os').system('true')\"}\n")
    assert time.process_time() - start < 1
    assert issue.key == "operator.potential"


def test_reference_mixing_forms_or_neither() -> None:
    issue = one_error(MINIMAL + "reference: {eigenvalues: [1], eigenvalue: n}\n")
    assert issue.key == "reference" and "not both" in issue.message
    issue = one_error(MINIMAL + "reference: {}\n")
    assert issue.key == "reference" and "needs 'eigenvalues'" in issue.message
    issue = one_error(MINIMAL + "reference: {eigenvalue: n + 1}\n")
    assert issue.key == "reference.quantum_numbers" and "missing" in issue.message


def test_reference_names() -> None:
    errors = errors_of(
        MINIMAL
        + doc("""
        reference:
          eigenvalue: "n + x"
          quantum_numbers: {n: [0, 3], x: [0, 1]}
          where: "n"
          eigenfunction: "hermite(n, x) * q"
        """)
    )
    messages = {e.key: e.message for e in errors}
    assert "already used as a coordinate" in messages["reference.quantum_numbers.x"]
    assert "condition" in messages["reference.where"]
    assert "unknown name 'q'" in messages["reference.eigenfunction"]


def test_quantum_ranges_too_big() -> None:
    issue = one_error(
        MINIMAL + "reference:\n  eigenvalue: a + b\n  quantum_numbers: {a: [0, 999], b: [0, 999]}\n"
    )
    assert issue.key == "reference.quantum_numbers"
    assert "1000000 states (limit 100000)" in issue.message


def test_yaml_syntax_error_reports_line() -> None:
    issue = one_error("name: p\ncoordinates: [x, y\nmodes: 1\n")
    assert issue.line == 3 and issue.message.startswith("YAML syntax error")
    issue = one_error("name: p\n  bad: indent\n")
    assert issue.line == 2


def test_aliases_and_anchors_are_refused() -> None:
    laughs = 'a: &a ["lol","lol"]\nb: &b [*a,*a,*a]\nc: &c [*b,*b,*b]\n'
    issue = one_error(laughs)
    assert issue.line == 1 and "anchors and aliases" in issue.message
    issue = one_error(MINIMAL + "operator: &op {potential: x}\n")
    assert issue.line == 4


def test_non_mapping_top_level_and_empty_file() -> None:
    assert "top level must be a mapping" in one_error("- 1\n- 2\n").message
    assert "top level must be a mapping" in one_error("just text\n").message
    assert "empty" in one_error("").message
    assert "empty" in one_error("# only a comment\n").message


def test_unsafe_tags_and_duplicates() -> None:
    issue = one_error(MINIMAL + "description: !!python/object/apply:os.system ['true']\n")
    assert issue.line == 4 and "YAML" in issue.message
    issue = one_error(MINIMAL + "modes: 3\n")
    assert issue.line == 4 and "duplicate key 'modes'" in issue.message


def test_two_independent_errors_are_both_reported() -> None:
    text = doc("""
        name: p
        coordinates: [x, y]
        operator:
          potential: "x**2 + w"
        modes: 4
        solver:
          stesp: 100
        """)
    errors = errors_of(text)
    assert [(e.line, e.key) for e in errors] == [(4, "operator.potential"), (7, "solver.stesp")]
    rendered = str(ProblemError(errors)).splitlines()
    assert rendered[0].startswith("problem.yaml:4: operator.potential: unknown name 'w'")
    assert rendered[1].startswith("problem.yaml:7: solver.stesp: unknown key 'stesp'")
    assert "did you mean 'steps'" in rendered[1]


def test_many_errors_in_one_file() -> None:
    text = doc("""
        name: bad name
        coordinates: [x, x, sin]
        parameters: {pi: 3}
        operator:
          kinetic: -1
        domain: {region: "x > 0", bounds: {x: [0, 1]}}
        modes: 1000
        reference: {eigenvalues: []}
        """)
    keys = [e.key for e in errors_of(text)]
    for expected in [
        "name",
        "coordinates[1]",
        "coordinates[2]",
        "parameters.pi",
        "operator.kinetic",
        "domain.region",
        "modes",
        "reference.eigenvalues",
    ]:
        assert expected in keys


def test_file_size_limit_and_load_errors(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("description: " + "a" * 1_100_000 + "\n")
    with pytest.raises(ProblemError, match="too large"):
        load_problem(big)
    with pytest.raises(ProblemError, match="too large"):
        parse_problem("a" * 1_100_000)
    with pytest.raises(ProblemError, match="cannot read"):
        load_problem(tmp_path / "missing.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ProblemError, match="UTF-8"):
        load_problem(binary)
    deep = "a: " + "[" * 5000 + "]" * 5000 + "\n"
    with pytest.raises(ProblemError):
        parse_problem(deep)


def test_issue_and_error_formatting() -> None:
    issue = ProblemIssue("problem.yaml", 12, "operator.potential", "unknown name 'q'")
    assert str(issue) == "problem.yaml:12: operator.potential: unknown name 'q'"
    assert str(ProblemIssue("p.yaml", None, "", "file is empty")) == "p.yaml: file is empty"
    error = ProblemError([issue, ProblemIssue("problem.yaml", 3, "modes", "must be >= 1")])
    assert str(error) == (
        "problem.yaml:12: operator.potential: unknown name 'q'\nproblem.yaml:3: modes: must be >= 1"
    )


def test_derivative_settings_are_validated() -> None:
    issue = one_error(MINIMAL + "solver: {derivatives: fast}\n")
    assert issue.key == "solver.derivatives" and issue.line == 4
    assert "forward-laplacian" in issue.message
    issue = one_error(MINIMAL + "solver: {compile: 'yes'}\n")
    assert issue.key == "solver.compile"
    issue = one_error(MINIMAL + "solver: {hutchinson_probes: 0}\n")
    assert issue.key == "solver.hutchinson_probes"
    ok = parse_problem(MINIMAL + "solver: {derivatives: weak, compile: true, dtype: tf32}\n")
    assert (ok.solver.derivatives, ok.solver.compile, ok.solver.dtype) == ("weak", True, "tf32")


# -- hostile files (found by tests/spec/test_fuzz_problems.py) -----------------------------------


def test_keys_with_line_breaks_or_lookalikes_are_escaped_on_one_line() -> None:
    issue = one_error(MINIMAL + 'operator: {"a\\nb": 1}\n')
    assert str(issue) == (
        "problem.yaml:4: operator.'a\\nb': unknown key 'a\\nb' (allowed: kinetic, diffusion, "
        "potential, weight, langevin, drift, kernel, input_coordinates, input_domain)"
    )
    issue = one_error(MINIMAL + '"a\\Lb": 1\n')  # U+2028, a line break for splitlines()
    assert len(str(issue).splitlines()) == 1 and "'a\\u2028b'" in str(issue)
    issue = one_error(MINIMAL + "n\u0430me: p\n")  # Cyrillic a
    assert issue.key == "'n\\u0430me'" and "unknown key 'n\\u0430me'" in issue.message
    issue = one_error("name: p\ncoordinates: [\u0445]\nmodes: 2\n")
    assert "invalid coordinate name '\\u0445'" in issue.message


def test_keys_that_yaml_converts_keep_their_line() -> None:
    issue = one_error(MINIMAL + "~: 1\n")
    assert (issue.line, issue.key) == (4, "None")


def test_sets_are_refused() -> None:
    # A set validated as a list, with its coordinates in arbitrary order (or a TypeError).
    issue = one_error("name: p\ncoordinates: !!set {x, y}\nmodes: 2\n")
    assert issue.line == 2 and "sets (!!set) are not allowed" in issue.message


def test_huge_numbers_are_refused_briefly_and_located() -> None:
    issue = one_error("name: p\ncoordinates: [x]\nmodes: " + "9" * 5000 + "\n")
    assert issue.line == 3 and "5000 digits is too long" in issue.message
    issue = one_error(MINIMAL + "parameters: {a: " + "9" * 400 + "}\n")
    assert issue.message == "expected a number, got an integer of about 10^400"
    issue = one_error("name: p\ncoordinates: [x]\nmodes: 1.0e+300\n")
    assert issue.message == "must be <= 512, got an integer of about 10^300"
    # Two ranges of 4000 digits: printing the count raised ValueError (int digits limit).
    big = "9" * 4000
    text = MINIMAL + f"reference: {{eigenvalue: a, quantum_numbers: {{a: [0, {big}], b: [0, 1]}}}}"
    issue = one_error(text.replace("b: [0, 1]", f"b: [0, {big}]") + "\n")
    assert "more than 10^15 states (limit 100000)" in issue.message


def test_interval_must_have_a_finite_width() -> None:
    issue = one_error(MINIMAL + "domain: {box: {x: [-1e308, 1e308]}}\n")
    assert issue.key == "domain.box.x" and "too wide for float64" in issue.message


def test_large_files_are_refused_quickly() -> None:
    start = time.process_time()
    issue = one_error(MINIMAL + "reference: {eigenvalues: [" + "1, " * 50_000 + "1]}\n")
    assert issue.line == 4 and "too many YAML values (limit 10000)" in issue.message
    unknown = MINIMAL + "".join(f"key{i}: 1\n" for i in range(4000))
    errors = errors_of(unknown)  # deduplicated in linear time, reported up to a limit
    assert len(errors) == 101 and str(errors[-1]) == "problem.yaml: ... and 3900 more errors"
    long_expression = "'" + "+".join(f"sin(x + {i})" for i in range(140)) + "'"
    text = MINIMAL + "operator:\n  drift: [" + ", ".join([long_expression] * 4) + "]\n"
    issue = one_error(text)
    assert issue.key == "operator.drift[3]" and "too long together" in issue.message
    assert time.process_time() - start < 2.0


def test_parameter_count_is_limited() -> None:
    text = MINIMAL + "parameters: {" + ", ".join(f"p{i}: 1" for i in range(300)) + "}\n"
    issue = one_error(text)
    assert issue.key == "parameters" and issue.message == "allows at most 256 entries, got 300"


def test_key_at_the_wrong_level_suggests_where_it_belongs() -> None:
    """A new user wrote `potential:` at the top level; the hint now names operator.potential."""
    issue = one_error(
        doc("""
        name: p
        coordinates: [x]
        potential: "x**2"
        modes: 1
        """)
    )
    assert str(issue).startswith("problem.yaml:3: potential: unknown key 'potential'")
    assert str(issue).endswith("did you mean 'operator.potential'?)")
