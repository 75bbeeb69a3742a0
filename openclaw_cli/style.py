"""Human output styling: ANSI colour on a terminal only (runtime-cli.md §10.0 conventions).

Never styled: ``--json`` output, anything piped or redirected, ``NO_COLOR`` set (any non-empty
value, https://no-color.org; the root ``--no-color`` sets it), or ``TERM=dumb``. ``FORCE_COLOR``
(not ``0``) turns it on for a non-terminal, as Node tools do. The words themselves never change, so
scripts that read human output see the same text either way.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO


def colour_wanted(is_tty: bool, environ: Mapping[str, str] | None = None) -> bool:
    """The decision, pure: environment first, then whether the stream is a terminal."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR"):
        return False
    if env.get("TERM") == "dumb":
        return False
    force = env.get("FORCE_COLOR")
    if force:
        return force != "0"
    return is_tty


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@dataclass(frozen=True)
class Style:
    """A palette that is either live or a no-op (``enabled=False``)."""

    enabled: bool

    @classmethod
    def for_stream(cls, stream: TextIO, *, json_: bool = False) -> Style:
        return cls(not json_ and colour_wanted(_isatty(stream)))

    @classmethod
    def for_stdout(cls, json_: bool = False) -> Style:
        return cls.for_stream(sys.stdout, json_=json_)

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled and text else text

    def heading(self, text: str) -> str:
        return self._wrap("1;38;5;208", text)

    def accent(self, text: str) -> str:
        return self._wrap("1;36", text)

    def info(self, text: str) -> str:
        return self._wrap("36", text)

    def muted(self, text: str) -> str:
        return self._wrap("90", text)

    def command(self, text: str) -> str:
        return self._wrap("96", text)

    def ok(self, text: str) -> str:
        return self._wrap("32", text)

    def warn(self, text: str) -> str:
        return self._wrap("33", text)

    def error(self, text: str) -> str:
        return self._wrap("31", text)

    def status(self, text: str, good: bool | None) -> str:
        """Green for good, red for bad, yellow for unknown (None)."""
        return self.ok(text) if good else self.error(text) if good is False else self.warn(text)


__all__ = ["Style", "colour_wanted"]
