"""`nsvd plot`: the figures exist, have the planned size and are not blank; the plotted
reference functions are the aligned closed forms and agree with a converged run's."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import oscillator
from typer.testing import CliRunner

from nsvd_cli.cli import app
from nsvd_cli.runs import evaluate, load_run
from nsvd_cli.viz.figures import (
    FunctionSide,
    function_panels,
    function_sides,
    procrustes_coefficients,
    training_curves,
)
from nsvd_cli.viz.plotting import functions_layout, gram_layout, pixels, training_layout

ROOT = Path(__file__).resolve().parents[2]

OSCILLATOR = oscillator(
    "plot-oscillator", modes=3, solver={"steps": 4000, "eval_samples": 8192}, functions=True
)

# Levels 1, 2, 2, 3, 3, 3: a degenerate pair inside the first three modes.
OSCILLATOR_2D = """
name: plot-oscillator-2d
coordinates: [x, y]
operator: {potential: "(x**2 + y**2)/2"}
modes: 3
solver: {steps: 40, batch_size: 256, eval_samples: 4096, hidden: 16, checkpoint_every: 20}
reference:
  eigenvalue: "a + b + 1"
  quantum_numbers: {a: [0, 6], b: [0, 6]}
  eigenfunction: "hermite(a, x)*hermite(b, y)*exp(-(x**2 + y**2)/2)"
"""

BOX_3D = """
name: plot-box-3d
coordinates: [x, y, z]
operator: {potential: 0}
domain: {box: {x: [0, 1], y: [0, 2], z: [0, 3]}}
modes: 2
solver: {steps: 20, batch_size: 128, hidden: 8, checkpoint_every: 10}
reference:
  eigenvalue: "pi**2/2*(a**2 + b**2/4 + c**2/9)"
  quantum_numbers: {a: [1, 4], b: [1, 4], c: [1, 4]}
  eigenfunction: "sin(a*pi*x)*sin(b*pi*y/2)*sin(c*pi*z/3)"
