"""The Kind registry, the options each kind honours, the memory bound of every kind, and
strict --resume: what a kind cannot do is refused before any work (exit 2, one line naming
the option and the kind), never recorded in /settings as used."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import oscillator
from typer.testing import CliRunner, Result

from nsvd_cli.cli import app
from nsvd_cli.files import read_results
from nsvd_cli.kinds import KINDS, kind_of, refusals
from nsvd_cli.spec import load_problem, parse_problem
from nsvd_cli.spec.domains import BoxDomain, RegionDomain
from nsvd_cli.spec.medium import has_switches

ROOT = Path(__file__).resolve().parents[2]
VOLTERRA = ROOT / "problems" / "volterra.yaml"
DRIFT = ROOT / "problems" / "convection-diffusion-2d.yaml"

TINY = oscillator(
    "tiny-oscillator",
    solver={"steps": 4, "batch_size": 64, "eval_samples": 1024, "checkpoint_every": 2, "hidden": 8},
    reference=False,
)


def _solve(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["solve", *args])
    return result.exit_code, result.output


def test_the_shared_fixtures_solve_a_tiny_problem(
    write_problem: Callable[[str, str], Path], nsvd: Callable[..., Result], tmp_path: Path
) -> None:
    path = write_problem(TINY, "tiny")
    result = nsvd("solve", path, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "results.h5").is_file()


def test_every_wanted_value_and_wall_condition_has_one_kind() -> None:
    pairs = [(kind.wanted, walls) for kind in KINDS.values() for walls in kind.walls]
    assert len(pairs) == len(set(pairs))  # kind_of is never ambiguous
    assert {w for w, _ in pairs} == {"largest-singular", "lowest", "smallest-singular"}
    for name, expected in (("oscillator-1d", "eigen"), ("volterra", "integral"),
                           ("convection-diffusion-2d", "drift")):
        problem = load_problem(ROOT / "problems" / f"{name}.yaml")
        assert kind_of(problem).name == expected


@pytest.mark.parametrize("name", ["oscillator-2d", "volterra", "convection-diffusion-2d",
                                  "disk-2d", "gaussian-cdk"])
def test_derived_settings_are_all_supported(name: str) -> None:
    """A kind's own defaults never trip its own refusals."""
    problem = load_problem(ROOT / "problems" / f"{name}.yaml")
    kind = kind_of(problem)
    assert refusals(kind, kind.derive_settings(problem)) == []


@pytest.mark.parametrize(
    ("problem", "args", "named"),
    [
        (VOLTERRA, ["--precision", "bf16-mixed"], "--precision bf16-mixed"),
        (VOLTERRA, ["--compile"], "--compile"),
        (VOLTERRA, ["--derivatives", "hutchinson"], "--derivatives hutchinson"),
        (VOLTERRA, ["--method", "spin"], "--method spin"),
        (DRIFT, ["--derivatives", "weak"], "--derivatives weak"),
    ],
)
def test_unsupported_option_is_refused_naming_option_and_kind(
    tmp_path: Path, problem: Path, args: list[str], named: str
) -> None:
    code, output = _solve(str(problem), "--out", str(tmp_path / "run"), *args)
    assert code == 2, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith(f"error: {named}: not supported for")
    assert f"kind '{kind_of(load_problem(problem)).name}'" in lines[0]
    assert not (tmp_path / "run").exists()  # refused before any work


def test_unsupported_file_key_is_a_located_error(tmp_path: Path) -> None:
    text = VOLTERRA.read_text() + "\nsolver:\n  dtype: bf16-mixed\n"
    path = tmp_path / "volterra-bf16.yaml"
    path.write_text(text)
    line = text.splitlines().index("  dtype: bf16-mixed") + 1
    code, output = _solve(str(path), "--out", str(tmp_path / "run"))
    assert code == 2, output
    assert output.strip() == (
        f"{path}:{line}: solver.dtype: not supported for an integral operator "
        "(kind 'integral'; supported: fp32, tf32, fp64)"
    )


BOX_1D = """name: box-1d
coordinates: [x]
operator: {kinetic: 1/2, potential: 0}
domain: {box: {x: [0, 1]}}
modes: 2
solver:
  steps: 4
  eval_samples: 4096
"""


