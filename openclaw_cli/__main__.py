"""``python -m openclaw_cli`` runs the ``openclaw`` command."""

from .app import main

main()
