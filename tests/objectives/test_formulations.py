"""The training formulations: same quadratic forms, same gradients, whatever the engine.

Checked in float64 against the autograd reference (exact engines, to 1e-10), against grid
quadrature (weak form = strong form, values and parameter gradients), statistically
(Hutchinson is unbiased), and end to end (each formulation trains to the right spectrum).
"""

from __future__ import annotations

import math

import pytest
import torch

from nsvd_cli.kinds.schrodinger import CompiledProblem, build, derive_settings
from nsvd_cli.numerics.jets import Jet
from nsvd_cli.numerics.operators import finite_potential
from nsvd_cli.numerics.sampling import GaussianMixture
from nsvd_cli.objectives.batch import sample_modes
from nsvd_cli.objectives.formulations import get_formulation, held_matrix, symmetric
from nsvd_cli.objectives.methods.neuralsvd import sequential_loss
from nsvd_cli.objectives.readout import ritz
from nsvd_cli.references.closed_form import reference_eigenvalues
from nsvd_cli.references.metrics import relative_errors
from nsvd_cli.spec.load import parse_problem
from nsvd_cli.training.loop import init_state, train

CPU = torch.device("cpu")

PROBLEMS = {
    "oscillator-2d": """
name: o2
coordinates: [x, y]
operator: {potential: "(x**2 + 2*y**2)/2 + x*y/4"}
modes: 3
""",
    "hydrogen-2d": """
name: h2
coordinates: [x, y]
operator: {potential: "-1/sqrt(x**2 + y**2)"}
modes: 3
""",
    "box-2d": """
name: b2
coordinates: [x, y]
operator: {potential: "x*y"}
domain: {box: {x: [0, 1], y: [-1, 2]}}
modes: 3
""",
    "disk-2d": """
name: d2
coordinates: [x, y]
operator: {potential: "0"}
domain: {region: "1 - x**2 - y**2", bounds: {x: [-1, 1], y: [-1, 1]}}
modes: 3
""",
}


def _compiled(text: str, **overrides: object) -> CompiledProblem:
    problem = parse_problem(text)
    settings = derive_settings(problem).replaced(dtype="float64", hidden=12, depth=2, **overrides)
    return build(problem, settings)


def _terms(compiled: CompiledProblem, name: str, x: torch.Tensor, seed: int = 0):
    torch.manual_seed(0)
    net = compiled.make_network().double()
    sampler = compiled.sampler.to(CPU, torch.float64)
    terms = get_formulation(name)(compiled, sampler, net, x, torch.Generator().manual_seed(seed))
    loss = sequential_loss(terms.f, 0.3 * terms.gram - terms.energy).loss
    grads = torch.autograd.grad(loss, list(net.parameters()))
    return terms, torch.cat([g.reshape(-1) for g in grads])


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_forward_laplacian_formulation_matches_autograd(problem: str) -> None:
    compiled = _compiled(PROBLEMS[problem])
    x = compiled.sampler.to(CPU, torch.float64).sample(64, torch.Generator().manual_seed(1))
    fast, g_fast = _terms(compiled, "forward-laplacian", x)
    slow, g_slow = _terms(compiled, "autograd", x)
    assert torch.allclose(fast.f, slow.f, atol=1e-12)
    assert torch.allclose(fast.energy, slow.energy, rtol=1e-10, atol=1e-10)
    assert torch.allclose(g_fast, g_slow, rtol=1e-10, atol=1e-10)


def _scaled(jet: Jet, c: torch.Tensor) -> Jet:
    """Each point's jet times a constant c_b (a quadrature weight folded into the samples)."""
    lap = None if jet.lap is None else jet.lap * c[:, None]
    return Jet(jet.value * c[:, None], jet.grad * c[:, None, None], lap)


