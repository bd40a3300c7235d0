"""Comparisons of learned eigenpairs with a reference (pure functions on arrays)."""

from __future__ import annotations

import numpy as np


def relative_errors(learned: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """|learned - ref| / |ref| per mode. A level that is exactly 0 (the constant state of a
    Neumann problem) has no relative error of its own: it is measured against the largest
    |ref| of the compared levels, the spectrum's scale (1 where every level is 0)."""
    magnitude = np.abs(np.asarray(reference, dtype=float))
    scale = float(magnitude.max()) if magnitude.size and magnitude.max() > 0 else 1.0
    return np.abs(learned - reference) / np.where(magnitude > 0, magnitude, scale)


def _orthonormal_columns(a: np.ndarray, rtol: float = 1e-10) -> np.ndarray:
    """An orthonormal basis of span(a) under the sample inner product <u, v> = mean(u v)."""
    n = a.shape[0]
    gram = a.T @ a / n
    evals, evecs = np.linalg.eigh(gram)
    keep = evals > rtol * max(evals.max(), 1e-300)
    return a @ (evecs[:, keep] / np.sqrt(evals[keep]))


def subspace_distance(learned: np.ndarray, reference: np.ndarray) -> float:
    """1 - tr(P_learned P_ref) / k for sample values (n, k) and (n, m), k = learned dim.

    Both projectors are taken in the Monte-Carlo inner product of the samples, so the columns
    must be the functions divided by sqrt(p) at points drawn from p. 0 when the learned
    span lies inside the reference span, 1 when they are orthogonal. A reference span larger
    than the learned one (a degenerate level cut by the number of modes) is allowed.
    """
    qa = _orthonormal_columns(learned)
    qb = _orthonormal_columns(reference)
    n = learned.shape[0]
    overlap = qa.T @ qb / n
    return float(1.0 - (overlap**2).sum() / learned.shape[1])


def procrustes_angles(learned: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Angle (radians) between each learned function and its reference partner, after the
    orthogonal Procrustes alignment of the reference basis to the learned functions.

    ``learned`` (n, k) and ``reference`` (n, m), m >= k, are sample values in the frame of
    ``subspace_distance``. Within a degenerate level any rotation of the reference states is
    as good as any other, so the partner of learned function l is column l of Q_ref R with
    R (m, k), R^T R = I, maximising sum_l cos(theta_l): for M = A^T Q_ref / n = U S V^T
    (A the learned functions scaled to unit norm) R = V U^T and cos(theta_l) = (U S U^T)_ll.
    With k = m = 1 it is the plain angle arccos(|<a, psi>| / (|a| |psi|)).
    """
    n = learned.shape[0]
    norms = np.sqrt((learned**2).mean(0))
    a = learned / np.maximum(norms, 1e-300)
    qb = _orthonormal_columns(reference)
    u, s, _ = np.linalg.svd(a.T @ qb / n, full_matrices=False)
    cos = np.einsum("lj,j,lj->l", u, s, u)
    return np.arccos(np.clip(cos, -1.0, 1.0))


def level_distances(
    learned: np.ndarray, levels: list[list[int]], references: list[np.ndarray]
) -> tuple[list[float], float, list[float]]:
    """Per degenerate level: the subspace distance of the learned columns ``levels[i]`` to
    the reference block ``references[i]``; the whole learned span's distance to all blocks
    together; and each mode's Procrustes angle within its level. Sample values as in
    ``subspace_distance``."""
    per_level = [subspace_distance(learned[:, idx], ref) for idx, ref in zip(levels, references)]
    angles = np.zeros(learned.shape[1])
    for idx, ref in zip(levels, references):
        angles[idx] = procrustes_angles(learned[:, idx], ref)
    whole = subspace_distance(learned, np.concatenate(references, axis=1))
    return per_level, whole, angles.tolist()
