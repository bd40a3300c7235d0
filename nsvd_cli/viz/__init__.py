"""Figures: what ``nsvd plot`` draws as arrays (:mod:`.figures`), and the matplotlib drawing
(:mod:`.plotting`, imported only by ``nsvd plot`` so other commands start faster)."""