@pytest.mark.parametrize("dim", [1, 2])
def test_weak_form_equals_strong_form_by_quadrature(dim: int) -> None:
    # On a fine grid with the weights p(x) dx folded into the points, batch means become
    # integrals; integration by parts then makes the weak and strong energies equal, and
    # so must be their gradients with respect to every network parameter.
    text = (
        PROBLEMS["oscillator-2d"]
        if dim == 2
        else PROBLEMS["oscillator-2d"]
        .replace("[x, y]", "[x]")
        .replace('"(x**2 + 2*y**2)/2 + x*y/4"', '"x**2/2 + x**4/10"')
    )
    compiled = _compiled(text)
    sampler = GaussianMixture(
        torch.tensor([0.2] * dim, dtype=torch.float64),
        torch.tensor([[0.8] * dim, [2.0] * dim], dtype=torch.float64),
    )
    n = 4001 if dim == 1 else 241
    axis = torch.linspace(-14.0, 14.0, n, dtype=torch.float64)
    x = torch.cartesian_prod(*[axis] * dim).reshape(-1, dim)
    dx = float(axis[1] - axis[0]) ** dim
    c = torch.sqrt(x.shape[0] * torch.exp(sampler.log_density(x)) * dx)
    torch.manual_seed(0)
    net = compiled.make_network().double()
    envelope = sampler.envelope(x)
    v = finite_potential(compiled.operator.potential, x)
    weights = torch.randn(3, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)

    weak = symmetric(compiled.operator.weak_energy(_scaled(net.jet(x, order=1), c), envelope, v))
    with torch.no_grad():
        hh = compiled.operator.apply(net.jet(x), envelope, v)
    strong = held_matrix(net(x) * c[:, None], hh * c[:, None])
    assert torch.allclose(weak, strong, rtol=1e-9, atol=1e-10)
    params = list(net.parameters())
    g_weak = torch.autograd.grad((weights * weak).sum(), params)
    g_strong = torch.autograd.grad((weights * strong).sum(), params)
    for a, b in zip(g_weak, g_strong, strict=True):
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-9)


def test_hutchinson_energy_is_unbiased() -> None:
    compiled = _compiled(PROBLEMS["oscillator-2d"], hutchinson_probes=1)
    x = compiled.sampler.to(CPU, torch.float64).sample(32, torch.Generator().manual_seed(1))
    exact, _ = _terms(compiled, "forward-laplacian", x)
    draws = torch.stack(
        [_terms(compiled, "hutchinson", x, seed=s)[0].energy.detach() for s in range(400)]
    )
    mean, err = draws.mean(0), draws.std(0) / math.sqrt(len(draws))
    assert (draws.std(0) > 0).any()  # it is stochastic...
    assert ((mean - exact.energy.detach()).abs() < 5 * err + 1e-12).all()  # ...and unbiased


@pytest.mark.parametrize(
    "derivatives,network,tolerance",
    [("weak", "shared", 1e-2), ("hutchinson", "shared", 1e-2), ("auto", "disjoint", 2e-2)],
)
def test_each_formulation_trains_to_the_spectrum(
    derivatives: str, network: str, tolerance: float
) -> None:
    text = (
        f"network: {{kind: {network}}}\n"
        + """
name: o2
coordinates: [x, y]
operator: {potential: "(x**2 + y**2)/2 + (x - y)**2/4"}
modes: 3
reference:
  eigenvalue: "(n + 1/2) + sqrt(2)*(m + 1/2)"
  quantum_numbers: {n: [0, 5], m: [0, 5]}
"""
    )
    problem = parse_problem(text)
    settings = derive_settings(problem).replaced(
        hidden=32,
        steps=4000,
        batch_size=512,
        learning_rate=3e-3,
        derivatives=derivatives,
        hutchinson_probes=1,
    )
    compiled = build(problem, settings)
    state = train(compiled, init_state(compiled, CPU), CPU)
    batch = sample_modes(compiled, state.network, 1 << 15, torch.Generator().manual_seed(9))
    learned = ritz(batch.h.double(), batch.hh.double()).eigenvalues
    errors = relative_errors(learned.numpy(), reference_eigenvalues(problem))
    assert max(errors) < tolerance, errors
