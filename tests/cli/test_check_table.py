"""`nsvd check`: every error at once, as a table at a terminal and as FILE:LINE: key: message
lines otherwise; a summary of a valid file."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from nsvd_cli.cli import app
from nsvd_cli.cli import solve as cli_solve
from nsvd_cli.runs import prepare
from nsvd_cli.spec.load import ProblemError, load_problem

ROOT = Path(__file__).resolve().parents[2]
RUNNER = CliRunner()

# Four errors on four lines, one of them quoting brackets that Rich would take for markup.
BAD = """name: "b[red]d"
coordinates: [x]
modes: 0
solver: {stepz: 3}
operator: {potential: "q*x"}
"""


@pytest.fixture
def bad(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    monkeypatch.setenv("COLUMNS", "250")  # no wrapping inside table cells
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    with pytest.raises(ProblemError) as caught:
        load_problem(path)
    return path, [str(issue) for issue in caught.value.errors]


def test_plain_lines_when_not_a_terminal(bad: tuple[Path, list[str]]) -> None:
    path, lines = bad
    assert len(lines) == 4
    for args in (["check", str(path)], ["check", str(path), "--plain"]):
        result = RUNNER.invoke(app, args)
        assert result.exit_code == 2
        assert result.stderr.splitlines() == lines  # one FILE:LINE: key: message line each
        assert result.stdout == ""


def _table_rows(text: str) -> list[list[str]]:
    rows: list[list[str]] = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells and rows and not cells[0]:  # a long message folded onto the next line
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells)]
        elif cells:
            rows.append(cells)
    return rows


def test_table_lists_every_error(bad: tuple[Path, list[str]]) -> None:
    path, _ = bad
    result = RUNNER.invoke(app, ["check", str(path), "--table"])
    assert result.exit_code == 2
    text = result.stderr
    assert f"{path}: 4 errors" in text
    header = [c.strip() for c in text.splitlines()[2].split("┃")[1:-1]]
    assert header == ["line", "key", "problem"]
    rows = _table_rows(text)
    assert [row[:2] for row in rows] == [
        ["1", "name"],
        ["3", "modes"],
        ["4", "solver.stepz"],
        ["5", "operator.potential"],
    ]
    assert rows[0][2].startswith("invalid name 'b[red]d'")  # shown as written, not as markup
    assert "did you mean 'steps'?" in rows[2][2]
    assert rows[3][2].startswith("unknown name 'q'")


def test_terminal_gets_the_table_by_default(
    bad: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, lines = bad
    monkeypatch.setattr(cli_solve, "err", Console(stderr=True, force_terminal=True))
    result = RUNNER.invoke(app, ["check", str(path)])
    assert result.exit_code == 2
    assert "┃ line" in result.stderr and lines[0] not in result.stderr
    # --plain still gives the lines at a terminal (for a script run in one).
    result = RUNNER.invoke(app, ["check", str(path), "--plain"])
    assert result.exit_code == 2 and lines[0] in result.stderr and "┃" not in result.stderr


def test_file_level_error_in_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    path = tmp_path / "empty.yaml"
    path.write_text("")
    result = RUNNER.invoke(app, ["check", str(path), "--table"])
    assert result.exit_code == 2
    rows = _table_rows(result.stderr)
    assert rows == [["-", "(file)", rows[0][2]]] and rows[0][2].startswith("file is empty")


def test_summary_of_a_valid_file() -> None:
    path = ROOT / "problems" / "hydrogen-2d.yaml"
    result = RUNNER.invoke(app, ["check", str(path)])
    assert result.exit_code == 0, result.output
    first, *rest = result.stdout.splitlines()
    assert first == f"{path}: ok (hydrogen-2d, d=2, 16 modes)"  # scripts read this line
    shown = {line.split()[0]: " ".join(line.split()[1:]) for line in rest}
    assert shown["operator"] == "H = -(1/2) Laplacian + V, V = -Z/sqrt(x**2 + y**2)"
    assert shown["wants"] == "the 16 lowest eigenvalues"
    assert shown["domain"] == "whole space"
    assert shown["parameters"] == "Z = 1"
    assert shown["reference"] == "closed form over n, m, with eigenfunctions"
    assert shown["solver"].startswith("neuralsvd-sequential")
    assert "steps" not in shown  # derived settings only on request
    derived = RUNNER.invoke(app, ["check", str(path), "--derived"]).stdout
    assert "exact Coulomb cusp factor (rate 2)" in " ".join(derived.split())


def test_summary_of_an_integral_operator_with_derived_settings() -> None:
    path = ROOT / "problems" / "low-rank-kernel.yaml"
    result = RUNNER.invoke(app, ["check", str(path), "--derived"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    flat = " ".join(text.split())
    assert "the 4 largest singular values" in flat
    assert "domain box x in [0, 1]" in flat and "input domain box y in [-1, 1]" in flat
    assert "with left functions and right functions" in flat
    settings = prepare(load_problem(path))
    lines = {line.split("  ")[1].strip(): line.strip() for line in text.splitlines()[1:]}
    assert lines["steps"].split()[-1] == str(settings.optimiser.steps)
    assert lines["batch size"].split()[-1] == str(settings.optimiser.batch_size)
    assert lines["training time"].split()[2] == "about" and "ms per step" in lines["training time"]


def test_derived_settings_of_an_eigenproblem_run_to_a_tolerance(tmp_path: Path) -> None:
    text = (ROOT / "problems" / "oscillator-1d.yaml").read_text()
    path = tmp_path / "tol.yaml"
    path.write_text(text + "solver: {tol: 2.0e-4}\n")
    result = RUNNER.invoke(app, ["check", str(path), "--derived"])
    assert result.exit_code == 0, result.output
    lines = {line.split("  ")[1].strip(): line.strip() for line in result.stdout.splitlines()[1:]}
    settings = prepare(load_problem(path))
    net = settings.network
    assert lines["network"].endswith(
        f"{net.architecture}, {net.depth} x {net.hidden}, 1 buffer function above the wanted modes"
    )
    assert "0.0002 (relative interval half-width" in lines["tolerance"]
    assert lines["steps"].endswith(f"at most {settings.optimiser.steps}")
    assert "adaptive (at least" in lines["shift, scale"]
    # a run to a tolerance may stop early: its time is an upper bound
    timing = lines["training time"]
    assert "up to about" in timing and "timed over 20 steps" in timing
    shipped = ROOT / "problems" / "oscillator-1d.yaml"
    plain = RUNNER.invoke(app, ["check", str(shipped), "--derived"])
    assert "buffer" not in plain.stdout and "tolerance" not in plain.stdout


def test_check_refuses_a_reference_with_fewer_states_than_modes(tmp_path: Path) -> None:
    """Loading cannot know it; enumerating the states can: the Poschl-Teller well has four
    bound states, so five modes make `nsvd eval` fail later. `check` says so now."""
    text = (ROOT / "problems" / "poschl-teller-1d.yaml").read_text()
    assert "\nmodes: 4\n" in text
    path = tmp_path / "pt5.yaml"
    path.write_text(text.replace("\nmodes: 4\n", "\nmodes: 5\n"))
    result = RUNNER.invoke(app, ["check", str(path), "--plain"])
    assert result.exit_code == 2
    line = f"{path}:{text[: text.index(chr(10) + 'reference:')].count(chr(10)) + 2}: reference:"
    assert line in result.output, result.output
    assert "4 states but modes is 5" in result.output
    ok = RUNNER.invoke(app, ["check", str(ROOT / "problems" / "poschl-teller-1d.yaml")])
    assert ok.exit_code == 0, ok.output


def test_bounds_that_cut_the_region_are_refused(tmp_path: Path) -> None:
    """Found by a new-user trial: bounds y in [-0.5, 0.5] around the unit disk silently
    solved the clipped disk (other eigenvalues). check, solve and reference refuse it."""
    text = (ROOT / "problems" / "disk-2d.yaml").read_text()
    assert "bounds: {x: [-1, 1], y: [-1, 1]}" in text
    path = tmp_path / "cut.yaml"
    path.write_text(text.replace("y: [-1, 1]}", "y: [-0.5, 0.5]}"))
    for command in (["check", str(path), "--plain"], ["reference", str(path)]):
        result = RUNNER.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert "domain.bounds.y: the region reaches the lower bound y = -0.5" in result.output
    with pytest.raises(ProblemError, match="bounds must enclose"):
        prepare(load_problem(path))
    # Bounds exactly on the edge (touching, as for the shipped disk) are fine.
    assert RUNNER.invoke(app, ["check", str(ROOT / "problems" / "disk-2d.yaml")]).exit_code == 0
