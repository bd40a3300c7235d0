"""Numerics: pure torch building blocks (tensors in, tensors out).

Jets and derivative engines, networks, samplers, Schrödinger and integral operators, and
the Weyl analysis that derives defaults. Nothing here imports spec, files, runs or cli.
"""

from nsvd_cli.numerics.derivatives import JetEngine, hutchinson, hutchinson_variance, reference_jet
from nsvd_cli.numerics.integral import IntegralOperator, Measure, SingularMoments
from nsvd_cli.numerics.jets import Jet, Tangents, radius
from nsvd_cli.numerics.networks import NetworkConfig, SharedMLP, build_network
from nsvd_cli.numerics.operators import JetField, Schrodinger, box_factor, finite_potential
from nsvd_cli.numerics.sampling import GaussianMixture, Sampler, UniformBox, UniformRegion

__all__ = [
    "GaussianMixture",
    "IntegralOperator",
    "Jet",
    "JetEngine",
    "JetField",
    "Measure",
    "NetworkConfig",
    "Sampler",
    "Schrodinger",
    "SharedMLP",
    "SingularMoments",
    "Tangents",
    "UniformBox",
    "UniformRegion",
    "box_factor",
    "build_network",
    "finite_potential",
    "hutchinson",
    "hutchinson_variance",
    "radius",
    "reference_jet",
]