"""


def _solve(tmp: Path, text: str) -> Path:
    problem = tmp / "problem.yaml"
    problem.write_text(text)
    result = CliRunner().invoke(app, ["solve", str(problem), "--out", str(tmp / "run")])
    assert result.exit_code == 0, result.output
    return tmp / "run"


@pytest.fixture(scope="module")
def oscillator_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _solve(tmp_path_factory.mktemp("osc"), OSCILLATOR)


@pytest.fixture(scope="module")
def oscillator_2d_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _solve(tmp_path_factory.mktemp("osc2"), OSCILLATOR_2D)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _assert_drawn(path: Path) -> None:
    import matplotlib.image

    image = matplotlib.image.imread(path)
    ink = (image[..., :3] < 0.9).any(axis=-1).mean()  # not white
    assert 0.01 < ink < 0.9, f"{path}: {ink:.3f} of the pixels drawn"


def test_procrustes_finds_the_rotation_within_a_level() -> None:
    """Learned = a rotated (and reflected) orthonormal reference block: recovered exactly,
    also when the level has more reference functions than learned ones."""
    gen = np.random.default_rng(0)
    n = 20000
    reference = gen.normal(size=(n, 3)) @ np.array([[2.0, 0.3, 0], [0, 1.0, 0.5], [0, 0, 0.7]])
    q, _ = np.linalg.qr(reference / math.sqrt(n))
    basis = q * math.sqrt(n)  # orthonormal in the sample frame: basis.T @ basis / n = I
    angle = 0.7
    rotation = np.array(
        [[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, -1]]
    )
    learned = basis @ rotation
    c = procrustes_coefficients(learned, reference)
    np.testing.assert_allclose(reference @ c, learned, atol=1e-8)
    part = procrustes_coefficients(learned[:, :2], reference)  # a level cut by modes
    np.testing.assert_allclose(reference @ part, learned[:, :2], atol=1e-8)
    # Without the rotation the reference would not match: the test can fail.
    assert np.abs(basis - learned).max() > 0.1


def test_plot_writes_three_figures_of_the_planned_size(oscillator_run: Path) -> None:
    result = CliRunner().invoke(app, ["plot", str(oscillator_run)])
    assert result.exit_code == 0, result.output
    folder = oscillator_run / "plots"
    names = sorted(p.name for p in folder.glob("*.png"))
    assert names == ["eigenfunctions.png", "gram.png", "training.png"]
    run = load_run(oscillator_run)
    panels = function_panels(run, function_sides(run)[0])
    expected = {
        "eigenfunctions.png": pixels(functions_layout(panels), 100),
        "training.png": pixels(training_layout(training_curves(run)), 100),
        "gram.png": pixels(gram_layout(1), 100),
    }
    for name, size in expected.items():
        assert _png_size(folder / name) == size, name
        _assert_drawn(folder / name)
    # Three modes in one row of panels: wider than tall.
    width, height = _png_size(folder / "eigenfunctions.png")
    assert width > 2 * height
    assert not list(folder.glob("*.tmp-*"))


def test_plotted_reference_agrees_with_the_converged_learned_functions(
    oscillator_run: Path,
) -> None:
    """Where the run converged (eigenvalue error < 1e-2), the plotted learned curve and the
    plotted reference curve are the same function: relative L2 distance on the grid < 0.1.
    A mode against another mode's reference is far apart (the check can fail)."""
    run = load_run(oscillator_run)
    report = evaluate(run, samples=1 << 14).to_json()
    converged = [i for i, e in enumerate(report["relative_errors"]) if e < 1e-2]
    assert 0 in converged and 1 in converged, report["relative_errors"]
    panels = function_panels(run, function_sides(run)[0])
    assert panels.reference is not None
    x = panels.grids[0][0]  # 1-D: one window for every mode
    assert all(np.array_equal(g[0], x) for g in panels.grids)
    dx = x[1] - x[0]

    def distance(a: np.ndarray, b: np.ndarray) -> float:
        return math.sqrt(((a - b) ** 2).sum() * dx) / math.sqrt((b**2).sum() * dx)

    for mode in converged:
        learned, ref = panels.learned[mode], panels.reference[mode]
        assert distance(learned, ref) < 0.1, (mode, distance(learned, ref))
        # Both have unit L2 norm over the window (it holds nearly all of the function).
        assert abs(math.sqrt((ref**2).sum() * dx) - 1) < 0.02
    assert distance(panels.learned[0], panels.reference[1]) > 1.0


def test_degenerate_level_reference_is_rotated_onto_the_learned_pair(
    oscillator_2d_run: Path,
) -> None:
    """Feed the pipeline exact eigenfunctions, rotated by 35 degrees inside the degenerate
    level {(1,0), (0,1)} and sign-flipped: the plotted reference is those same functions,
    not the axis-aligned closed forms."""
    run = load_run(oscillator_2d_run)
    real = function_sides(run)[0]
    c, s = math.cos(0.61), math.sin(0.61)

    def exact(x: torch.Tensor) -> torch.Tensor:
        g = torch.exp(-(x**2).sum(1) / 2) / math.sqrt(math.pi)
        px, py = math.sqrt(2) * x[:, 0] * g, math.sqrt(2) * x[:, 1] * g
        return torch.stack([g, c * px + s * py, -(-s * px + c * py)], dim=1)

    side = FunctionSide("eigen", real.coordinates, real.lo, real.hi, exact, real.sample)
    panels = function_panels(run, side, points=48, zoom=False)
    assert panels.reference is not None
    scale = np.abs(panels.learned).max()
    np.testing.assert_allclose(panels.reference, panels.learned, atol=0.03 * scale)
    # The unrotated closed form of mode 1 would differ by far more.
    xs, ys = np.meshgrid(*panels.grids[1], indexing="ij")
    plain = math.sqrt(2 / math.pi) * xs * np.exp(-(xs**2 + ys**2) / 2)
    assert np.abs(plain - panels.learned[1]).max() > 0.2 * scale


