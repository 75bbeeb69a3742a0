"""System family: health, status, presence, system events, heartbeats, identity, wake (protocol.md §14)."""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET

from ... import errors as E
from ...frames import PresenceEntry
from ..gateway import HEALTH_REFRESH_S, HEARTBEAT_EVERY_MS, Ctx
from ..router import Refused, routes


def health(ctx: Ctx, params: Any) -> Any:
    """The cached snapshot (refreshed past 60 s or with ``probe``), pre-encoded once per refresh."""
    app = ctx.app
    probe = isinstance(params, dict) and params.get("probe") is True
    if probe or app.health_cache is None or ctx.now - app.health_at >= HEALTH_REFRESH_S:
        app.refresh_health(ctx.now, ctx.wall_ms)
    if app.health_raw is None:
        assert app.health_cache is not None
        snap = {**app.health_cache, "modelRuntime": {"degraded": False, "pendingAgents": []}}
        app.health_raw = msgspec.Raw(msgspec.json.encode(snap))
    return app.health_raw


def status(ctx: Ctx, params: Any) -> Any:
    app = ctx.app
    admin = "operator.admin" in ctx.principal.scopes
    return {
        "runtimeVersion": app.facts.version,
        "hostDesktop": {"enabled": False, "state": "disabled"},
        "heartbeat": {
            "defaultAgentId": "main",
            "agents": [
                {"agentId": "main", "enabled": app.heartbeats_enabled, "every": "30m", "everyMs": HEARTBEAT_EVERY_MS}
            ],
        },
        "channelSummary": [],
        "queuedSystemEvents": list(app.system_events),
        "degradedSecretOwners": [],
        "degradedPlugins": [],
        "tasks": {"total": 0, "active": 0, "terminal": 0, "failures": 0},
        "sessions": {
            "paths": [f"{app.facts.state_dir}/agents"] if admin else [],
            "count": 0,
            "defaults": {"model": None, "contextTokens": None},
            "recent": [],
            "byAgent": [],
        },
        "modelRuntime": {"degraded": False, "pendingAgents": []},
        "workerPools": {},
        "pid": app.facts.pid,
    }


def system_presence(ctx: Ctx, params: Any) -> Any:
    return ctx.app.presence_rows(ctx.wall_ms)


def system_event(ctx: Ctx, p: Any) -> Any:
    """A presence row reported by a client (keyed by device or instance id), queued as a system event."""
    app = ctx.app
    key = p.device_id if p.device_id is not UNSET else (p.instance_id if p.instance_id is not UNSET else None)
    key = key or f"event:{ctx.principal.conn_id}"
    app.presence.upsert(
        key,
        PresenceEntry(
            ts=ctx.wall_ms,
            text=p.text,
            host=p.host,
            ip=p.ip,
            mode=p.mode,
            version=p.version,
            platform=p.platform,
            device_family=p.device_family,
            reason=p.reason,
            tags=p.tags,
        ),
    )
    app.queue_system_event(p.text)
    app.broadcast_presence(ctx.wall_ms)
    return {"ok": True}


def last_heartbeat(ctx: Ctx, params: Any) -> Any:
    return ctx.app.last_heartbeat


def set_heartbeats(ctx: Ctx, p: Any) -> Any:
    ctx.app.heartbeats_enabled = p.enabled
    ctx.app.health_cache = None  # heartbeatSeconds changed
    return {"ok": True, "enabled": p.enabled}


def identity_get(ctx: Ctx, params: Any) -> Any:
    return dict(ctx.app.facts.identity)


def wake(ctx: Ctx, p: Any) -> Any:
    key = p.session_key
    if isinstance(key, str) and ":subagent:" in key:
        raise Refused(E.invalid_request("wake sessionKey cannot target a subagent session"))
    ctx.app.queue_system_event(p.text)
    return {"ok": True}


ROUTES = routes(
    "system",
    [
        ("health", health),
        ("status", status),
        ("system-presence", system_presence),
        ("system-event", system_event),
        ("last-heartbeat", last_heartbeat),
        ("set-heartbeats", set_heartbeats),
        ("gateway.identity.get", identity_get),
        ("wake", wake),
    ],
)
