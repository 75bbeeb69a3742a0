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
    """One page: by byte cursor, or the newest ``limit`` lines, of this gateway's own records only,
    newer than ``now - sinceMs`` when given (runtime-cli.md §9.4); read off the event loop by the host."""
    effect = TailLog(
        cursor=p.cursor if p.cursor is not UNSET else None,
        limit=p.limit if p.limit is not UNSET else 500,
        max_bytes=p.max_bytes if p.max_bytes is not UNSET else 250_000,
        since_ms=ctx.wall_ms - p.since_ms if p.since_ms is not UNSET else None,
    )
    try:
        return (yield effect)
    except EffectFailed as exc:
        raise Refused(E.unavailable(f"log read failed: {exc.message}")) from None


ROUTES = routes("logs", [("logs.tail", logs_tail)])
