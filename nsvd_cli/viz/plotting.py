"""Matplotlib figures of a run, from the arrays of ``figures``; PNGs written atomically.

Every figure has a fixed size in inches (``*_layout``), so a PNG's pixel size is known in
advance: ``pixels(layout, dpi)``. The Agg backend is used, so no display is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from nsvd_cli.files.atomic import atomic_path  # noqa: E402
from nsvd_cli.viz.figures import FunctionPanels, TrainingCurves  # noqa: E402

PANEL_INCHES = (2.6, 2.3)  # one mode's panel (width, height)
TITLE_INCHES = 0.5  # the figure title's band
MAX_COLUMNS = 4


@dataclass(frozen=True)
class Layout:
    rows: int
    columns: int
    width: float  # inches
    height: float


def pixels(layout: Layout, dpi: int) -> tuple[int, int]:
    """(width, height) of the PNG that ``save`` writes for ``layout``."""
    return round(layout.width * dpi), round(layout.height * dpi)


def functions_layout(panels: FunctionPanels) -> Layout:
    """1-D: one panel per mode (learned and reference overlaid); 2-D: a learned row and,
    with a reference, a reference row under it for every row of modes."""
    modes = panels.learned.shape[0]
    columns = min(modes, MAX_COLUMNS)
    rows = math.ceil(modes / columns)
    if len(panels.axes) == 2 and panels.reference is not None:
        rows *= 2
    return Layout(rows, columns, columns * PANEL_INCHES[0], rows * PANEL_INCHES[1] + TITLE_INCHES)


def training_layout(curves: TrainingCurves) -> Layout:
    columns = 3 if curves.reference is not None else 2
    return Layout(1, columns, columns * 4.0, 3.4 + TITLE_INCHES)


def gram_layout(count: int) -> Layout:
    return Layout(1, count, count * 4.2, 3.6 + TITLE_INCHES)


def save(fig: Figure, path: Path, dpi: int) -> Path:
    """Write the PNG through a temporary file (a reader never sees half a figure)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return path


def _figure(layout: Layout, title: str) -> tuple[Figure, np.ndarray]:
    fig, grid = plt.subplots(
        layout.rows,
        layout.columns,
        figsize=(layout.width, layout.height),
        squeeze=False,
        layout="constrained",
    )
    fig.suptitle(title)
    return fig, grid


def _value_title(panels: FunctionPanels, mode: int) -> str:
    text = f"{mode}: {panels.symbol} = {panels.values[mode]:.6g}"
    if panels.reference_values is not None and mode < len(panels.reference_values):
        text += f"\n(reference {panels.reference_values[mode]:.6g})"
    return text


def _slice_note(panels: FunctionPanels) -> str:
    if not panels.fixed:
        return ""
    return " at " + ", ".join(f"{k} = {v:.3g}" for k, v in panels.fixed.items())


def plot_functions(panels: FunctionPanels, title: str, path: Path, dpi: int = 100) -> Path:
    layout = functions_layout(panels)
    side = {"eigen": "eigenfunctions", "left": "left singular functions"}.get(
        panels.side, "right singular functions"
    )
    fig, grid = _figure(layout, f"{title}: {side}{_slice_note(panels)}")
    for ax in grid.flat:
        ax.set_axis_off()
    if len(panels.axes) == 1:
        _lines(panels, grid, layout.columns)
    else:
        _images(panels, grid, layout.columns)
    if panels.reference is not None:
        legend = (
            "solid: learned, dashed: reference"
            if len(panels.axes) == 1
            else ("rows: learned, reference (aligned within degenerate levels)")
        )
        fig.supxlabel(legend, fontsize=9)
    return save(fig, path, dpi)


