"""Eigenvalues from learned functions: Rayleigh-Ritz with a zero-variance estimator.

Given batch means G = E[h h^T] and K = E[h (H~ h)^T] (the Gram and energy matrices of the
learned span), the Rayleigh-Ritz values are the generalised eigenvalues K c = E G c. For the
l-th Ritz function u = h c_l the estimate

    E_l = sum_i u_i (H~ u)_i / sum_i u_i^2

is the strong-form ratio: at an exact eigenfunction u H~u = E u^2 at every point, so its
Monte-Carlo variance vanishes there (the zero-variance principle), unlike the weak form
(|grad u|^2 + V u^2), whose noise can hide a network 100x better than it reports. Its
standard error comes from the delta method for a ratio of means:

    se(E_l) = std_i(u_i (H~u)_i - E_l u_i^2) / (sqrt(n) mean_i(u_i^2)).

(The Ritz coefficients are themselves estimated, but E is stationary in c, so that enters
only at second order.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Ritz:
    eigenvalues: torch.Tensor  # (L,) ascending
    stderr: torch.Tensor  # (L,)
    rotation: torch.Tensor  # (L, L): column l = coefficients of the l-th Ritz function in h
    gram: torch.Tensor  # (L, L) E[h h^T]
    quotients: torch.Tensor  # (L,) per learned function, K_ll / G_ll

    def first(self, modes: int) -> Ritz:
        """The lowest ``modes`` Ritz pairs: a run that trains buffer functions above the
        wanted modes reports only these. The rotation keeps a row per learned function
        ((L + buffer, modes)) and the Gram matrix stays that of every learned function."""
        return Ritz(
            self.eigenvalues[:modes],
            self.stderr[:modes],
            self.rotation[:, :modes],
            self.gram,
            self.quotients[:modes],
        )


# Directions of the Gram matrix below this fraction of its largest eigenvalue are treated
# as absent (their Ritz values would be noise).
GRAM_CUTOFF = 1e-12


def ritz_from_moments(
    gram: torch.Tensor, energy: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised symmetric eigenproblem K c = E G c by whitening G; ascending E.

    Directions of G below 1e-12 of its largest eigenvalue are dropped from the whitening
    (their Ritz values would be pure noise) and come back as +inf.
    """
    k = 0.5 * (energy + energy.T)
    evals, evecs = torch.linalg.eigh(0.5 * (gram + gram.T))
    keep = evals > GRAM_CUTOFF * evals.max().clamp_min(1e-300)
    w = evecs[:, keep] / evals[keep].sqrt()
    e, u = torch.linalg.eigh(w.T @ k @ w)
    c = w @ u
    n = gram.shape[0]
    if c.shape[1] < n:
        pad = n - c.shape[1]
        e = torch.cat([e, e.new_full((pad,), float("inf"))])
        c = torch.cat([c, c.new_zeros(n, pad)], dim=1)
    return e, c


def ritz(h: torch.Tensor, hh: torch.Tensor) -> Ritz:
    """Rayleigh-Ritz on samples h (n, L) and H~h (n, L) drawn from the sampler (float64)."""
    n = h.shape[0]
    gram = h.T @ h / n
    energy = h.T @ hh / n
    _, c = ritz_from_moments(gram, energy)
    u = h @ c
    hu = hh @ c
    norm = (u * u).mean(0)
    values = (u * hu).mean(0) / norm
    resid = u * hu - values * u * u
    stderr = resid.std(0) / (n**0.5 * norm)
    order = torch.argsort(values)
    quotients = torch.diagonal(energy) / torch.diagonal(gram)
    return Ritz(values[order], stderr[order], c[:, order], gram, quotients)


def without_stderr(r: Ritz) -> Ritz:
    """The Ritz pairs of a quadrature read-out: no Monte-Carlo error, so no standard error."""
    return Ritz(r.eigenvalues, torch.zeros_like(r.stderr), r.rotation, r.gram, r.quotients)


def ritz_squared(h: torch.Tensor, ah: torch.Tensor) -> Ritz:
    """Rayleigh-Ritz for A^*A from samples h and A~h (float64): the smallest singular values
    of A on the learned span, ascending, as s = sqrt(E) for the Ritz values E of
    (<h, h>, <Ah, Ah>) (upper bounds of s^2 by min-max). Each E_l is the ratio
    mean((A u)^2) / mean(u^2) of its Ritz function; its standard error is the delta method's,
    divided by 2 s for the square root. (A^*A u is never formed, so this is the weak form:
    its variance does not vanish at a singular function.)
    """
    n = h.shape[0]
    gram = h.T @ h / n
    square = ah.T @ ah / n
    _, c = ritz_from_moments(gram, square)
    u, au = h @ c, ah @ c
    norm = (u * u).mean(0)
    values = (au * au).mean(0) / norm
    resid = au * au - values * u * u
    stderr_sq = resid.std(0) / (n**0.5 * norm)
    s = values.clamp_min(0.0).sqrt()
    order = torch.argsort(s)
    quotients = (torch.diagonal(square) / torch.diagonal(gram)).clamp_min(0.0).sqrt()
    stderr = stderr_sq / (2.0 * s.clamp_min(1e-300))
    return Ritz(s[order], stderr[order], c[:, order], gram, quotients)


def unit_coefficients(rotation: np.ndarray, gram: np.ndarray) -> torch.Tensor:
    """Ritz coefficients (columns) scaled so that each Ritz function has unit norm in the
    inner product the Gram matrix was measured in."""
    rot, g = torch.from_numpy(np.ascontiguousarray(rotation)), torch.from_numpy(gram)
    return rot / torch.sqrt(torch.diagonal(rot.T @ g @ rot))


def normalized_gram(gram: torch.Tensor) -> torch.Tensor:
    d = torch.diagonal(gram).clamp_min(1e-300).rsqrt()
    return d.unsqueeze(0) * gram * d.unsqueeze(1)


def orthogonality(gram: torch.Tensor) -> float:
    """Largest |G_ij|, i != j, of the normalised Gram matrix (0 for orthogonal functions)."""
    g = normalized_gram(gram)
    off = g - torch.diag(torch.diagonal(g))
    return float(off.abs().max()) if g.shape[0] > 1 else 0.0


@dataclass(frozen=True)
class SingularRitz:
    values: torch.Tensor  # (L,) descending
    left: torch.Tensor  # (L, L): column l = coefficients of the l-th left function in f
    right: torch.Tensor  # (L, L): the same for g


def _whitening(gram: torch.Tensor) -> torch.Tensor:
    evals, evecs = torch.linalg.eigh(0.5 * (gram + gram.T))
    floor = 1e-12 * evals.max().clamp_min(1e-300)
    return evecs / evals.clamp_min(floor).sqrt()


def singular_ritz(gram_f: torch.Tensor, gram_g: torch.Tensor, cross: torch.Tensor) -> SingularRitz:
    """Rayleigh-Ritz for the SVD: the singular values of T restricted to the learned spans.

    With W_f, W_g whitening the Gram matrices (W^T G W = I), the projected operator in
    orthonormal bases is P = W_f^T <f, T g^T> W_g; its SVD P = U S V^T gives the singular
    values S and the left/right functions f W_f U, g W_g V.
    """
    wf, wg = _whitening(gram_f), _whitening(gram_g)
    u, s, vh = torch.linalg.svd(wf.T @ cross @ wg)
    return SingularRitz(s, wf @ u, wg @ vh.T)
