"""The ``openclaw`` command: its root app and the commands that exist so far.

Commands are plain typed functions; cyclopts builds parsing and ``--help`` from their signatures
and docstrings.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

from cyclopts import App, Parameter


def _version() -> str:
    try:
        return version("openclaw-gateway-py")
    except PackageNotFoundError:
        return "0.0.0+local"


app = App(
    name="openclaw",
    help="Drive an OpenClaw-compatible gateway: run it, probe it, call it.",
    version=_version,
)


app.command("openclaw_cli.gateway:gateway_app", name="gateway")
app.command("openclaw_cli.config_cmd:config_app", name="config")


@app.command(name="conformance")
def conformance(*args: Annotated[str, Parameter(allow_leading_hyphen=True)]) -> int:
    """Run the protocol conformance suite (same options as ``python -m conformance``).

    Parameters
    ----------
    args
        Passed through, e.g. ``--core`` or ``--url ws://127.0.0.1:PORT --token T``.
    """
    from conformance.__main__ import main as run

    return run(list(args))


def main() -> None:
    """Console-script entry point."""
    result = app()
    if isinstance(result, int):
        sys.exit(result)


__all__ = ["app", "main"]
