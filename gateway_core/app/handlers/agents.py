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
        # The model a turn will use: the configured primary, else the built-in offline echo (the
        # published Control UI refuses to send to an agent listed without a model).
        row["model"] = {"primary": agent.primary or R.OFFLINE_REF, "fallbacks": list(agent.fallbacks) if agent.primary else []}
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
