"""The method router: an explicit table from method name to handler, grouped by family.

Adding a method is adding a function to a family module and a row to its ``ROUTES``. The core has
already authorized the caller and converted ``params`` to the method's Struct
(``gateway_core.params``) before a handler runs, so a handler only implements behaviour.

A handler is ``handler(ctx, params)``. It either returns the payload of the final answer, raises
:class:`Refused` (an error answer), returns :data:`LATER` (someone else answers later — a two-stage
run), or is a generator that yields :mod:`effects` and returns one of those.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from msgspec import UNSET, Struct

from ..frames import ErrorShape


class Refused(Exception):
    """An error answer (``ok:false``) with its wire error and, for agent finals, a payload."""

    def __init__(self, error: ErrorShape, payload: Any = UNSET) -> None:
        super().__init__(error.message)
        self.error = error
        self.payload = payload


class _Later:
    """Sentinel: the handler has arranged for the final answer to be sent by another job."""

    def __repr__(self) -> str:
        return "LATER"


LATER: Any = _Later()

Handler = Callable[..., Any]


class Route(Struct, frozen=True):
    """One row: a method name, its handler and the family module it belongs to."""

    method: str
    handler: Handler
    family: str


def routes(family: str, table: Iterable[tuple[str, Handler]]) -> tuple[Route, ...]:
    """A family module's rows."""
    return tuple(Route(method=name, handler=fn, family=family) for name, fn in table)


class Router:
    """The whole table; a method appears once."""

    def __init__(self, *tables: Iterable[Route]) -> None:
        self._routes: dict[str, Route] = {}
        for table in tables:
            for row in table:
                if row.method in self._routes:
                    raise ValueError(f"method {row.method!r} routed twice ({self._routes[row.method].family}, {row.family})")
                self._routes[row.method] = row

    def get(self, method: str) -> Route | None:
        return self._routes.get(method)

    @property
    def methods(self) -> frozenset[str]:
        """The implemented method names (advertised in hello-ok; the rest answer UNAVAILABLE)."""
        return frozenset(self._routes)

    def families(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for row in self._routes.values():
            out.setdefault(row.family, []).append(row.method)
        return out


__all__ = ["LATER", "Handler", "Refused", "Route", "Router", "routes"]
