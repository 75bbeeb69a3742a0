"""Agents family: ``agents.list`` and ``models.list`` from the configured roster and model catalog."""

from __future__ import annotations

from typing import Any

from msgspec import UNSET

from ...agents import roster as R
from ..gateway import Ctx
from ..router import routes


def agents_list(ctx: Ctx, params: Any) -> Any:
    app = ctx.app
    rows = []
    for agent in app.roster.agents:
        row: dict[str, Any] = {"id": agent.id, "name": agent.name}
        if agent.primary:
            row["model"] = {"primary": agent.primary, "fallbacks": list(agent.fallbacks)}
        if agent.workspace:
            row["workspace"] = agent.workspace
        if agent.identity_name:
            row["identity"] = {"name": agent.identity_name}
        rows.append(row)
    return {"defaultId": app.roster.default_id, "mainKey": "main", "scope": "per-sender", "agents": rows}


def models_list(ctx: Ctx, p: Any) -> Any:
    models = R.catalog(ctx.app.config)
    if p.provider is not UNSET and p.provider:
        models = [m for m in models if m["provider"] == p.provider]
    return {"models": models}


ROUTES = routes("agents", [("agents.list", agents_list), ("models.list", models_list)])
