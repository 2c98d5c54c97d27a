"""``python -m resattn`` runs the command line."""

from .cli import main

main()
