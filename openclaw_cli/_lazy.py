"""Lazily imported commands that still describe themselves in the listing.

cyclopts imports a command registered by import path only when it runs, so the listing cannot read
its docstring; a ``help=`` given at registration fills the listing but then also replaces the
docstring on the command's own ``--help`` page. :func:`lazy_command` gives the listing its line and
lets the page, once the command is imported, show the docstring (description and parameters).
"""

from __future__ import annotations

from typing import Any

from attrs import define
from cyclopts import App
from cyclopts.command_spec import CommandSpec


@define
class _ListedSpec(CommandSpec):
    """A lazy command whose listing line is ``help`` until it is imported, then its docstring."""

    def resolve(self, parent_app: App) -> App:
        if self.is_resolved:
            return super().resolve(parent_app)
        listed, self.help = self.help, None
        try:
            return super().resolve(parent_app)
        finally:
            self.help = listed


def lazy_command(app: App, import_path: str, name: str, line: str, **kwargs: Any) -> None:
    """Register ``import_path`` as ``name`` under ``app``, listed as ``line`` (see module doc)."""
    app.command(import_path, name=name, **kwargs)
    spec = app._commands[name]  # noqa: SLF001 - cyclopts has no public hook for a lazy command's listing line
    assert isinstance(spec, CommandSpec)
    app._commands[name] = _ListedSpec(  # noqa: SLF001
        import_path=spec.import_path,
        name=spec.name,
        help=line,
        sort_key=spec.sort_key,
        group=spec.group,
        show=spec._show,  # noqa: SLF001
        app_kwargs=spec.app_kwargs,
    )


__all__ = ["lazy_command"]
