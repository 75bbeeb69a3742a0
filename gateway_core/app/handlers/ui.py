"""Methods the Control UI needs: ``config.plan`` (not in the published catalogue, so an admin-only
extra), device pairing approval (``device.pair.list/approve/reject``), and the published names
the published Control UI opens a chat with (``chat.startup``, ``sessions.messages.subscribe`` /
``unsubscribe``, ``sessions.describe``, ``agent.identity.get``), answered from the same store and
roster as ``chat.history`` and ``sessions.list``.

``config.plan``: what a config edit would do before it is written — per changed key, applied in
place (hot), read live (none) or a restart — from the same pure planner
(:func:`gateway_core.reload.plan_reload`) that ``openclaw config plan`` and the gateway's own
reloader use. Without ``raw`` it compares the file on disk with the applied config (so a client can
see when a written edit has been applied: no changes left).

``device.pair.*`` read and settle the pairing requests the handshake files (protocol.md §6.6) in
the host's device registry (``app.parts["devices"]``, a ``GatewayServices``); an approval records
the device with the role and scopes it asked for, so its next connect is admitted.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import msgspec
import pyjson5
from msgspec import UNSET, UnsetType

from ... import errors as E
from ...agents import keys
from ...agents.effects import StoreCall
from ...config import validate_config
from ...params import ChatHistoryParams
from ...reload import RELOAD_MODES, plan_reload
from ...services import PairedDevice, PairingRequest
from ..effects import Effect, EffectFailed, KeepDecisions
from ..gateway import Ctx
from ..router import Refused, routes
from .config import config_state, redact, restore_redacted
from .runs import pick_agent
from .sessions import chat_history, session_row


class ConfigPlanParams(msgspec.Struct, forbid_unknown_fields=True, rename="camel", kw_only=True):
    """``{raw?}``: the proposed config file (JSON5; redaction markers keep the stored secrets)."""

    raw: str | UnsetType = UNSET


def _reload_mode(config: Any) -> str:
    gateway = config.get("gateway") if isinstance(config, dict) else None
    reload = gateway.get("reload") if isinstance(gateway, dict) else None
    mode = reload.get("mode") if isinstance(reload, dict) else None
    return mode if mode in RELOAD_MODES else "hybrid"


def _applies(effect: str, mode: str, restart: bool) -> str:
    """What will happen to one change under ``mode``: ``hot``, ``live``, ``restart`` or ``deferred``."""
    if effect == "restart":
        return "restart" if restart else "deferred"
    if mode == "off":
        return "deferred"
    return "hot" if effect == "hot" else "live"


def config_plan(ctx: Ctx, params: Any) -> Generator[Effect, Any, Any]:
    try:
        p = msgspec.convert({} if params is None else params, ConfigPlanParams)
    except msgspec.ValidationError as exc:
        raise Refused(E.invalid_request(f"invalid config.plan params: {exc}")) from None
    st = yield from config_state(ctx)
    stored = st["parsed"] if isinstance(st["parsed"], dict) else {}
    if p.raw is UNSET:
        proposed: Any = stored
        issues = st["issues"]
    else:
        try:
            proposed = pyjson5.decode(p.raw) if p.raw.strip() else {}
        except Exception as exc:  # noqa: BLE001 - pyjson5 raises several error types
            raise Refused(E.invalid_request(f"invalid config: {exc}")) from None
        if not isinstance(proposed, dict):
            raise Refused(E.invalid_request("invalid config: the root must be an object"))
        proposed = restore_redacted(proposed, stored)
        issues = [{"path": i.path, "message": i.message} for i in validate_config(proposed)]
    s = ctx.app.secret
    secrets = {v for v in (s.token, s.password) if v}
    mode = _reload_mode(proposed)
    plan = plan_reload(redact(ctx.app.config, secrets), redact(proposed, secrets), mode)
    changes = [
        {
            "path": c.path,
            "effect": c.effect.value,
            "rule": c.rule,
            "reason": c.reason,
            "applies": _applies(c.effect.value, mode, plan.restart),
        }
        for c in plan.changes
    ]
    return {
        "path": st["path"],
        "baseHash": st["hash"],
        "source": "disk" if p.raw is UNSET else "raw",
        "valid": not issues,
        "issues": issues,
        "mode": mode,
        "restart": plan.restart,
        "changes": changes,
        "hot": list(plan.hot_paths),
        "live": list(plan.noop_paths),
        "restartPaths": list(plan.restart_reasons),
        "deferred": list(plan.deferred),
    }


class RequestIdParams(msgspec.Struct, forbid_unknown_fields=True, rename="camel", kw_only=True):
    request_id: str


def _devices(ctx: Ctx) -> Any:
    services = ctx.app.parts.get("devices")
    if services is None:
        raise Refused(E.unavailable("device pairing is not available on this gateway host"))
    return services


def _request_id(params: Any, method: str) -> str:
    try:
        p = msgspec.convert(params, RequestIdParams)
    except msgspec.ValidationError as exc:
        raise Refused(E.invalid_request(f"invalid {method} params: {exc}")) from None
    if not p.request_id.strip():
        raise Refused(E.invalid_request(f"invalid {method} params: requestId must not be empty"))
    return p.request_id.strip()


def _pending_row(r: PairingRequest) -> dict[str, Any]:
    row: dict[str, Any] = {
        "requestId": r.request_id,
        "deviceId": r.device_id,
        "publicKey": r.public_key,
        "clientId": r.client_id,
        "clientMode": r.client_mode,
        "role": r.role,
        "roles": [r.role],
        "scopes": list(r.scopes),
        "remoteIp": r.remote_ip,
        "platform": r.platform,
        "reason": r.reason,
        "ts": r.ts,
    }
    if r.display_name:
        row["displayName"] = r.display_name
    return row


def _paired_row(d: PairedDevice) -> dict[str, Any]:
    return {
        "deviceId": d.device_id,
        "publicKey": d.public_key,
        "displayName": d.display_name or None,
        "platform": d.platform,
        "deviceFamily": d.device_family,
        "clientId": d.client_id,
        "clientMode": d.client_mode,
        "roles": list(d.roles),
        "scopes": list(d.scopes),
        "approvedAtMs": d.paired_at_ms,
    }


def device_pair_list(ctx: Ctx, params: Any) -> Any:
    services = _devices(ctx)
    pending = sorted(services.pairing_requests.values(), key=lambda r: r.ts)
    return {"pending": [_pending_row(r) for r in pending], "paired": [_paired_row(d) for d in services.devices.values()]}


def _take(ctx: Ctx, params: Any, method: str) -> tuple[Any, str, PairingRequest]:
    """The registry and the pending request ``params`` name, removed from the pending list."""
    services = _devices(ctx)
    request_id = _request_id(params, method)
    request: PairingRequest | None = services.pairing_requests.pop(request_id, None)
    if request is None:
        raise Refused(E.invalid_request("unknown requestId"))
    return services, request_id, request


def _resolved(ctx: Ctx, request_id: str, device_id: str, decision: str) -> None:
    ctx.log("info", "gateway/devices", f"device pairing {decision} device={device_id}")
    payload = {"requestId": request_id, "deviceId": device_id, "decision": decision, "ts": ctx.wall_ms}
    ctx.publish("device.pair.resolved", payload, drop_if_slow=True)


def device_pair_approve(ctx: Ctx, params: Any) -> Generator[Effect, Any, Any]:
    services, request_id, request = _take(ctx, params, "device.pair.approve")
    old: PairedDevice | None = services.get_device(request.device_id)
    kept = old if old is not None and old.public_key == request.public_key else None
    device = PairedDevice(
        device_id=request.device_id,
        public_key=request.public_key,
        roles=sorted(set(kept.roles if kept else []) | {request.role}),
        scopes=sorted(set(kept.scopes if kept else []) | set(request.scopes)),
        platform=request.platform,
        device_family=request.device_family,
        client_id=request.client_id,
        client_mode=request.client_mode,
        display_name=request.display_name,
        paired_at_ms=ctx.wall_ms,
    )
    try:
        yield KeepDecisions((device,))
    except EffectFailed:  # not on disk: it does not count, and the request stays pending
        services.pairing_requests[request_id] = request
        raise Refused(E.unavailable("gateway storage unavailable; retry later", retryable=True, retry_after_ms=1000)) from None
    _resolved(ctx, request_id, device.device_id, "approved")
    return {"requestId": request_id, "device": _paired_row(device)}


def device_pair_reject(ctx: Ctx, params: Any) -> Any:
    _, request_id, request = _take(ctx, params, "device.pair.reject")
    _resolved(ctx, request_id, request.device_id, "rejected")
    return {"requestId": request_id, "deviceId": request.device_id}


# --------------------------------------------------------------------------- the published UI's chat pane


def chat_startup(ctx: Ctx, params: Any) -> Generator[Effect, Any, Any]:
    """``chat.history``'s first page plus the session's run state (the published UI opens a chat so)."""
    if isinstance(params, dict) and "shortId" in params:
        raise Refused(E.invalid_request("chat.startup: short session references are not supported by this gateway"))
    try:
        p = msgspec.convert({} if params is None else params, ChatHistoryParams)
    except msgspec.ValidationError as exc:
        raise Refused(E.invalid_request(f"invalid chat.startup params: {exc}")) from None
    out = yield from chat_history(ctx, p)
    chosen = pick_agent(ctx.app, p.agent_id if p.agent_id is not UNSET else None, p.session_key)
    key = keys.canonical(p.session_key, chosen.id)
    active = [r.run_id for r in ctx.app.runs.active_for(key)]
    out["sessionKey"] = key
    info = dict(out.get("sessionInfo") or {})
    info.update({"key": key, "agentId": chosen.id, "isMain": key == f"agent:{chosen.id}:main", "hasActiveRun": bool(active), "activeRunIds": active})
    out["sessionInfo"] = info
    return out


def _session_key(ctx: Ctx, p: Any) -> tuple[str, str]:
    chosen = pick_agent(ctx.app, p.agent_id if p.agent_id is not UNSET else None, p.key)
    return keys.canonical(p.key, chosen.id), chosen.id


def sessions_messages_subscribe(ctx: Ctx, p: Any) -> Any:
    key, _ = _session_key(ctx, p)
    assert ctx.conn is not None
    ctx.conn.subscriptions.add(f"messages:{key}")
    out: dict[str, Any] = {"subscribed": True, "key": key}
    if p.include_approvals is True:
        out["approvalReplay"] = {"sessionKey": key, "updatedAtMs": ctx.wall_ms, "approvals": [], "truncated": False}
    return out


def sessions_messages_unsubscribe(ctx: Ctx, p: Any) -> Any:
    key, _ = _session_key(ctx, p)
    assert ctx.conn is not None
    ctx.conn.subscriptions.discard(f"messages:{key}")
    return {"subscribed": False, "key": key}


class DescribeParams(msgspec.Struct, forbid_unknown_fields=True, rename="camel", kw_only=True):
    key: str
    agent_id: str | UnsetType = UNSET
    include_derived_titles: bool | UnsetType = UNSET
    include_last_message: bool | UnsetType = UNSET


def sessions_describe(ctx: Ctx, params: Any) -> Generator[Effect, Any, Any]:
    try:
        p = msgspec.convert({} if params is None else params, DescribeParams)
    except msgspec.ValidationError as exc:
        raise Refused(E.invalid_request(f"invalid sessions.describe params: {exc}")) from None
    if not p.key.strip():
        raise Refused(E.invalid_request("key required"))
    key, _ = _session_key(ctx, p)
    rec = yield StoreCall("get", (key,))
    return {"session": session_row(ctx.app, rec, ctx.wall_ms) if rec is not None else None}


class IdentityParams(msgspec.Struct, forbid_unknown_fields=True, rename="camel", kw_only=True):
    agent_id: str | UnsetType = UNSET
    session_key: str | UnsetType = UNSET


def agent_identity_get(ctx: Ctx, params: Any) -> Any:
    try:
        p = msgspec.convert({} if params is None else params, IdentityParams)
    except msgspec.ValidationError as exc:
        raise Refused(E.invalid_request(f"invalid agent.identity.get params: {exc}")) from None
    session = p.session_key if p.session_key is not UNSET and p.session_key else None
    agent = pick_agent(ctx.app, p.agent_id if p.agent_id is not UNSET else None, session)
    name = agent.identity_name or ("Assistant" if agent.id == ctx.app.roster.default_id else agent.name)
    source = "identity" if agent.identity_name else "default"
    return {"agentId": agent.id, "name": name, "nameSource": source, "avatar": (name[:1] or "A").upper()}


ROUTES = routes(
    "ui",
    [
        ("chat.startup", chat_startup),
        ("sessions.messages.subscribe", sessions_messages_subscribe),
        ("sessions.messages.unsubscribe", sessions_messages_unsubscribe),
        ("sessions.describe", sessions_describe),
        ("agent.identity.get", agent_identity_get),
        ("config.plan", config_plan),
        ("device.pair.list", device_pair_list),
        ("device.pair.approve", device_pair_approve),
        ("device.pair.reject", device_pair_reject),
    ],
)