def test_two_dimensional_figure_has_reference_rows(oscillator_2d_run: Path) -> None:
    out = oscillator_2d_run.parent / "figs"
    result = CliRunner().invoke(app, ["plot", str(oscillator_2d_run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    run = load_run(oscillator_2d_run)
    panels = function_panels(run, function_sides(run)[0])
    layout = functions_layout(panels)
    assert (layout.rows, layout.columns) == (2, 3)  # a learned row and a reference row
    assert _png_size(out / "eigenfunctions.png") == pixels(layout, 100)
    _assert_drawn(out / "eigenfunctions.png")


def test_three_dimensional_run_is_plotted_as_a_slice(tmp_path: Path) -> None:
    run_dir = _solve(tmp_path, BOX_3D)
    run = load_run(run_dir)
    panels = function_panels(run, function_sides(run)[0], axes=("x", "z"), points=24)
    assert panels.axes == ("x", "z") and panels.learned.shape == (2, 24, 24)
    assert panels.fixed == {"y": 1.0}  # the origin is on a face: the box's middle instead
    result = CliRunner().invoke(app, ["plot", str(run_dir), "--axes", "x,z", "--grid", "24"])
    assert result.exit_code == 0, result.output
    _assert_drawn(run_dir / "plots" / "eigenfunctions.png")
    bad = CliRunner().invoke(app, ["plot", str(run_dir), "--axes", "x,w"])
    assert bad.exit_code == 2
    assert "--axes" in bad.output and "'w'" in bad.output


def test_plot_of_a_missing_run_is_one_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["plot", str(tmp_path / "nothing")])
    assert result.exit_code == 1
    assert "error:" in result.output and "Traceback" not in result.output


def test_integral_operator_gets_left_and_right_figures(tmp_path: Path) -> None:
    problem = ROOT / "problems" / "volterra.yaml"
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["solve", str(problem), "--out", str(run), "--steps", "60"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["plot", str(run), "--grid", "64"])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (run / "plots").glob("*.png"))
    assert names == ["gram.png", "left-functions.png", "right-functions.png", "training.png"]
    loaded = load_run(run)
    left, right = function_sides(loaded)
    panels = function_panels(loaded, left, points=64)
    # The closed-form singular functions are there, and aligned: unit norm on [0, 1].
    assert panels.reference is not None and panels.symbol == "s"
    dx = 1 / 63
    norms = np.sqrt((panels.reference**2).sum(axis=1) * dx)
    np.testing.assert_allclose(norms, 1.0, atol=0.05)
    for name in names:
        _assert_drawn(run / "plots" / name)


def test_export_and_plot_take_a_window(oscillator_run: Path, tmp_path: Path) -> None:
    import h5py

    runner = CliRunner()
    target = tmp_path / "window.h5"
    args = ["export", str(oscillator_run), "-o", str(target), "--grid", "16"]
    result = runner.invoke(app, [*args, "--window", "x=-1:2"])
    assert result.exit_code == 0, result.output
    with h5py.File(target) as f:
        x = f["eigenfunctions/x"][()]
    assert (x[0], x[-1], len(x)) == (-1.0, 2.0, 16)
    plots = tmp_path / "plots"
    result = runner.invoke(
        app, ["plot", str(oscillator_run), "-o", str(plots), "--window", "x=-1:2"]
    )
    assert result.exit_code == 0, result.output
    assert (plots / "eigenfunctions.png").stat().st_size > 1000
    for bad, words in [("y=0:1", "y: not a coordinate"), ("x=2:1", "low end"), ("x=1", "NAME")]:
        result = runner.invoke(app, [*args, "--window", bad])
        assert result.exit_code == 2, result.output
        assert "--window" in result.stderr and words in result.stderr


def test_modes_past_ten_get_colours_of_their_own() -> None:
    from nsvd_cli.viz.plotting import mode_color

    assert [mode_color(m, 4) for m in range(4)] == ["C0", "C1", "C2", "C3"]
    many = [tuple(mode_color(m, 16)) for m in range(16)]
    assert len(set(many)) == 16
