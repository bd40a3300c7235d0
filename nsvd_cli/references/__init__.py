"""References: closed-form spectra, grid and quadrature references, and comparison metrics."""

from nsvd_cli.references.closed_form import (
    ReferenceState,
    degenerate_levels,
    reference_eigenvalues,
    reference_states,
    usable_reference,
)
from nsvd_cli.references.metrics import procrustes_angles, relative_errors, subspace_distance

__all__ = [
    "ReferenceState",
    "degenerate_levels",
    "procrustes_angles",
    "reference_eigenvalues",
    "reference_states",
    "relative_errors",
    "subspace_distance",
    "usable_reference",
]
