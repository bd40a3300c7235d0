"""Operator kinds: how a problem becomes a compiled operator, a sampler and networks.

:mod:`.schrodinger` builds ``-kappa Laplacian + V`` (with an optional drift) and
:mod:`.integral` builds integral operators with two networks.
"""
