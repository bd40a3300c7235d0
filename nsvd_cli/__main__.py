"""``python -m nsvd_cli`` runs the command line (torchrun needs a module entry point)."""

from nsvd_cli.cli import main

main()
