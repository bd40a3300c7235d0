"""What ``nsvd plot`` draws, as arrays (no matplotlib here: ``plotting`` draws them).

* ``function_panels``: a run's learned functions on a grid (a line for d = 1, an image for
  d = 2, a 2-D slice through the origin for d > 2), with the reference functions aligned
  to them;
* ``training_curves``: the history of the estimates and the loss, with the reference;
* ``gram_matrices``: the normalised Gram matrix of the learned functions.

Alignment. Within a degenerate level any rotation of the reference functions is as right
as any other, so each level's reference block R (K functions, K >= the k learned ones in
the level) is first made orthonormal in L2, B = R W with W = (R^T R)^(-1/2), and then
rotated onto the learned block L by orthogonal Procrustes: Q = U V^T from the SVD
U S V^T = B^T L, which minimises ||B Q - L|| over Q with orthonormal columns. The plotted
reference functions are B Q: true eigenfunctions (combinations within a level), each as
close as possible to its learned counterpart, with its sign. Inner products are Monte-Carlo
means over the run's own sampler (importance-weighted), like ``nsvd eval``'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from nsvd_cli.files import GridReference
from nsvd_cli.kinds import EVAL_SEED_OFFSET, FunctionSide, Run, reference_callables
from nsvd_cli.objectives.readout import normalized_gram
from nsvd_cli.references.closed_form import degenerate_levels, usable_reference

# Monte-Carlo points for the alignment: its error is far below what a figure shows.
ALIGN_SAMPLES = 1 << 14
DEFAULT_POINTS = {1: 400, 2: 96}
WHOLE_SPACE_MARGIN = 1.4  # the plot window over the export window, whole space


@dataclass(frozen=True)
class FunctionPanels:
    """Learned (and aligned reference) functions on a 1-D or 2-D grid, in mode order."""

    side: str
    axes: tuple[str, ...]  # the plotted coordinates (1 or 2)
    grids: tuple[tuple[np.ndarray, ...], ...]  # per mode: a 1-D array per plotted axis
    fixed: dict[str, float]  # the other coordinates' values on the slice
    learned: np.ndarray  # (modes, n) or (modes, n, n), NaN outside a region
    reference: np.ndarray | None  # same shape, or None without reference functions
    values: np.ndarray  # the run's eigen / singular values, mode order
    reference_values: np.ndarray | None
    symbol: str  # "E" or "s"


def function_sides(run: Run) -> list[FunctionSide]:
    """The families ``plot`` draws (the run's kind names them): one for an eigenproblem,
    left and right otherwise; whole-space windows widened past the export window."""
    sides = run.kind.sides(run)
    if run.settings.sampler.domain != "whole-space":
        return sides
    widened = []
    for side in sides:
        # The export window (+- 4 rms of the highest state) cuts a loosely bound state's
        # tail (Poschl-Teller's top one at 5% of its peak); images zoom in per mode anyway.
        mid = [0.5 * (a + b) for a, b in zip(side.lo, side.hi)]
        lo = tuple(m + WHOLE_SPACE_MARGIN * (a - m) for m, a in zip(mid, side.lo))
        hi = tuple(m + WHOLE_SPACE_MARGIN * (b - m) for m, b in zip(mid, side.hi))
        widened.append(dataclasses.replace(side, lo=lo, hi=hi))
    return widened


def reference_values(run: Run, against: GridReference | None = None) -> np.ndarray | None:
    """The values to compare with in mode order: a grid reference's, else the closed form."""
    if against is not None:
        return np.asarray(against.eigenvalues[: run.problem.modes], dtype=np.float64)
    return usable_reference(run.problem)


def procrustes_coefficients(learned: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Coefficients C (K, k) such that ``reference @ C`` is the orthonormal combination of
    the reference columns closest to the learned columns (sample-frame values, (n, k) and
    (n, K)); see the module docstring."""
    n = reference.shape[0]
    gram = reference.T @ reference / n
    w, v = np.linalg.eigh(gram)
    keep = w > w.max() * 1e-12
    whiten = (v[:, keep] / np.sqrt(w[keep])) @ v[:, keep].T
    cross = (reference @ whiten).T @ learned / n
    u, _, vt = np.linalg.svd(cross, full_matrices=False)
    return whiten @ (u @ vt)


Window = tuple[tuple[float, float], ...]  # (lo, hi) per plotted axis


def _slice_points(
    side: FunctionSide, axes: tuple[str, ...], window: Window, points: int
) -> tuple[tuple[np.ndarray, ...], dict[str, float], np.ndarray]:
    """A regular grid over ``window`` on the plotted axes; the other coordinates fixed."""
    index = [side.coordinates.index(a) for a in axes]
    grids = tuple(np.linspace(lo, hi, points) for lo, hi in window)
    fixed = {}
    for i, name in enumerate(side.coordinates):
        if i not in index:  # through the origin inside the window, else its centre (a
            lo, hi = side.lo[i], side.hi[i]  # box's face, where the functions vanish)
            fixed[name] = 0.0 if lo < 0.0 < hi else 0.5 * (lo + hi)
    mesh = np.meshgrid(*grids, indexing="ij")
    pts = np.empty((mesh[0].size, len(side.coordinates)))
    for name, value in fixed.items():
        pts[:, side.coordinates.index(name)] = value
    for i, m in zip(index, mesh):
        pts[:, i] = m.ravel()
    return grids, fixed, pts


# The zoomed window holds this fraction of |psi|^2 along each axis (on the slice).
ZOOM_MASS = 0.995


def zoom_window(values: np.ndarray, grids: tuple[np.ndarray, ...], full: Window) -> Window:
    """The square around where one mode's |psi|^2 lies (ZOOM_MASS of it along each axis,
    plus a 15% margin), inside ``full``: a hydrogen ground state is a dot in the window
    that holds the highest wanted state."""
    weight = np.nan_to_num(values) ** 2
    if not weight.sum() > 0:
        return full
    half, centre = 0.0, []
    for axis, grid in enumerate(grids):
        other = tuple(i for i in range(weight.ndim) if i != axis)
        cdf = np.cumsum(weight.sum(axis=other))
        cdf /= cdf[-1]
        lo = grid[min(int(np.searchsorted(cdf, (1 - ZOOM_MASS) / 2)), len(grid) - 1)]
        hi = grid[min(int(np.searchsorted(cdf, (1 + ZOOM_MASS) / 2)), len(grid) - 1)]
        centre.append(0.5 * (lo + hi))
        half = max(half, 0.5 * (hi - lo))
    step = max((g[-1] - g[0]) / (len(g) - 1) for g in grids)
    half = 1.15 * half + step  # at least a coarse cell beyond the quantiles
    return tuple(
        (max(f_lo, c - half), min(f_hi, c + half)) for c, (f_lo, f_hi) in zip(centre, full)
    )


def function_panels(
    run: Run,
    side: FunctionSide,
    axes: tuple[str, ...] | None = None,
    points: int | None = None,
    modes: int | None = None,
    against: GridReference | None = None,
    zoom: bool | None = None,
    seed_offset: int = 4,
) -> FunctionPanels:
    """The first ``modes`` learned functions of ``side`` on a grid over ``axes`` (default:
    the first one or two coordinates), with the aligned reference functions when the problem
    has them (``against`` gives values only, no functions). With ``zoom`` (the default for
    images) each mode gets its own window around where it lives."""
    d = len(side.coordinates)
    axes = tuple(axes or side.coordinates[: min(d, 2)])
    for a in axes:
        if a not in side.coordinates:
            raise ValueError(f"{a!r} is not a coordinate ({', '.join(side.coordinates)})")
    if len(set(axes)) != len(axes) or not 1 <= len(axes) <= 2:
        raise ValueError("name one or two different coordinates")
    zoom = len(axes) == 2 if zoom is None else zoom
    points = points or DEFAULT_POINTS[len(axes)]
    total = run.problem.modes
    shown = min(modes or total, total)
    values = np.asarray(_values(run), dtype=np.float64)
    ref_values = reference_values(run, against)
    reference_at = None
    if against is None and ref_values is not None:
        reference_at = _aligned_reference(run, side, ref_values, seed_offset)

    def evaluate(window: Window) -> tuple:
        grids, fixed, pts = _slice_points(side, axes, window, points)
        x = torch.from_numpy(pts)
        learned = side.functions(x).numpy()[:, :shown]
        reference = None if reference_at is None else reference_at(pts)[:, :shown]
        if side.inside is not None:
            outside = side.inside(x).numpy() <= 0
            learned[outside] = np.nan
            if reference is not None:
                reference[outside] = np.nan
        shape = tuple(len(g) for g in grids)
        learned = learned.T.reshape((shown,) + shape)
        if reference is not None:
            reference = reference.T.reshape((shown,) + shape)
        return grids, fixed, learned, reference

    full = tuple(
        (side.lo[side.coordinates.index(a)], side.hi[side.coordinates.index(a)]) for a in axes
    )
    grids, fixed, learned, reference = evaluate(full)
    mode_grids = [grids] * shown
    if zoom:
        for m in range(shown):
            window = zoom_window(learned[m], grids, full)
            if window != full:
                g, _, lv, rv = evaluate(window)
                mode_grids[m] = g
                learned[m] = lv[m]
                if reference is not None and rv is not None:
                    reference[m] = rv[m]
    return FunctionPanels(
        side=side.name,
        axes=axes,
        grids=tuple(mode_grids),
        fixed=fixed,
        learned=learned,
        reference=reference,
        values=values[:shown],
        reference_values=None if ref_values is None else ref_values[:shown],
        symbol=run.kind.symbol,
    )


def _values(run: Run) -> np.ndarray:
    """The run's values in mode order (largest first for an integral operator)."""
    if run.results.singular is not None:
        return np.asarray(run.results.singular.values)
    return np.asarray(run.results.eigenvalues)


def _aligned_reference(
    run: Run, side: FunctionSide, ref_values: np.ndarray, seed_offset: int
) -> Callable[[np.ndarray], np.ndarray] | None:
    """The reference functions as ``points (n, d) -> (n, modes)``, each degenerate level
    rotated onto the learned functions (see the module docstring)."""
    levels = degenerate_levels(ref_values)
    blocks = [reference_callables(run, side.name, float(ref_values[idx[0]])) for idx in levels]
    if any(b is None for b in blocks):
        return None
    gen = torch.Generator().manual_seed(run.settings.seed + seed_offset * EVAL_SEED_OFFSET)
    x, frame = side.sample(ALIGN_SAMPLES, gen)
    learned = side.functions(x).numpy() * frame[:, None]
    xs = x.numpy()
    rotations = []
    for idx, funcs in zip(levels, blocks):
        assert funcs is not None
        sampled = np.stack([f(xs) for f in funcs], axis=1) * frame[:, None]
        rotations.append(procrustes_coefficients(learned[:, idx], sampled))

    def at(pts: np.ndarray) -> np.ndarray:
        out = np.zeros((len(pts), len(ref_values)))
        for idx, funcs, c in zip(levels, blocks, rotations):
            assert funcs is not None
            out[:, idx] = np.stack([f(pts) for f in funcs], axis=1) @ c
        return out

    return at


@dataclass(frozen=True)
class TrainingCurves:
    step: np.ndarray  # (T,)
    loss: np.ndarray  # (T,)
    estimates: np.ndarray  # (T, modes), mode order
    reference: np.ndarray | None  # (modes,)
    symbol: str


def training_curves(run: Run, against: GridReference | None = None) -> TrainingCurves:
    h = run.results.history
    return TrainingCurves(
        step=np.asarray(h["step"]),
        loss=np.asarray(h["loss"]),
        estimates=np.asarray(h["eigenvalues"]).reshape(len(h["step"]), -1),
        reference=reference_values(run, against),
        symbol=run.kind.symbol,
    )


def gram_matrices(run: Run) -> dict[str, np.ndarray]:
    """The normalised Gram matrices of the trained functions: G_ij / sqrt(G_ii G_jj)
    (the identity for orthogonal functions); two for a two-network problem."""
    sv = run.results.singular
    two_networks = sv is not None and sv.right_gram is not None
    out = {"left" if two_networks else "functions": run.results.wanted_gram}
    if sv is not None and sv.right_gram is not None:
        out["right"] = sv.right_gram
    return {k: normalized_gram(torch.from_numpy(np.asarray(g))).numpy() for k, g in out.items()}
