"""Agents family: ``agents.list`` and ``models.list`` from the configured roster and model catalog."""

from __future__ import annotations

from typing import Any

from msgspec import UNSET

from ... import errors as E
from ...agents import roster as R
from ..gateway import Ctx
from ..router import Refused, routes

THINKING = {"thinkingLevels": [{"id": "off", "label": "off"}], "thinkingOptions": ["off"], "thinkingDefault": "off"}


def agents_list(ctx: Ctx, params: Any) -> Any:
    """The roster, as published (plus ``name``, which the UI shows)."""
    app = ctx.app
    rows = []
    for agent in app.roster.agents:
        row: dict[str, Any] = {
            "id": agent.id,
            "name": agent.name,
            "workspace": agent.workspace or f"{app.facts.state_dir}/workspace",
            "agentRuntime": {"id": "openclaw", "source": "implicit"},
            **THINKING,
            "model": {"primary": agent.primary or R.OFFLINE_REF},
            "defaultPermissionMode": "full",
        }
        if agent.fallbacks:
            row["model"]["fallbacks"] = list(agent.fallbacks)
        if agent.identity_name:
            row["identity"] = {"name": agent.identity_name}
        rows.append(row)
    return {
        "defaultId": app.roster.default_id,
        "ownership": "sole" if len(rows) == 1 else "implicit",
        "selectionRequired": False,
        "mainKey": "main",
        "scope": "per-sender",
        "agents": rows,
    }


def models_list(ctx: Ctx, p: Any) -> Any:
    app = ctx.app
    if p.agent_id is not UNSET and p.agent_id and app.roster.get(p.agent_id) is None:
        raise Refused(E.invalid_request(f'unknown agent id "{p.agent_id}"'))
    primary = app.roster.default.primary or R.OFFLINE_REF
    models = []
    for row in R.catalog(app.config):
        out = {**row, "thinkingLevels": THINKING["thinkingLevels"], "thinkingDefault": "off", "available": True}
        out.setdefault("reasoning", False)
        if f"{row['provider']}/{row['id']}" == primary:
            out["tags"] = ["default"]
        details = p.include_details is not UNSET and p.include_details
        if not (details or (p.view is not UNSET and p.view == "provider-config")):
            out.pop("input", None)
        models.append(out)
    if p.provider is not UNSET and p.provider:
        models = [m for m in models if m["provider"] == p.provider]
    result: dict[str, Any] = {"models": models}
    if p.view is not UNSET and p.view == "configured":
        result["defaultModels"] = {"automaticUtilityModel": None}
    return result


ROUTES = routes("agents", [("agents.list", agents_list), ("models.list", models_list)])