def test_eval_samples_on_a_quadrature_read_out_is_a_located_error(tmp_path: Path) -> None:
    """A 1-D box is read out by a fixed Gauss rule: the key would be recorded but unused."""
    path = tmp_path / "box-1d.yaml"
    path.write_text(BOX_1D)
    code, output = _solve(str(path), "--out", str(tmp_path / "run"))
    assert code == 2, output
    assert output.startswith(f"{path}:8: solver.eval_samples: does not apply"), output
    assert "quadrature rule (Gauss-Legendre" in output and not (tmp_path / "run").exists()
    checked = CliRunner().invoke(app, ["check", str(path)])  # check refuses it too
    assert checked.exit_code == 2 and f"{path}:8: solver.eval_samples" in checked.output
    path.write_text(BOX_1D.replace("  eval_samples: 4096\n", ""))
    assert kind_of(load_problem(path)).derive_settings(
        load_problem(path)).readout.quadrature == "gauss-legendre"
    # Where the read-out samples (the whole line), the same key is honoured.
    sampled = oscillator("sampled", solver={"steps": 4, "eval_samples": 4096}, reference=False)
    whole = tmp_path / "sampled.yaml"
    whole.write_text(sampled)
    readout = kind_of(load_problem(whole)).derive_settings(load_problem(whole)).readout
    assert readout.eval_samples == 4096 and readout.quadrature == ""


@pytest.mark.parametrize("path", sorted((ROOT / "problems").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_box_and_planar_region_records_its_quadrature_read_out(path: Path) -> None:
    """Every differential kind (the Neumann kind derives its own settings too) records the
    rule that reads it out; the whole space and integral operators sample."""
    problem = load_problem(path)
    settings = kind_of(problem).derive_settings(problem)
    d = len(problem.coordinates)
    planar = isinstance(problem.domain, RegionDomain) and d == 2
    # A 2-D or 3-D box whose coefficients may jump samples: jumps are located in 1-D only.
    boxed = isinstance(problem.domain, BoxDomain) and (d == 1 or (
        d <= 3 and not has_switches(problem)))
    ruled = (boxed or planar) and kind_of(problem).name != "integral"
    assert bool(settings.readout.quadrature) == ruled, settings.readout


@pytest.mark.parametrize("problem_text", [TINY, VOLTERRA.read_text()])
def test_a_batch_that_cannot_fit_is_refused_up_front(tmp_path: Path, problem_text: str) -> None:
    """solver.batch_size = 1e12 used to end in an allocator traceback (exit 1)."""
    problem = parse_problem(problem_text)
    text = problem_text.replace("batch_size: 64", "batch_size: 1000000000000")
    if "batch_size: 1000000000000" not in text:
        text += "\nsolver: {batch_size: 1000000000000}\n"
    path = tmp_path / f"{problem.name}.yaml"
    path.write_text(text)
    code, output = _solve(str(path), "--out", str(tmp_path / "run"))
    assert code == 2, output
    assert "the training step (solver.batch_size = 1000000000000" in output
    assert "lower solver.batch_size" in output
    assert "Traceback" not in output


def test_max_memory_is_checked_for_integral_operators(tmp_path: Path) -> None:
    code, output = _solve(str(VOLTERRA), "--out", str(tmp_path / "run"), "--max-memory", "1M")
    assert code == 2, output
    assert "allowed (--max-memory)" in output


@pytest.fixture(scope="module")
def started_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("resume")
    problem = folder / "tiny.yaml"
    problem.write_text(TINY)
    code, output = _solve(str(problem), "--out", str(folder / "run"), "--seed", "3")
    assert code == 0, output
    return problem, folder / "run"


@pytest.mark.parametrize(
    ("args", "named", "started"),
    [
        (["--method", "neuralef"], "--method neuralef", "neuralsvd-sequential"),
        (["--derivatives", "weak"], "--derivatives weak", "auto"),
        (["--precision", "fp64"], "--precision fp64", "fp32"),
        (["--compile"], "--compile on", "off"),
        (["--seed", "4"], "--seed 4", "3"),
    ],
)
def test_resume_with_another_option_is_refused_naming_both(
    started_run: tuple[Path, Path], args: list[str], named: str, started: str
) -> None:
    problem, run = started_run
    before = read_results(run / "results.h5").settings
    code, output = _solve(str(problem), "--out", str(run), "--resume", "--steps", "6", *args)
    assert code == 2, output
    assert output.strip().startswith(f"error: {named}: the run in {run} was started with {started}")
    assert read_results(run / "results.h5").settings == before  # nothing recorded


def test_resume_with_the_same_options_continues(started_run: tuple[Path, Path]) -> None:
    problem, run = started_run
    code, output = _solve(
        str(problem), "--out", str(run), "--resume", "--steps", "6", "--seed", "3",
        "--method", "neuralsvd-sequential", "--precision", "fp32",
    )
    assert code == 0, output
    assert read_results(run / "results.h5").attrs["steps"] == 6
