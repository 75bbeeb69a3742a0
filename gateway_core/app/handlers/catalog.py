"""Read-only catalog families with nothing configured yet: models, sessions, channels.

These answer the shapes the published CLI and UI expect, from what this gateway has: no model
catalog, no stored sessions, no channels. The agents and channels work replaces them.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..gateway import Ctx
from ..router import routes


def channels_status(ctx: Ctx, params: Any) -> Any:
    return {
        "ts": ctx.wall_ms,
        "channelOrder": [],
        "channelLabels": {},
        "channelDetailLabels": {},
        "channelSystemImages": {},
        "channelMeta": [],
        "channels": {},
        "channelAccounts": {},
        "channelDefaultAccountId": {},
        "statusIssues": [],
    }


def models_list(ctx: Ctx, params: Any) -> Any:
    return {"models": []}


def sessions_listing(ctx: Ctx) -> dict[str, Any]:
    return {
        "ts": ctx.wall_ms,
        "path": f"{ctx.app.facts.state_dir}/agents",
        "count": 0,
        "totalCount": 0,
        "limitApplied": 100,
        "nextOffset": None,
        "hasMore": False,
        "owners": [],
        "defaults": {"modelProvider": None, "model": None, "contextTokens": None},
        "sessions": [],
    }


def sessions_list(ctx: Ctx, params: Any) -> Any:
    return sessions_listing(ctx)


def sessions_subscribe(ctx: Ctx, params: Any) -> Any:
    """Turns on ``sessions.changed`` for this connection; with params, also answers the listing."""
    assert ctx.conn is not None
    ctx.conn.subscriptions.add("sessions")
    raw = msgspec.to_builtins(params)
    return {"subscribed": True, "list": sessions_listing(ctx)} if raw else {"subscribed": True}


ROUTES = routes(
    "catalog",
    [
        ("channels.status", channels_status),
        ("models.list", models_list),
        ("sessions.list", sessions_list),
        ("sessions.subscribe", sessions_subscribe),
    ],
)
