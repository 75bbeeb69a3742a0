"""Logs family: ``logs.tail`` pages this gateway's file log (protocol.md §14)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from msgspec import UNSET

from ... import errors as E
from ..effects import Effect, EffectFailed, TailLog
from ..gateway import Ctx
from ..router import Refused, routes


def logs_tail(ctx: Ctx, p: Any) -> Generator[Effect, Any, Any]:
    """One page: by byte cursor, or the newest ``limit`` lines; read off the event loop by the host."""
    effect = TailLog(
        cursor=p.cursor if p.cursor is not UNSET else None,
        limit=p.limit if p.limit is not UNSET else 500,
        max_bytes=p.max_bytes if p.max_bytes is not UNSET else 250_000,
    )
    try:
        return (yield effect)
    except EffectFailed as exc:
        raise Refused(E.unavailable(f"log read failed: {exc.message}")) from None


ROUTES = routes("logs", [("logs.tail", logs_tail)])
