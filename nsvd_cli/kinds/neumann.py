"""The Neumann kind: the lowest eigenpairs of -kappa Laplacian + V on a box or a region
whose walls are free (du/dn = 0, ``domain.boundary: neumann``).

The condition is natural in the energy form: minimising <grad u, kappa grad u> + <V u, u>
over functions with no constraint on the walls gives du/dn = 0 there. So the functions
carry no wall factor and training uses the weak (first-derivative) form only: the strong
form <u, H u> misses the wall term kappa * (surface integral of u du/dn), which a learned
function does not make zero.

The read-out on a box adds that wall term from a sample of the box's surface:
<u_l, H u_m> + kappa * (surface integral of u_l du_m/dn) is the energy form exactly, and
both parts vanish pointwise at an eigenfunction (H u = E u inside, du/dn = 0 on the walls),
so its standard errors shrink as the functions improve, as the strong form's do on
Dirichlet problems. On a region (no surface sampler yet) the read-out uses the energy form
per point, kappa grad u_l . grad u_m + V u_l u_m, which has no such property. Residual
intervals need more than the wall term (a bound for functions that do not meet the wall
condition); they are reported unavailable, and --tol is refused, until then. The reference
(``nsvd reference``) is by finite elements (free walls are natural there too), or on a box
with one condition per axis by finite differences (cell-centred points, even reflection).
"""

from __future__ import annotations

import dataclasses
import math
from typing import cast

import numpy as np
import torch

from nsvd_cli.files import GridReference, Results
from nsvd_cli.kinds import differential
from nsvd_cli.kinds.base import SolverOptions
from nsvd_cli.kinds.eigen import EigenKind
from nsvd_cli.kinds.fem_reference import differential_reference
from nsvd_cli.kinds.robin import robin_flux, wall_alpha, with_robin
from nsvd_cli.kinds.schrodinger import CompiledProblem, build
from nsvd_cli.kinds.weak_readout import (
    CHUNK,
    NO_INTERVALS,
    ascending,
    float64_copy,
    weak_readout,
)
from nsvd_cli.numerics.operators import box_factor
from nsvd_cli.numerics.sampling import UniformBox, box_surface
from nsvd_cli.objectives.batch import (
    exact_points,
    quadrature_modes,
    sample_modes,
    surface_rule,
)
from nsvd_cli.objectives.intervals import Intervals, unavailable
from nsvd_cli.objectives.methods import METHODS
from nsvd_cli.objectives.readout import Ritz, ritz_from_moments, without_stderr
from nsvd_cli.spec import Problem
from nsvd_cli.training.distributed import Context
from nsvd_cli.training.eigen_objective import EigenObjective
from nsvd_cli.training.loop import Monitor, Objective
from nsvd_cli.training.settings import Settings
from nsvd_cli.training.state import DTYPES, TrainState


class NeumannKind(EigenKind):
    name = "neumann"
    # mixed: per face Dirichlet, Neumann or Robin; robin: Robin on every face
    walls: tuple[str | None, ...] = ("neumann", "mixed", "robin")
    description = "an eigenproblem with Neumann walls"
    options = SolverOptions(
        methods=tuple(METHODS),
        derivatives=("auto", "weak"),  # the strong form's <u, H u> misses the wall term
        dtypes=tuple(DTYPES),
        compile=True,
        tol=True,  # where the walls are natural (``natural_walls``); monitor says why not
    )

    def derive_settings(self, problem: Problem) -> Settings:
        settings = super().derive_settings(problem)
        if settings.derivatives == "auto":
            settings.derivatives = "weak"
        return settings

    def build(self, problem: Problem, settings: Settings) -> CompiledProblem:
        compiled = build(problem, settings)
        faces = problem.box_faces()
        if problem.walls() != "mixed" or faces is None:
            return dataclasses.replace(compiled, boundary=None)
        # Mixed walls: the wall factor of the Dirichlet faces only; the rest are free.
        box = cast(UniformBox, compiled.sampler)
        dirichlet = tuple((low == "dirichlet", high == "dirichlet") for low, high in faces)
        return dataclasses.replace(compiled, boundary=box_factor(box.lo, box.hi, dirichlet))

    def objective(
        self, compiled: CompiledProblem, device: torch.device, context: Context
    ) -> Objective:
        objective = EigenObjective(compiled, device, context)
        alpha = wall_alpha(compiled.problem)
        if alpha is not None:  # Robin faces: their surface term, on fresh surface samples
            objective.formulation = with_robin(objective.formulation, alpha, compiled)
        return objective

    def monitor(self, compiled: CompiledProblem) -> Monitor:
        if natural_walls(compiled):  # no wall term: the Dirichlet kind's interval check
            return differential.interval_check(compiled)
        raise ValueError(f"no error intervals can be computed: {NO_INTERVALS}")

    def record(
        self, compiled: CompiledProblem, state: TrainState, device: torch.device, complete: bool
    ) -> Results:
        if natural_walls(compiled):  # no wall term at all: the Dirichlet kind's read-out
            return differential.record(compiled, state, device, complete)
        strong = isinstance(compiled.sampler, UniformBox) and not compiled.operator.medium_weak_only
        read = wall_term_readout if strong else weak_readout
        return differential.record(compiled, state, device, complete, read=read)

    def reference(
        self, problem: Problem, points: int | None, extra: int, method: str = "auto"
    ) -> GridReference:
        return differential_reference(problem, points, extra, method)


