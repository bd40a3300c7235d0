"""End to end: solve, results.h5 round trip, resume, eval and export through the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from helpers import oscillator
from typer.testing import CliRunner

from nsvd_cli.cli import app
from nsvd_cli.cli.tables import run_warnings
from nsvd_cli.errors import RunFileError
from nsvd_cli.files.checkpoint import RunFileWarning, load_checkpoint
from nsvd_cli.files.results import read_results
from nsvd_cli.runs import evaluate, load_run, prepare, resume_settings, solve
from nsvd_cli.spec.load import load_problem, parse_problem

ROOT = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")

SMALL = oscillator(
    "small-oscillator",
    solver={"steps": 300, "batch_size": 256, "eval_samples": 4096, "checkpoint_every": 100,
            "hidden": 16},
    functions=True,
)


def _small(tmp_path: Path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    return path


def test_oscillator_1d_end_to_end_accuracy(tmp_path: Path) -> None:
    """The 1D oscillator, 4 modes, default settings except a shorter run: < 1e-3."""
    runner = CliRunner()
    problem = ROOT / "problems" / "oscillator-1d.yaml"
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["solve", str(problem), "--out", str(run_dir), "--steps", "6000"])
    assert result.exit_code == 0, result.output
    assert "far from orthogonal" not in result.stderr and "live estimates" not in result.stderr
    result = runner.invoke(app, ["eval", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["reference"] == [0.5, 1.5, 2.5, 3.5]
    assert report["max_relative_error"] < 1e-3, report["relative_errors"]
    assert report["eigenvalues"] == sorted(report["eigenvalues"])
    assert report["orthogonality"] < 0.05
    assert report["subspace_distance"] is not None and report["subspace_distance"] < 1e-2
    assert report["subspace_distance_all"] < 1e-2
    # Subspace distance is the mean squared sine, so the angles are about its square root.
    assert max(report["angle_distances"]) < 0.1
    # Sequential nesting orders the raw outputs: ||f_l||^2 alone reads the spectrum.
    assert max(report["native_relative_errors"]) < 2e-2, report["native_eigenvalues"]
    # The read-out's own standard error must be well below the accuracy claimed.
    relative_se = [s / abs(r) for s, r in zip(report["stderr"], report["reference"])]
    assert max(relative_se) < 2.5e-4
    # Residual intervals: every mode has one, and it holds the exact eigenvalue.
    assert "unavailable" not in report["interval_methods"]
    assert report["reference_in_interval"] == [True] * 4, report["intervals"]


def test_results_file_round_trip(tmp_path: Path) -> None:
    problem = load_problem(_small(tmp_path))
    settings = prepare(problem)
    results, complete = solve(problem, settings, tmp_path / "run", CPU)
    assert complete
    back = read_results(tmp_path / "run" / "results.h5")
    np.testing.assert_array_equal(back.eigenvalues, results.eigenvalues)
    np.testing.assert_array_equal(back.stderr, results.stderr)
    assert back.problem_yaml == SMALL
    assert back.settings == settings.to_dict()
    assert back.attrs["steps"] == 300 and back.attrs["complete"]
    assert results.intervals is not None and back.intervals is not None
    np.testing.assert_array_equal(back.intervals.low, results.intervals.low)
    np.testing.assert_array_equal(back.intervals.high, results.intervals.high)
    assert back.intervals.methods == results.intervals.methods
    assert bool((back.intervals.low <= back.intervals.high).all())
    with h5py.File(tmp_path / "run" / "results.h5") as f:
        assert f["eigenvalues"].dtype == np.float64
        assert f["eigenvalues"].shape == (2,)
        assert f["problem/yaml"][()].decode() == SMALL
    # The stored network reproduces the stored eigenvalue read-out's functions.
    run = load_run(tmp_path / "run")
    for name, value in run.network.state_dict().items():
        np.testing.assert_allclose(value.numpy(), back.network[name])


def test_resume_gives_the_uninterrupted_result(tmp_path: Path) -> None:
    problem = load_problem(_small(tmp_path))
    full, _ = solve(problem, prepare(problem), tmp_path / "full", CPU)

    calls = {"n": 0}

    def stop_after_150() -> bool:
        calls["n"] += 1
        return calls["n"] > 150

    part, complete = solve(problem, prepare(problem), tmp_path / "part", CPU, stop=stop_after_150)
    assert not complete
    assert read_results(tmp_path / "part" / "results.h5").attrs["complete"] == False  # noqa: E712
    settings = resume_settings(tmp_path / "part", problem)
    resumed, complete = solve(problem, settings, tmp_path / "part", CPU, resume=True)
    assert complete
    np.testing.assert_array_equal(resumed.eigenvalues, full.eigenvalues)
    np.testing.assert_array_equal(resumed.history["loss"], full.history["loss"])


def test_resume_refuses_another_problem(tmp_path: Path) -> None:
    problem = load_problem(_small(tmp_path))
    solve(problem, prepare(problem), tmp_path / "run", CPU)
    other = parse_problem(SMALL.replace("small-oscillator", "other"), "other.yaml")
    runner = CliRunner()
    other_path = tmp_path / "other.yaml"
    other_path.write_text(other.source_text)
    result = runner.invoke(
        app, ["solve", str(other_path), "--out", str(tmp_path / "run"), "--resume"]
    )
    assert result.exit_code == 1
    assert "different problem" in result.output


def test_export_grid_shapes_and_normalisation(tmp_path: Path) -> None:
    runner = CliRunner()
    path = _small(tmp_path)
    args = ["solve", str(path), "--out", str(tmp_path / "r"), "--steps", "2000"]
    assert runner.invoke(app, args).exit_code == 0
    target = tmp_path / "ef.h5"
    result = runner.invoke(app, ["export", str(tmp_path / "r"), "-o", str(target), "--grid", "201"])
    assert result.exit_code == 0, result.output
    with h5py.File(target) as f:
        values = f["eigenfunctions/values"][()]
        x = f["eigenfunctions/x"][()]
        assert values.shape == (2, 201)
        assert f["eigenvalues"].shape == (2,)
        assert f["eigenfunctions/values"].compression == "gzip"
    norms = (values**2).sum(1) * (x[1] - x[0])
    np.testing.assert_allclose(norms, 1.0, atol=0.05)


def test_box_problem_satisfies_boundary_condition(tmp_path: Path) -> None:
    text = """
