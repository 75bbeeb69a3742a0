"""Sessions family: transcripts and session rows from the store (protocol.md §14; recordings ws01–ws03).

``chat.history``, ``sessions.list`` / ``sessions.subscribe`` (with ``sessions.changed`` events),
``sessions.preview``, ``sessions.patch``, ``sessions.reset``, ``sessions.delete``. Every read and
write goes through the store effect (``StoreCall``); the rows are shaped here.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Generator
from typing import Any

import msgspec
from msgspec import UNSET

from ... import errors as E
from ...agents import keys
from ...agents.effects import StoreCall
from ...agents.store import MessageRecord, SessionPage, SessionQuery, SessionRecord
from ..effects import Effect
from ..gateway import Ctx
from ..router import Refused, routes
from .runs import pick_agent

DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 1000
DEFAULT_HISTORY_LIMIT = 200


def _usage_row(rec: SessionRecord) -> dict[str, Any]:
    return {
        "inputTokens": rec.usage.input,
        "outputTokens": rec.usage.output,
        "cacheRead": rec.usage.cache_read,
        "cacheWrite": rec.usage.cache_write,
        "totalTokens": rec.usage.total,
    }


def _kind(key: str) -> str:
    rest = key.split(":", 2)[2] if key.count(":") >= 2 else key
    if ":group:" in f":{rest}:" or rest.startswith("group:"):
        return "group"
    if rest == "main" or ":direct:" in f":{rest}:":
        return "direct"
    return "direct"


def session_row(rec: SessionRecord, now_ms: int) -> dict[str, Any]:
    """One ``sessions.list`` row."""
    model = rec.model_override.split("/", 1)[1] if rec.model_override and "/" in rec.model_override else rec.last_model
    provider = rec.model_override.split("/", 1)[0] if rec.model_override and "/" in rec.model_override else rec.last_provider
    row: dict[str, Any] = {
        "key": rec.key,
        "kind": _kind(rec.key),
        "sessionId": rec.session_id,
        "agentId": rec.agent_id,
        "updatedAt": rec.updated_at,
        "createdAt": rec.created_at,
        "age": max(0, now_ms - rec.updated_at),
        "label": rec.label,
        "modelProvider": provider,
        "model": model,
        "thinkingLevel": rec.thinking,
        "messageCount": rec.message_count,
        **_usage_row(rec),
    }
    if rec.last_text is not None:
        row["lastMessagePreview"] = rec.last_text
    if rec.last_route is not None:
        row["lastRoute"] = rec.last_route
    return row


def _query(ctx: Ctx, p: Any) -> SessionQuery:
    limit = p.limit if p.limit is not UNSET else DEFAULT_LIST_LIMIT
    since = None
    if p.active_minutes is not UNSET:
        since = ctx.wall_ms - p.active_minutes * 60_000
    return SessionQuery(
        search=p.search if p.search is not UNSET and p.search else None,
        agent_id=keys.normalize_agent_id(p.agent_id) if p.agent_id is not UNSET and p.agent_id else None,
        label=p.label if p.label is not UNSET else None,
        active_since_ms=since,
        sort_by=p.sort_by if p.sort_by is not UNSET else "updatedAt",
        limit=min(limit, MAX_LIST_LIMIT),
        offset=p.offset if p.offset is not UNSET else 0,
    )


def _selects_nothing(p: Any) -> bool:
    """Filters on things no session here has (spawned children, projects, groups, boards, owners)."""
    for name in ("spawned_by", "project_id", "workspace_dir", "creator_id", "owner_id", "involving_profile_id"):
        if getattr(p, name, UNSET) is not UNSET:
            return True
    return getattr(p, "pinned", UNSET) is True or getattr(p, "has_board", UNSET) is True or getattr(p, "archived", UNSET) is True


def listing(ctx: Ctx, p: Any) -> Generator[Effect, Any, dict[str, Any]]:
    q = _query(ctx, p)
    page: SessionPage = SessionPage(rows=[], total=0) if _selects_nothing(p) else (yield StoreCall("list", (q,)))
    nxt = q.offset + len(page.rows)
    has_more = nxt < page.total
    defaults = _defaults(ctx)
    out = {
        "ts": ctx.wall_ms,
        "path": f"{ctx.app.facts.state_dir}/agents/sessions.sqlite",
        "count": len(page.rows),
        "totalCount": page.total,
        "limitApplied": q.limit,
        "nextOffset": nxt if has_more else None,
        "hasMore": has_more,
        "owners": [],
        "defaults": defaults,
        "sessions": [session_row(r, ctx.wall_ms) for r in page.rows],
    }
    if q.offset:
        out["offset"] = q.offset
    return out


def _defaults(ctx: Ctx) -> dict[str, Any]:
    agent = ctx.app.roster.default
    ref = agent.primary or "offline/echo"
    provider, _, model = ref.partition("/")
    return {"modelProvider": provider, "model": model, "contextTokens": None}


def sessions_list(ctx: Ctx, p: Any) -> Generator[Effect, Any, Any]:
    return (yield from listing(ctx, p))


def sessions_subscribe(ctx: Ctx, p: Any) -> Generator[Effect, Any, Any]:
    """Turns on ``sessions.changed`` for this connection; with params, also answers the listing."""
    assert ctx.conn is not None
    ctx.conn.subscriptions.add("sessions")
    if not msgspec.to_builtins(p):
        return {"subscribed": True}
    return {"subscribed": True, "list": (yield from listing(ctx, p))}


def _history_entry(m: MessageRecord) -> dict[str, Any]:
    entry: dict[str, Any] = {"role": m.role, "content": m.content, "timestamp": m.ts}
    marks: dict[str, Any] = {"id": f"{m.run_id or 'msg'}:{m.seq}", "seq": m.seq, "recordTimestampMs": m.ts}
    if m.run_id:
        marks["runId"] = m.run_id
    if m.role == "user":
        key = m.meta.get("idempotencyKey")
        if key:
            entry["idempotencyKey"] = key
            marks["idempotencyKey"] = key
        marks["senderIsOwner"] = True
        if m.meta.get("sender"):
            marks["transport"] = m.meta["sender"]
    elif m.role == "assistant":
        for name in ("api", "provider", "model", "stopReason"):
            if m.meta.get(name) is not None:
                entry[name] = m.meta[name]
        usage = m.meta.get("usage")
        if usage:
            entry["usage"] = {**usage, "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0, "total": 0}}
        if m.meta.get("toolCalls"):
            entry["toolCalls"] = m.meta["toolCalls"]
    elif m.role == "tool":
        entry["toolCallId"] = m.meta.get("toolCallId")
        entry["toolName"] = m.meta.get("toolName")
    entry["__openclaw"] = marks
    return entry


def chat_history(ctx: Ctx, p: Any) -> Generator[Effect, Any, Any]:
    chosen = pick_agent(ctx.app, p.agent_id if p.agent_id is not UNSET else None, p.session_key)
    key = keys.canonical(p.session_key, chosen.id)
    rec: SessionRecord | None = yield StoreCall("get", (key,))
    limit = p.limit if p.limit is not UNSET else DEFAULT_HISTORY_LIMIT
    messages: list[MessageRecord] = []
    if rec is not None:
        messages = yield StoreCall("messages", (rec.session_id,), {"limit": limit})
    total = rec.message_count if rec is not None else 0
    cursor = {"agentId": chosen.id, "lastSeq": messages[-1].seq if messages else 0, "sessionId": rec.session_id if rec else None, "version": 1}
    return {
        "sessionKey": p.session_key,
        "sessionId": rec.session_id if rec is not None else None,
        "messages": [_history_entry(m) for m in messages],
        "pendingInputs": {"items": [], "total": 0},
        "deltaCursor": base64.b64encode(json.dumps(cursor, separators=(",", ":")).encode()).decode(),
        "hasMore": total > len(messages),
        "totalMessages": total,
        "defaults": _defaults(ctx),
        "sessionInfo": session_row(rec, ctx.wall_ms) if rec is not None else {"key": key, "agentId": chosen.id},
    }


def _key_param(ctx: Ctx, p: Any) -> str:
    raw = p.get("key") or p.get("sessionKey") if isinstance(p, dict) else None
    if not isinstance(raw, str) or not raw:
        raise Refused(E.invalid_request("key required"))
    return keys.canonical(raw, ctx.app.roster.default_id)


def sessions_preview(ctx: Ctx, p: Any) -> Generator[Effect, Any, Any]:
    raw_keys = p.get("keys") if isinstance(p, dict) else None
    wanted = [k for k in raw_keys if isinstance(k, str) and k] if isinstance(raw_keys, list) else [_key_param(ctx, p)]
    limit = p.get("limit", 12) if isinstance(p, dict) and isinstance(p.get("limit"), int) else 12
    previews = []
    for raw in wanted:
        key = keys.canonical(raw, ctx.app.roster.default_id)
        rec: SessionRecord | None = yield StoreCall("get", (key,))
        if rec is None:
            previews.append({"key": raw, "status": "missing", "items": []})
            continue
        msgs: list[MessageRecord] = yield StoreCall("messages", (rec.session_id,), {"limit": limit})
        items = [{"role": m.role, "text": _text(m.content)} for m in msgs if _text(m.content)]
        previews.append({"key": raw, "status": "ok" if items else "empty", "items": items})
    return {"ts": ctx.wall_ms, "previews": previews}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def sessions_patch(ctx: Ctx, p: Any) -> Generator[Effect, Any, Any]:
    key = _key_param(ctx, p)
    fields: dict[str, Any] = {}
    if isinstance(p, dict):
        if "label" in p:
            fields["label"] = p["label"] if isinstance(p["label"], str) and p["label"] else None
        if "model" in p:
            fields["model_override"] = p["model"] if isinstance(p["model"], str) and p["model"] else None
        if "thinkingLevel" in p or "thinking" in p:
            level = p.get("thinkingLevel", p.get("thinking"))
            fields["thinking"] = level if isinstance(level, str) and level else None
    rec: SessionRecord | None = yield StoreCall("patch", (key, fields, ctx.wall_ms))
    if rec is None:
        rec = yield StoreCall("ensure", (key, keys.agent_of(key, ctx.app.roster.default_id), ctx.wall_ms))
        rec = yield StoreCall("patch", (key, fields, ctx.wall_ms))
    ctx.app.session_changed(rec, "patch")
    assert rec is not None
    return {"ok": True, "key": key, "entry": session_row(rec, ctx.wall_ms)}


def sessions_reset(ctx: Ctx, p: Any) -> Generator[Effect, Any, Any]:
    key = _key_param(ctx, p)
    rec: SessionRecord | None = yield StoreCall("reset", (key, ctx.wall_ms))
    if rec is None:
        rec = yield StoreCall("ensure", (key, keys.agent_of(key, ctx.app.roster.default_id), ctx.wall_ms))
    ctx.app.session_changed(rec, "reset")
    assert rec is not None
    return {"ok": True, "key": key, "entry": session_row(rec, ctx.wall_ms)}


def sessions_delete(ctx: Ctx, p: Any) -> Generator[Effect, Any, Any]:
    key = _key_param(ctx, p)
    if ctx.app.runs.active_for(key):
        raise Refused(E.unavailable(f"session {key} has an active run; abort it first"))
    deleted: bool = yield StoreCall("delete", (key,))
    if deleted:
        ctx.app.session_stats["count"] = max(0, ctx.app.session_stats.get("count", 1) - 1)
        ctx.app.session_stats["recent"] = [r for r in ctx.app.session_stats.get("recent", []) if r.get("key") != key]
        to = ctx.app.subscribers("sessions")
        if to:
            ctx.publish("sessions.changed", {"sessionKey": key, "reason": "delete", "ts": ctx.wall_ms}, to=to)
    return {"ok": True, "key": key, "deleted": deleted}


ROUTES = routes(
    "sessions",
    [
        ("chat.history", chat_history),
        ("sessions.list", sessions_list),
        ("sessions.subscribe", sessions_subscribe),
        ("sessions.preview", sessions_preview),
        ("sessions.patch", sessions_patch),
        ("sessions.reset", sessions_reset),
        ("sessions.delete", sessions_delete),
    ],
)
