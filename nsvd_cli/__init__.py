"""nsvd: eigenpairs of PDE operators with neural networks (NeuralSVD)."""

__version__ = "0.1.0"
