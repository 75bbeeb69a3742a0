"""openclaw_cli: the ``openclaw`` command, built with cyclopts."""
