"""Secrets family: ``secrets.reload`` re-resolves the gateway credential now (runtime-cli.md §4)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from ... import errors as E
from ...auth import SharedSecret
from ..effects import Effect, EffectFailed, ResolveSecrets
from ..gateway import Ctx
from ..router import LATER, Refused, routes


def secrets_reload(ctx: Ctx, params: Any) -> Generator[Effect, Any, Any]:
    """A changed secret takes effect at once: answered first, then old-secret clients close 4001."""
    try:
        new: SharedSecret | None = yield ResolveSecrets()
    except EffectFailed as exc:
        ctx.log("warn", "secrets", f"secrets.reload failed: {exc.message}")
        raise Refused(E.unavailable("secrets.reload failed")) from None
    old = ctx.app.secret
    ctx.reply({"ok": True, "warningCount": 0}, final=True)
    if new is not None and (new.mode, new.token, new.password) != (old.mode, old.token, old.password):
        closed = ctx.app.rotate_secret(new)
        ctx.log("info", "secrets", f"secrets reloaded: gateway credential changed; closed {closed} connection(s)")
    return LATER


ROUTES = routes("secrets", [("secrets.reload", secrets_reload)])