def _lines(panels: FunctionPanels, grid: np.ndarray, columns: int) -> None:
    for mode in range(panels.learned.shape[0]):
        x = panels.grids[mode][0]
        ax = grid[mode // columns, mode % columns]
        ax.set_axis_on()
        ax.plot(x, panels.learned[mode], color="C0", lw=1.6, label="learned")
        if panels.reference is not None:
            ax.plot(x, panels.reference[mode], color="k", lw=1.0, ls="--", label="reference")
        ax.axhline(0.0, color="0.8", lw=0.6, zorder=0)
        ax.set_title(_value_title(panels, mode), fontsize=9)
        ax.set_xlabel(panels.axes[0], fontsize=9)
        ax.tick_params(labelsize=7)


def _images(panels: FunctionPanels, grid: np.ndarray, columns: int) -> None:
    has_ref = panels.reference is not None
    for mode in range(panels.learned.shape[0]):
        (x, y) = panels.grids[mode]  # each mode's own window (zoomed)
        extent = (x[0], x[-1], y[0], y[-1])
        row = (mode // columns) * (2 if has_ref else 1)
        col = mode % columns
        learned = panels.learned[mode]
        ref = panels.reference[mode] if panels.reference is not None else None
        scale = np.nanmax(np.abs(learned)) if np.isfinite(learned).any() else 1.0
        if ref is not None and np.isfinite(ref).any():
            scale = max(scale, float(np.nanmax(np.abs(ref))))
        scale = scale if scale > 0 else 1.0
        # With a reference row the reference value titles it; without (a grid reference's
        # values only) the learned panel's title carries it.
        title = _value_title(panels, mode)
        pairs = [(grid[row, col], learned, title.split("\n")[0] if ref is not None else title)]
        if ref is not None and panels.reference_values is not None:
            label = f"reference {panels.reference_values[mode]:.6g}"
            pairs.append((grid[row + 1, col], ref, label))
        for ax, image, label in pairs:
            ax.set_axis_on()
            # The arrays are indexed [x, y]: transpose so x runs across and y up.
            shown = ax.imshow(
                image.T,
                origin="lower",
                extent=extent,
                cmap="RdBu_r",
                vmin=-scale,
                vmax=scale,
                interpolation="nearest",
            )
            ax.set_title(label, fontsize=9)
            ax.set_xlabel(panels.axes[0], fontsize=8)
            ax.set_ylabel(panels.axes[1], fontsize=8)
            ax.tick_params(labelsize=7)
            ax.set_aspect("equal")
            bar = ax.figure.colorbar(shown, ax=ax, shrink=0.8)
            bar.ax.tick_params(labelsize=6)


def plot_training(curves: TrainingCurves, title: str, path: Path, dpi: int = 100) -> Path:
    """Estimates vs step (reference dashed), relative errors (log), and the loss."""
    layout = training_layout(curves)
    fig, grid = _figure(layout, f"{title}: training")
    ax = grid[0, 0]
    modes = curves.estimates.shape[1]
    for mode in range(modes):
        color = mode_color(mode, modes)
        label = f"mode {mode}"
        ax.plot(curves.step, curves.estimates[:, mode], color=color, lw=1.2, label=label)
        if curves.reference is not None and mode < len(curves.reference):
            ax.axhline(curves.reference[mode], color=color, lw=0.8, ls="--")
    _limit_to_spectrum(ax, curves)
    ax.legend(fontsize=6, ncol=1 if modes <= 8 else 2, loc="upper right", framealpha=0.7)
    ax.set_xlabel("step")
    ax.set_ylabel(curves.symbol)
    ax.set_title("estimates" + (" (dashed: reference)" if curves.reference is not None else ""))
    column = 1
    if curves.reference is not None:
        ax = grid[0, 1]
        ref = np.asarray(curves.reference)[:modes]
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.abs(curves.estimates[:, : len(ref)] - ref) / np.abs(ref)
        for mode in range(rel.shape[1]):
            color = mode_color(mode, modes)
            ax.semilogy(curves.step, np.maximum(rel[:, mode], 1e-12), color=color, lw=1)
        ax.set_xlabel("step")
        ax.set_title("relative error")
        column = 2
    ax = grid[0, column]
    ax.plot(curves.step, curves.loss, color="k", lw=1.0)
    # The early transient (often 100x the final loss) would flatten the rest.
    settled = curves.loss[len(curves.loss) // 5 :]
    settled = settled[np.isfinite(settled)]
    if settled.size > 1 and settled.max() > settled.min():
        pad = 0.1 * (settled.max() - settled.min())
        ax.set_ylim(settled.min() - pad, settled.max() + pad)
    ax.set_xlabel("step")
    ax.set_title("loss" + (" (y range: the last 80% of steps)" if len(curves.loss) >= 5 else ""))
    for ax in grid[0]:
        ax.xaxis.set_major_formatter(FuncFormatter(_steps_label))
    return save(fig, path, dpi)


def mode_color(mode: int, modes: int) -> Any:
    """Matplotlib's ten cycle colours up to ten modes; past that they would repeat, so a
    colour map (one colour per mode, in order) instead."""
    if modes <= 10:
        return f"C{mode}"
    return plt.get_cmap("viridis")(mode / (modes - 1))


def _steps_label(value: float, _position: int) -> str:
    # 70000 -> 70k: full step counts overlap in a 4-inch panel.
    return f"{value / 1000:g}k" if abs(value) >= 1000 else f"{value:g}"


def _limit_to_spectrum(ax: plt.Axes, curves: TrainingCurves) -> None:
    """Early estimates can be far off; keep the final spectrum readable."""
    final = curves.estimates[-1][np.isfinite(curves.estimates[-1])]
    if curves.reference is not None:
        final = np.concatenate([final, np.asarray(curves.reference, dtype=float)])
    if final.size == 0:
        return
    lo, hi = float(final.min()), float(final.max())
    pad = 0.25 * (hi - lo) + 0.05 * max(abs(lo), abs(hi), 1e-12)
    ax.set_ylim(lo - pad, hi + pad)


def plot_gram(grams: dict[str, np.ndarray], title: str, path: Path, dpi: int = 100) -> Path:
    """|G_ij| of the normalised Gram matrix on a log scale (1 on the diagonal)."""
    layout = gram_layout(len(grams))
    fig, grid = _figure(layout, f"{title}: normalised Gram matrix |G_ij|")
    for ax, (name, g) in zip(grid[0], grams.items()):
        magnitude = np.maximum(np.abs(g), 1e-8)
        image = ax.imshow(magnitude, cmap="magma", norm=LogNorm(vmin=1e-6, vmax=1.0))
        off = np.abs(g - np.diag(np.diag(g)))
        ax.set_title(f"{name}: max off-diagonal {off.max():.2e}", fontsize=10)
        stride = max(1, math.ceil(len(g) / 10))
        ticks = np.arange(0, len(g), stride)
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        ax.set_xlabel("mode")
        ax.set_ylabel("mode")
        fig.colorbar(image, ax=ax, shrink=0.85)
    return save(fig, path, dpi)