name: box-1d
coordinates: [x]
operator: {potential: 0}
domain: {box: {x: [0, 2]}}
modes: 2
solver: {steps: 200, batch_size: 256, hidden: 16}
reference: {eigenvalue: "pi**2*k**2/8", quantum_numbers: {k: [1, 5]}}
"""
    path = tmp_path / "box.yaml"
    path.write_text(text)
    runner = CliRunner()
    assert runner.invoke(app, ["solve", str(path), "--out", str(tmp_path / "r")]).exit_code == 0
    assert runner.invoke(app, ["export", str(tmp_path / "r"), "--grid", "11"]).exit_code == 0
    with h5py.File(tmp_path / "r" / "eigenfunctions.h5") as f:
        values = f["eigenfunctions/values"][()]
    assert np.all(values[:, 0] == 0.0) and np.all(values[:, -1] == 0.0)
    assert np.all(np.isfinite(values))


def test_coulomb_problem_trains_without_nan(tmp_path: Path) -> None:
    problem = load_problem(ROOT / "problems" / "hydrogen-2d.yaml")
    settings = prepare(problem, steps=50)
    settings.readout.eval_samples = 4096
    results, _ = solve(problem, settings, tmp_path / "r", CPU)
    assert np.all(np.isfinite(results.eigenvalues))
    assert np.all(np.isfinite(results.history["loss"]))
    # The exact cusp factor: rate Z / (kappa (d - 1)) = 2; |x| stays an input (softened).
    assert settings.network.cusp == pytest.approx(2.0) and settings.network.radial_feature
    assert settings.transform.shift == 0.0


def test_bad_problem_file_exits_2_with_location(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ncoordinates: [x]\noperator: {potential: 'q*x'}\nmodes: 2\n")
    result = CliRunner().invoke(app, ["solve", str(path)])
    assert result.exit_code == 2
    assert "bad.yaml:3" in result.output and "operator.potential" in result.output


def test_eval_without_reference_fails_clearly_and_shows_the_runs_own_intervals(
    tmp_path: Path,
) -> None:
    """Nothing to compare with: exit 1 (the contract), the message on stderr, and what the
    run knows of itself on stdout (values, intervals, orthogonality)."""
    path = tmp_path / "noref.yaml"
    path.write_text(SMALL.split("reference:")[0])
    runner = CliRunner()
    assert runner.invoke(app, ["solve", str(path), "--out", str(tmp_path / "r")]).exit_code == 0
    result = runner.invoke(app, ["eval", str(tmp_path / "r"), "--json"])
    assert result.exit_code == 1
    assert "no reference" in result.stderr
    own = json.loads(result.stdout)
    assert own["reference"] is None and own["relative_errors"] is None
    assert own["eigenvalues"] == sorted(own["eigenvalues"]) and len(own["eigenvalues"]) == 2
    assert len(own["intervals"]) == 2 and len(own["interval_methods"]) == 2
    assert 0.0 <= own["orthogonality"] < 1.0
    table = runner.invoke(app, ["eval", str(tmp_path / "r")])
    assert table.exit_code == 1
    assert "95% interval" in table.stdout and "orthogonality" in table.stdout


def test_a_short_run_ends_with_warnings_that_say_what_to_do(tmp_path: Path) -> None:
    """Wide intervals and overlapping functions are named after the table (a converged run
    gets neither: test_oscillator_1d_end_to_end_accuracy)."""
    path = tmp_path / "osc.yaml"
    path.write_text(oscillator("osc", modes=2, solver={"eval_samples": 16384, "hidden": 32}))
    short = CliRunner().invoke(app, ["solve", str(path), "--out", tmp_path / "s", "--steps", 30])
    assert short.exit_code == 0, short.output
    assert "warning: modes [" in short.stderr and "train longer" in short.stderr
    assert "far from orthogonal" in short.stderr
    assert run_warnings(read_results(tmp_path / "s" / "results.h5"))


COULOMB_2D = (
    "name: coulomb-2d\ncoordinates: [x, y]\n"
    'operator: {potential: "-1/sqrt(x**2 + y**2)"}\nmodes: 2\n'
    "solver: {steps: 40, batch_size: 256, eval_samples: 4096, hidden: 16}\n"
)


def test_a_2d_coulomb_problem_without_the_cusp_factor_has_no_intervals_and_says_why(
    tmp_path: Path,
) -> None:
    """||H u|| is infinite at a 2-D Coulomb point for a learned function without the exact
    cusp: no number."""
    path = tmp_path / "coulomb.yaml"
    path.write_text(COULOMB_2D + "network: {cusp: false}\n")
    runner = CliRunner()
    assert runner.invoke(app, ["solve", str(path), "--out", str(tmp_path / "r")]).exit_code == 0
    stored = read_results(tmp_path / "r" / "results.h5")
    assert stored.intervals is not None and stored.intervals.methods == ["unavailable"] * 2
    # 40 steps: nothing has converged, and the run says so with what to do.
    assert any("train longer" in w for w in run_warnings(stored))
    assert bool(np.isnan(stored.intervals.low).all())
    own = json.loads(runner.invoke(app, ["eval", str(tmp_path / "r"), "--json"]).stdout)
    assert own["intervals"] == [[None, None], [None, None]]
    assert "2-D" in own["interval_unavailable"] and "infinite" in own["interval_unavailable"]


def test_a_2d_coulomb_problem_with_the_default_cusp_factor_has_intervals(tmp_path: Path) -> None:
    path = tmp_path / "coulomb.yaml"
    path.write_text(COULOMB_2D)
    result = CliRunner().invoke(app, ["solve", str(path), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    stored = read_results(tmp_path / "r" / "results.h5")
    assert stored.intervals is not None and "unavailable" not in stored.intervals.methods
    assert np.isfinite(stored.intervals.low).all() and np.isfinite(stored.intervals.high).all()
    assert (stored.intervals.low <= stored.intervals.high).all()


def test_a_cusp_factor_that_cannot_apply_is_refused_where_it_is_written(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    harmonic = COULOMB_2D.replace("-1/sqrt(x**2 + y**2)", "x**2 + y**2")
    path.write_text(harmonic + "network: {cusp: true}\n")
    result = CliRunner().invoke(app, ["solve", str(path), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert "p.yaml:6" in result.output and "network.cusp" in result.output
    assert "needs V = -Z/r" in result.output


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "problems").glob("*.yaml")))
def test_shipped_problems_check_and_derive(name: str) -> None:
    result = CliRunner().invoke(app, ["check", str(ROOT / "problems" / f"{name}.yaml")])
    assert result.exit_code == 0, result.output
    settings = prepare(load_problem(ROOT / "problems" / f"{name}.yaml"))
    scale = settings.transform.scale
    assert settings.optimiser.steps > 0 and scale > 0 and math.isfinite(scale)


def test_spin_trains_resumes_and_reports_its_own_eigenvalues(tmp_path: Path) -> None:
    path = tmp_path / "spin.yaml"
    path.write_text(SMALL.replace("solver: {", "solver: {method: spin, spin_decay: 0.5, "))
    problem = load_problem(path)
    settings = prepare(problem)
    assert (settings.method, settings.spin_decay) == ("spin", 0.5)
    # Stopped half way and resumed: SpIN's running averages travel in the checkpoint, so
    # the resumed run ends exactly where an uninterrupted one does.
    full, _ = solve(problem, settings, tmp_path / "full", CPU)
    calls = {"n": 0}

    def stop_half() -> bool:
        calls["n"] += 1
        return calls["n"] > settings.optimiser.steps // 2

    solve(problem, settings, tmp_path / "part", CPU, stop=stop_half)
    resumed, complete = solve(problem, settings, tmp_path / "part", CPU, resume=True)
    assert complete
    np.testing.assert_array_equal(resumed.eigenvalues, full.eigenvalues)
    assert resumed.native is not None and resumed.native.shape == (problem.modes,)
    report = evaluate(load_run(tmp_path / "full")).to_json()
    assert len(report["native_relative_errors"]) == problem.modes


def test_derivatives_option_and_hutchinson_report(tmp_path: Path) -> None:
    runner = CliRunner()
    run_dir = tmp_path / "r"
    args = ["solve", str(_small(tmp_path)), "--out", str(run_dir)]
    result = runner.invoke(app, [*args, "--derivatives", "fast"])
    assert result.exit_code == 2 and "--derivatives" in result.output
    result = runner.invoke(app, [*args, "--derivatives", "hutchinson"])
    assert result.exit_code == 0, result.output
    results = read_results(run_dir / "results.h5")
    assert results.settings["derivatives"] == "hutchinson"
    # One dimension: a Rademacher probe is +-1, so the estimate is exact.
    assert results.attrs["hutchinson_relative_variance"] == pytest.approx(0.0, abs=1e-12)
    assert "relative variance" in result.output


def test_tf32_dtype_trains_on_cpu_as_float32(tmp_path: Path) -> None:
    path = tmp_path / "tf32.yaml"
    path.write_text(SMALL.replace("solver: {", "solver: {dtype: tf32, "))
    run_dir = tmp_path / "r"
    result = CliRunner().invoke(app, ["solve", str(path), "--out", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert np.isfinite(read_results(run_dir / "results.h5").eigenvalues).all()


def test_disjoint_network_with_features_trains_and_reloads(tmp_path: Path) -> None:
    text = SMALL.replace("hidden: 16}", "hidden: 16}\nnetwork: {kind: disjoint, depth: 2, ")
    text = text.replace("depth: 2, ", "depth: 2, fourier_features: 2, envelope: true}")
    path = tmp_path / "disjoint.yaml"
    path.write_text(text)
    problem = load_problem(path)
    settings = prepare(problem)
    network = settings.network
    assert (network.architecture, network.depth, network.envelope) == ("disjoint-mlp", 2, True)
    results, complete = solve(problem, settings, tmp_path / "run", CPU)
    assert complete and np.isfinite(results.eigenvalues).all()
    run = load_run(tmp_path / "run")
    assert type(run.network).__name__ == "DisjointMLP"
    back = read_results(tmp_path / "run" / "results.h5")
    for name, value in run.network.state_dict().items():
        np.testing.assert_allclose(value.numpy(), back.network[name])


def test_method_option_selects_and_validates(tmp_path: Path) -> None:
    runner = CliRunner()
    run_dir = tmp_path / "r"
    args = ["solve", str(_small(tmp_path)), "--out", str(run_dir)]
    result = runner.invoke(app, [*args, "--method", "adam"])
    assert result.exit_code == 2 and "--method" in result.output and "spin" in result.output
    result = runner.invoke(app, [*args, "--method", "neuralef"])
    assert result.exit_code == 0, result.output
    assert read_results(run_dir / "results.h5").settings["method"] == "neuralef"


def _resumable_run(tmp_path: Path) -> tuple[Path, Path]:
    """A run interrupted after 150 steps (checkpoints every 100: two were written)."""
    problem_path = _small(tmp_path)
    problem = load_problem(problem_path)
    calls = {"n": 0}

    def stop_after_150() -> bool:
        calls["n"] += 1
        return calls["n"] > 150

    solve(problem, prepare(problem), tmp_path / "part", CPU, stop=stop_after_150)
    return problem_path, tmp_path / "part"


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_damaged_checkpoint_falls_back_to_the_previous_one(tmp_path: Path, damage: str) -> None:
    _, run = _resumable_run(tmp_path)
    current, previous = run / "checkpoint.pt", run / "checkpoint.prev.pt"
    assert previous.is_file()
    good_step = load_checkpoint(run)["train"]["step"]
    raw = current.read_bytes()
    if damage == "truncate":
        current.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":
        middle = len(raw) // 2
        current.write_bytes(raw[:middle] + bytes([raw[middle] ^ 0xFF]) + raw[middle + 1 :])
    else:
        current.unlink()
    with pytest.warns(RunFileWarning, match="previous"):
        state = load_checkpoint(run)
    assert state["train"]["step"] < good_step  # the older checkpoint
    # Both unusable: a clear error naming the file.
    previous.write_bytes(b"junk")
    with pytest.raises(RunFileError, match="checkpoint"):
        load_checkpoint(run)


def test_resume_after_a_damaged_checkpoint_through_the_cli(tmp_path: Path) -> None:
    problem_path, run = _resumable_run(tmp_path)
    raw = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(raw[:100])
    with pytest.warns(RunFileWarning, match="checksum mismatch"):
        result = CliRunner().invoke(
            app, ["solve", str(problem_path), "--out", str(run), "--resume", "--device", "cpu"]
        )
    assert result.exit_code == 0, result.output
    assert read_results(run / "results.h5").attrs["complete"]


def test_checkpoints_written_before_checksums_still_load(tmp_path: Path) -> None:
    torch.save({"train": {"step": 7}}, tmp_path / "checkpoint.pt")
    assert load_checkpoint(tmp_path)["train"]["step"] == 7


def test_precision_option_trains_in_bf16_and_reads_out_in_float64(tmp_path: Path) -> None:
    """bf16-mixed: the network and operator terms under bfloat16 autocast, the loss in
    float32, the read-out in float64; an unknown precision is refused."""
    path = _small(tmp_path)
    runner = CliRunner()
    run = tmp_path / "bf16"
    args = ["solve", str(path), "--out", str(run), "--precision", "bf16-mixed", "--steps", "300"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    results = read_results(run / "results.h5")
    assert results.settings["dtype"] == "bf16-mixed"
    assert results.eigenvalues.dtype == np.float64
    # The same run in float32 (same seed and points): bf16 only perturbs the trajectory.
    fp32 = tmp_path / "fp32"
    args = ["solve", str(path), "--out", str(fp32), "--precision", "fp32", "--steps", "300"]
    assert runner.invoke(app, args).exit_code == 0
    reference = read_results(fp32 / "results.h5").eigenvalues
    np.testing.assert_allclose(results.eigenvalues, reference, rtol=2e-2)
    assert not np.allclose(results.eigenvalues, reference, rtol=1e-9, atol=0)  # it did differ
    result = runner.invoke(app, ["solve", str(path), "--out", str(run), "--precision", "fp8"])
    assert result.exit_code == 2 and "--precision" in result.output