def natural_walls(compiled: CompiledProblem) -> bool:
    """Whether a scalar diffusion vanishes on every wall of a Neumann box (the Legendre
    operator's ends): the wall term k u du/dn is then identically 0 for every smooth
    function, the strong form is the whole energy, and residual intervals hold as on a
    Dirichlet problem (the operator needs no condition there; smooth functions are in its
    domain)."""
    diffusion = compiled.operator.medium.diffusion
    if (diffusion is None or compiled.operator.medium_weak_only
            or compiled.problem.walls() != "neumann"
            or not isinstance(compiled.sampler, UniformBox)):
        return False
    box = compiled.sampler.to("cpu", torch.float64)
    x = box_surface(box, 4096, torch.Generator().manual_seed(0))[0]
    with torch.no_grad():
        return bool(torch.all(diffusion(x).abs() <= 1e-12))


def wall_term_readout(
    compiled: CompiledProblem, network: torch.nn.Module, settings: Settings, shift: float
) -> tuple[Ritz, np.ndarray, Intervals | None]:
    """Rayleigh-Ritz in float64 on a box: the strong form on fresh interior points plus the
    wall term on as many fresh surface points (module docstring); on a 1-D box, the
    Gauss-Legendre nodes and the two ends instead (exact, no standard error)."""
    net64, device, generator = float64_copy(network, settings)
    box = cast(UniformBox, compiled.sampler).to(device, torch.float64)
    exact = exact_points(compiled)
    n = settings.readout.eval_samples
    inside = quadrature_modes(compiled, net64) if exact else sample_modes(
        compiled, net64, n, generator)
    alphas = wall_alpha(compiled.problem)  # Robin faces: du/dn + alpha u
    values, fluxes = [], []
    chunks, area = _wall_chunks(compiled, box, n, generator)
    for x, normals, scale in chunks:
        with torch.no_grad():  # mixed walls: the Dirichlet faces' factor, as inside
            value, flux = robin_flux(net64, x, normals, alphas, compiled.boundary)
        k = compiled.operator.medium.values(x).diffusion  # a scalar diffusion: k du/dn
        flux = flux if k is None else k.unsqueeze(-1) * flux
        values.append(value if scale is None else value * scale)
        fluxes.append(flux if scale is None else flux * scale)
    weight = compiled.operator.kinetic * area / math.exp(box.log_volume)
    r, energy = wall_term_ritz(inside.h, inside.hh, torch.cat(values), torch.cat(fluxes), weight)
    if exact:
        r = without_stderr(r)
    native = differential.native_energies(
        settings.method, shift, settings.transform.scale, r.gram, energy
    )
    modes = compiled.problem.modes
    return r.first(modes), native[:modes].cpu().numpy(), unavailable(modes, NO_INTERVALS)


def _wall_chunks(
    compiled: CompiledProblem, box: UniformBox, n: int, generator: torch.Generator
) -> tuple[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]], float]:
    """The walls in chunks of (points, outward normals, per-point scale or None), and their
    area: the faces' product Gauss rule, scaled by sqrt(m w_j), where the inside is a rule
    too; else ``n`` fresh surface samples (a 1-D box: its two ends, once)."""
    faces = surface_rule(compiled, box.lo.dtype, box.lo.device)
    if faces is not None:
        x, normals, w, area = faces
        scale = (w * w.shape[0]).sqrt().unsqueeze(-1)
        return [(x[s:s + CHUNK], normals[s:s + CHUNK], scale[s:s + CHUNK])
                for s in range(0, w.shape[0], CHUNK)], area
    chunks: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []
    area = 0.0
    for start in range(0, 1 if box.dim == 1 else n, CHUNK):
        x, normals, area = box_surface(box, min(CHUNK, n - start), generator)
        chunks.append((x, normals, None))
    return chunks, area


def wall_term_ritz(
    h: torch.Tensor, hh: torch.Tensor, hs: torch.Tensor, flux: torch.Tensor, weight: float
) -> tuple[Ritz, torch.Tensor]:
    """Rayleigh-Ritz from interior values h and H h (n, L) and surface values hs and normal
    derivatives flux (m, L): energy E[h H h^T] + weight * E_surface[hs flux^T], ``weight``
    = kappa * surface area / volume. Standard errors by the delta method over both
    independent samples."""
    n, m = h.shape[0], hs.shape[0]
    gram = h.T @ h / n
    energy = h.T @ hh / n + weight * hs.T @ flux / m
    _, c = ritz_from_moments(gram, energy)
    u, hu, us, fu = h @ c, hh @ c, hs @ c, flux @ c
    norm = (u * u).mean(0)
    eigenvalues = ((u * hu).mean(0) + weight * (us * fu).mean(0)) / norm
    inside = (u * hu - eigenvalues * u * u).var(0) / n
    wall = weight**2 * (us * fu).var(0) / m
    stderr = (inside + wall).sqrt() / norm
    return ascending(eigenvalues, stderr, c, gram, energy), energy


NEUMANN = NeumannKind()
