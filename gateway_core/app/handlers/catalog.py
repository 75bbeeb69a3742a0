"""Channels, with none configured yet: ``channels.status`` answers the shape the published CLI and
UI expect. The channels work replaces it."""

from __future__ import annotations

from typing import Any

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


ROUTES = routes("catalog", [("channels.status", channels_status)])
