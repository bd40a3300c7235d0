"""Objectives: what a batch of learned functions is scored by, and how values are read out.

Batch moments, the derivative formulations (strong, weak, Hutchinson), the training methods
(NeuralSVD, NeuralEF, SpIN: the ``METHODS`` registry in :mod:`.methods`) and the
Rayleigh-Ritz read-out. Pure: tensors in, tensors out; never imports spec, files or cli.
"""

from nsvd_cli.objectives.batch import evaluate_batch, sample_modes
from nsvd_cli.objectives.formulations import (
    FORMULATION_NAMES,
    Formulation,
    StepTerms,
    get_formulation,
)
from nsvd_cli.objectives.methods import Method, MethodOptions, get_method, make_method
from nsvd_cli.objectives.readout import (
    GRAM_CUTOFF,
    Ritz,
    normalized_gram,
    orthogonality,
    ritz,
    ritz_from_moments,
    singular_ritz,
)

__all__ = [
    "FORMULATION_NAMES",
    "GRAM_CUTOFF",
    "Formulation",
    "Method",
    "MethodOptions",
    "Ritz",
    "StepTerms",
    "evaluate_batch",
    "get_formulation",
    "get_method",
    "make_method",
    "normalized_gram",
    "orthogonality",
    "ritz",
    "ritz_from_moments",
    "sample_modes",
    "singular_ritz",
]
