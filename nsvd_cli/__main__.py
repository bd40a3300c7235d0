"""``python -m nsvd_cli`` runs the command line (torchrun needs a module entry point)."""

from .cli import main

main()
