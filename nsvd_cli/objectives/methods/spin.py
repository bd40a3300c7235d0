"""SpIN, Spectral Inference Networks (Pfau, Petersen, Agarwal, Barrett, Stachenfeld 2019).

With the Gram matrix Sigma = <f, f^T> = C C^T (Cholesky) and Pi = <f, (T f)^T>, SpIN
maximises the trace of the Rayleigh matrix

    Lambda = C^{-1} Pi C^{-T},

whose diagonal entry k depends only on f_1..f_k. Its *masked* gradient gives f_k the
gradient of Lambda_kk alone with f_1..f_{k-1} held fixed, which orders the functions; in
terms of the two matrices it is (checked against that definition in the tests)

    dF = sum_{l<=m} A_lm  2 <f_l, d f_m>  +  B_lm  2 <T f_l, d f_m>,
    A = C^{-T} triu(Lambda diag(C^{-1})),    B = -C^{-T} diag(C^{-1}),

for the loss F = -sum_k Lambda_kk. Sigma enters non-linearly, so a batch estimate of it is
biased; SpIN replaces Sigma by a moving average over steps and, for the same reason, the
Jacobian terms J_lm = 2 <f_l, d f_m / d theta> by their moving average too (one tensor the
size of the parameters per pair l <= m: this is what makes SpIN expensive). Pi enters
linearly and uses the current batch.

The functions themselves are not orthogonal; C^{-1} f are, with eigenvalues diag(Lambda).
"""

from __future__ import annotations

from typing import Any

import torch

from nsvd_cli.objectives.methods.base import LossOutput, MethodOptions, Rows


def rayleigh_matrix(gram: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Lambda, C^{-1}) from the Gram matrix and <f, T f> (a small jitter keeps C defined)."""
    n = gram.shape[0]
    eye = torch.eye(n, dtype=gram.dtype, device=gram.device)
    jitter = 1e-6 * torch.diagonal(gram).mean().clamp_min(1e-30)
    chol = torch.linalg.cholesky(0.5 * (gram + gram.T) + jitter * eye)
    inv = torch.linalg.solve_triangular(chol, eye, upper=False)
    return inv @ t @ inv.T, inv


def masked_factors(gram: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(Lambda, A, B) of the masked gradient (module docstring); A and B are upper triangular."""
    lam, inv = rayleigh_matrix(gram, t)
    d = torch.diag(torch.diagonal(inv))
    a = inv.T @ torch.triu(lam @ d)
    b = -inv.T @ d
    return lam, a, b


def spin_eigenvalues(gram: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.diagonal(rayleigh_matrix(gram, t)[0])


class SpIN:
    """The SpIN loss with its running averages of Sigma and of the Jacobian terms."""

    def __init__(self, network: torch.nn.Module, options: MethodOptions) -> None:
        self.params = [p for p in network.parameters() if p.requires_grad]
        self.decay = options.moving_average
        self.sigma: torch.Tensor | None = None
        self.jacobians: list[torch.Tensor] | None = None

    def _average(self, old: torch.Tensor | None, new: torch.Tensor) -> torch.Tensor:
        # Started at the first batch's value rather than at zero, so early steps are unbiased.
        return new if old is None else old.mul_(1.0 - self.decay).add_(new, alpha=self.decay)

    def _jacobian_terms(
        self, f: torch.Tensor, pairs: tuple[torch.Tensor, torch.Tensor]
    ) -> list[torch.Tensor]:
        """J_k = 2 <sg f_l, d f_m / d theta> for each pair k = (l, m), l <= m: one batched
        vector-Jacobian product through f's graph."""
        rows, cols = pairs
        batch = f.shape[0]
        cotangents = f.new_zeros(len(rows), batch, f.shape[1])
        which = torch.arange(len(rows), device=f.device)
        cotangents[which, :, cols] = (2.0 / batch) * f.detach()[:, rows].T
        grads = torch.autograd.grad(
            f,
            self.params,
            grad_outputs=cotangents,
            is_grads_batched=True,
            retain_graph=True,
            allow_unused=True,
        )
        return [
            torch.zeros_like(p).expand(len(rows), *p.shape) if g is None else g
            for g, p in zip(grads, self.params)
        ]

    def __call__(self, f: torch.Tensor, t: torch.Tensor, rows: Rows) -> LossOutput:
        n_modes = f.shape[1]
        pairs = torch.triu_indices(n_modes, n_modes, device=f.device)
        fd = f.detach()
        self.sigma = self._average(self.sigma, fd.T @ fd / f.shape[0])
        lam, a, b = masked_factors(self.sigma, t.detach())
        new = self._jacobian_terms(f, (pairs[0], pairs[1]))
        if self.jacobians is None:
            self.jacobians = [j.clone() for j in new]
        else:
            for avg, j in zip(self.jacobians, new):
                self._average(avg, j)
        weights = a[pairs[0], pairs[1]]
        # Surrogate whose gradient is the masked one: the Sigma part through the averaged
        # Jacobians (a linear term in the parameters), the Pi part through the rows
        # <f_m, T f_l> that carry the gradient into the later mode m only.
        sigma_part = sum(
            (p * torch.tensordot(weights, j, dims=1)).sum()
            for p, j in zip(self.params, self.jacobians)
        )
        row_mean = 0.5 * (rows[0] + rows[1])
        pi_part = 2.0 * (b.T * row_mean).sum()
        surrogate = sigma_part + pi_part
        per_mode = -torch.diagonal(lam)
        # Reported value -tr(Lambda); gradient that of the surrogate.
        loss = surrogate - surrogate.detach() + per_mode.sum()
        return LossOutput(loss, per_mode)

    def state_dict(self) -> dict[str, Any]:
        return {"sigma": self.sigma, "jacobians": self.jacobians}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sigma = state.get("sigma")
        self.jacobians = state.get("jacobians")


def make_spin(network: torch.nn.Module, options: MethodOptions) -> SpIN:
    return SpIN(network, options)
