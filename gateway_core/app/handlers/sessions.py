"""Sessions family: transcripts and session rows from the store (protocol.md §14; recordings ws01–ws03
and the published gateway's answers recorded for this work).

``chat.history``, ``sessions.list`` / ``sessions.subscribe`` (with ``sessions.changed`` events to
subscribers), ``sessions.preview``, ``sessions.patch``, ``sessions.reset``, ``sessions.delete``.
Every read and write goes through the store effect (``StoreCall``); rows are shaped here.
As published: unknown keys are not errors (history is empty, preview says ``missing``, delete
says ``deleted:false``, patch and reset create the session), and the main session cannot be deleted.
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
from ...agents import roster as R
from ...agents.effects import StoreCall
from ...agents.store import MessageRecord, SessionPage, SessionQuery, SessionRecord
from ..effects import Effect
from ..gateway import Ctx, GatewayApp
from ..router import Refused, routes
from .runs import pick_agent

DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 1000
DEFAULT_HISTORY_LIMIT = 200
THINKING_LEVELS = [{"id": "off", "label": "off"}]
SORTS = {"updatedAt": "updatedAt", "lastInteractionAt": "updatedAt", "activity": "updatedAt"}


def _classification(rec: SessionRecord) -> str:
    rest = keys.split(rec.key)[1] if rec.key.count(":") >= 2 else rec.key
    if rec.extra.get("chatType"):
        return rec.extra["chatType"]
    return "main" if rest == "main" else "custom"


def _model_of(app: GatewayApp, rec: SessionRecord) -> tuple[str | None, str | None]:
    ref = rec.model_override
    if not ref:
        agent = app.roster.get(rec.agent_id) or app.roster.default
        ref = agent.primary or R.OFFLINE_REF
    provider, _, model = ref.partition("/")
    return provider, model


def session_row(app: GatewayApp, rec: SessionRecord, now_ms: int) -> dict[str, Any]:
    """One ``sessions.list`` row: the published row's always-present fields, plus the applicable ones."""
    provider, model = _model_of(app, rec)
    target = R.resolve_target(f"{provider}/{model}", app.config) if provider and model else None
    active = [r.run_id for r in app.runs.active_for(rec.key)]
    row: dict[str, Any] = {
        "key": rec.key,
        "visibility": "shared",
        "permissionModePending": False,
        "kind": "direct",
        "classification": _classification(rec),
        "agentId": rec.agent_id,
        "isMain": rec.key == keys.main_key(rec.agent_id),
        "isBackground": False,
        "updatedAt": rec.updated_at,
        "createdAt": rec.created_at,
        "archived": False,
        "pinned": False,
        "unread": False,
        "sessionId": rec.session_id,
        "thinkingLevels": THINKING_LEVELS,
        "thinkingOptions": [t["id"] for t in THINKING_LEVELS],
        "thinkingDefault": "off",
        "effectiveFastMode": False,
        "effectiveQueueMode": "steer",
        "modelProvider": provider,
        "model": model,
        "modelOverrideSource": "session" if rec.model_override else None,
        "runtimeSelectionLocked": False,
        "contextTokens": target.context_window if target else None,
        "messageCount": rec.message_count,
        "hasActiveRun": bool(active),
        "activeRunIds": active,
        "sharingRole": "admin",
        "totalTokensFresh": True,
    }
    for name in ("createdVia", "chatType", "lastInteractionAt", "status", "startedAt", "endedAt", "runtimeMs", "lastRunId", "lastRunError", "abortedLastRun", "systemSent"):
        if name in rec.extra:
            row[name] = rec.extra[name]
    if rec.usage.total or rec.usage.input or rec.usage.output:
        row.update(inputTokens=rec.usage.input, outputTokens=rec.usage.output, totalTokens=rec.usage.total, estimatedCostUsd=0)
    if rec.label:
        row["label"] = rec.label
    if rec.thinking:
        row["thinkingLevel"] = rec.thinking
    if rec.last_route is not None:
        row["lastRoute"] = rec.last_route
    return row


def _defaults(ctx: Ctx) -> dict[str, Any]:
    agent = ctx.app.roster.default
    ref = agent.primary or R.OFFLINE_REF
    provider, _, model = ref.partition("/")
    target = R.resolve_target(ref, ctx.app.config)
    return {
        "modelProvider": provider,
        "model": model,
        "contextTokens": target.context_window if target else None,
        "modelSelectionTarget": "session",
    }


def _selects_nothing(p: Any) -> bool:
    """Filters on things no session here has (spawned children, projects, groups, boards, owners):
    the published UI sends several; they select nothing rather than everything."""
    for name in ("spawned_by", "project_id", "workspace_dir", "creator_id", "owner_id", "involving_profile_id"):
        if getattr(p, name, UNSET) is not UNSET:
            return True
    return getattr(p, "pinned", UNSET) is True or getattr(p, "has_board", UNSET) is True or getattr(p, "archived", UNSET) is True


def listing(ctx: Ctx, p: Any, *, previews: bool = False) -> Generator[Effect, Any, dict[str, Any]]:
    limit = min(p.limit if p.limit is not UNSET else DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)
    q = SessionQuery(
        search=p.search if p.search is not UNSET and p.search else None,
        agent_id=keys.normalize_agent_id(p.agent_id) if p.agent_id is not UNSET and p.agent_id else None,
        label=p.label if p.label is not UNSET else None,
        active_since_ms=ctx.wall_ms - p.active_minutes * 60_000 if p.active_minutes is not UNSET else None,
        sort_by=SORTS.get(p.sort_by, "updatedAt") if p.sort_by is not UNSET else "updatedAt",
        limit=limit,
        offset=p.offset if p.offset is not UNSET else 0,
    )
    page: SessionPage = SessionPage(rows=[], total=0) if _selects_nothing(p) else (yield StoreCall("list", (q,)))
    nxt = q.offset + len(page.rows)
    has_more = nxt < page.total
    rows = [session_row(ctx.app, r, ctx.wall_ms) for r in page.rows]
    if previews or (p.include_last_message is not UNSET and p.include_last_message):
        for row, rec in zip(rows, page.rows, strict=True):
            if rec.last_text:
                row["lastMessagePreview"] = rec.last_text
    agents = {r.agent_id for r in page.rows}
    path = f"{ctx.app.facts.state_dir}/agents/sessions.sqlite" if len(agents) == 1 else "(multiple)"
    out = {
        "ts": ctx.wall_ms,
        "path": path,
        "count": len(rows),
        "totalCount": page.total,
        "limitApplied": q.limit,
        "nextOffset": nxt if has_more else None,
        "hasMore": has_more,
        "owners": [],
        "defaults": {**_defaults(ctx), "thinkingLevels": THINKING_LEVELS, "thinkingOptions": ["off"], "thinkingDefault": "off"},
        "sessions": rows,
    }
    if q.offset:
        out["offset"] = q.offset
    return out


def sessions_list(ctx: Ctx, p: Any) -> Generator[Effect, Any, Any]:
    return (yield from listing(ctx, p))


def sessions_subscribe(ctx: Ctx, p: Any) -> Generator[Effect, Any, Any]:
    """Turns on ``sessions.changed`` for this connection; with params, also answers the listing."""
    assert ctx.conn is not None
    ctx.conn.subscriptions.add("sessions")
    if not msgspec.to_builtins(p):
        return {"subscribed": True}
    return {"subscribed": True, "list": (yield from listing(ctx, p))}


# --------------------------------------------------------------------------- history


def history_entry(m: MessageRecord) -> dict[str, Any]:
    """A stored record in the published ``chat.history`` form."""
    marks: dict[str, Any] = {"id": f"{m.run_id or 'msg'}:{m.seq}", "recordTimestampMs": m.ts, "seq": m.seq}
    if m.run_id:
        marks["runId"] = m.run_id
    if m.role == "user":
        entry: dict[str, Any] = {"role": "user", "content": m.content, "timestamp": m.ts}
        key = m.meta.get("idempotencyKey")
        if key:
            entry["idempotencyKey"] = key
            marks["idempotencyKey"] = key
        marks["senderIsOwner"] = True
        if m.meta.get("sender"):
            marks["transport"] = m.meta["sender"]
    elif m.role == "assistant":
        content = list(m.content) if isinstance(m.content, list) else [{"type": "text", "text": str(m.content)}]
        for call in m.meta.get("toolCalls") or ():
            try:
                arguments = json.loads(call.get("arguments") or "{}")
            except json.JSONDecodeError:
                arguments = call.get("arguments")
            content.append({"type": "toolCall", "id": call.get("id"), "name": call.get("name"), "arguments": arguments})
        entry = {"role": "assistant", "content": content}
        for name in ("api", "provider", "model"):
            if m.meta.get(name) is not None:
                entry[name] = m.meta[name]
        usage = m.meta.get("usage")
        if usage:
            entry["usage"] = {**usage, "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0, "total": 0}}
        entry["stopReason"] = "toolUse" if m.meta.get("toolCalls") else m.meta.get("stopReason", "stop")
        entry["timestamp"] = m.ts
        if m.meta.get("responseId"):
            entry["responseId"] = m.meta["responseId"]
        if m.meta.get("aborted"):
            entry["openclawAbort"] = {"aborted": True, "origin": "rpc", "runId": m.run_id}
    elif m.role == "tool":
        text = m.content if isinstance(m.content, str) else json.dumps(m.content)
        entry = {
            "role": "toolResult",
            "toolCallId": m.meta.get("toolCallId"),
            "toolName": m.meta.get("toolName"),
            "content": [{"type": "text", "text": text}],
            "isError": bool(m.meta.get("isError")),
            "timestamp": m.ts,
        }
    else:
        entry = {"role": m.role, "content": m.content, "timestamp": m.ts}
        if m.meta.get("kind"):
            marks["kind"] = m.meta["kind"]
    entry["__openclaw"] = marks
    return entry


def chat_history(ctx: Ctx, p: Any) -> Generator[Effect, Any, Any]:
    chosen = pick_agent(ctx.app, p.agent_id if p.agent_id is not UNSET else None, p.session_key)
    key = keys.canonical(p.session_key, chosen.id)
    rec: SessionRecord | None = yield StoreCall("get", (key,))
    out: dict[str, Any] = {"sessionKey": p.session_key}
    if rec is None:
        rest = keys.split(key)[1]
        out.update(
            messages=[], pendingInputs={"items": [], "total": 0}, hasMore=False, totalMessages=0, defaults=_defaults(ctx),
            sessionInfo={"key": key, "agentId": chosen.id, "updatedAt": None, "activeLeafEntryId": None,
                         "classification": "main" if rest == "main" else "custom"},
        )
        return out
    limit = p.limit if p.limit is not UNSET else DEFAULT_HISTORY_LIMIT
    offset = p.offset if p.offset is not UNSET else 0
    before = rec.message_count - offset + 1 if offset else None
    messages: list[MessageRecord] = yield StoreCall("messages", (rec.session_id,), {"limit": limit, "before_seq": before})
    first_seq = messages[0].seq if messages else rec.message_count + 1
    out.update(sessionId=rec.session_id, messages=[history_entry(m) for m in messages], pendingInputs={"items": [], "total": 0})
    if offset:
        out["offset"] = offset
    else:
        cursor = {"agentId": chosen.id, "lastSeq": messages[-1].seq if messages else 0, "sessionId": rec.session_id, "version": 1}
        out["deltaCursor"] = base64.b64encode(json.dumps(cursor, separators=(",", ":")).encode()).decode()
    has_more = first_seq > 1
    if has_more:
        out["nextOffset"] = offset + len(messages)
    out.update(hasMore=has_more, totalMessages=rec.message_count, defaults=_defaults(ctx),
               sessionInfo=session_row(ctx.app, rec, ctx.wall_ms))
    return out


# --------------------------------------------------------------------------- preview, patch, reset, delete


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def sessions_preview(ctx: Ctx, p: Any) -> Generator[Effect, Any, Any]:
    limit = p.limit if p.limit is not UNSET else 12
    max_chars = p.max_chars if p.max_chars is not UNSET else 240
    previews = []
    for raw in p.keys:
        rec: SessionRecord | None = yield StoreCall("get", (keys.canonical(raw, ctx.app.roster.default_id),))
        if rec is None:
            previews.append({"key": raw, "status": "missing", "items": []})
            continue
        msgs: list[MessageRecord] = yield StoreCall("messages", (rec.session_id,), {"limit": limit * 3})
        items = []
        for m in msgs:
            text = _text(m.content)
            if m.role in ("user", "assistant") and text:
                items.append({"role": m.role, "text": text if len(text) <= max_chars else text[: max_chars - 3] + "..."})
        previews.append({"key": raw, "status": "ok", "items": items[-limit:]})
    return {"ts": ctx.wall_ms, "previews": previews}


def _resolved(app: GatewayApp, rec: SessionRecord) -> dict[str, Any]:
    provider, model = _model_of(app, rec)
    return {"modelProvider": provider, "model": model, "agentRuntime": {"id": "openclaw", "source": "implicit"},
            "runtimeSelectionLocked": False}


def _entry(rec: SessionRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"sessionId": rec.session_id, "updatedAt": rec.updated_at, "createdAt": rec.created_at}
    if rec.label:
        out["label"] = rec.label
    if rec.model_override:
        provider, _, model = rec.model_override.partition("/")
        out.update(providerOverride=provider, modelOverride=model, modelOverrideSource="session")
    if rec.thinking:
        out["thinkingLevel"] = rec.thinking
    return out


def _changed(ctx: Ctx, rec: SessionRecord | None, reason: str) -> None:
    if rec is None:
        return
    to = ctx.app.subscribers("sessions")
    if to:
        ctx.publish(
            "sessions.changed",
            {"sessionKey": rec.key, "agentId": rec.agent_id, "reason": reason, "ts": ctx.wall_ms,
             "session": session_row(ctx.app, rec, ctx.wall_ms)},
            to=to,
        )


def sessions_patch(ctx: Ctx, p: Any) -> Generator[Effect, Any, Any]:
    app = ctx.app
    key = keys.canonical(p.key, app.roster.default_id)
    fields: dict[str, Any] = {}
    if p.label is not UNSET:
        label = p.label.strip() if isinstance(p.label, str) and p.label.strip() else None
        if label is not None:
            same: SessionPage = yield StoreCall("list", (SessionQuery(label=label, limit=2),))
            if any(r.key != key for r in same.rows):
                raise Refused(E.invalid_request(f"label already in use: {label}"))
        fields["label"] = label
    if p.model is not UNSET:
        ref = p.model or None
        if ref is not None:
            provider = ref.partition("/")[0] if "/" in ref else None
            if provider is None or R.resolve_target(ref, app.config, app.provider_keys) is None:
                raise Refused(E.invalid_request(f'Unknown provider "{provider or ref}". Use /models to list providers.'))
        fields["model_override"] = ref
    if p.thinking_level is not UNSET:
        level = p.thinking_level or None
        if level not in (None, "off"):
            current: SessionRecord | None = yield StoreCall("get", (key,))
            provider, model = _model_of(app, current) if current else (None, None)
            raise Refused(E.invalid_request(f'thinkingLevel "{level}" is not supported for {provider}/{model} (use off)'))
        fields["thinking"] = level
    rec: SessionRecord | None = yield StoreCall("patch", (key, fields, ctx.wall_ms))
    if rec is None:
        yield StoreCall("ensure", (key, keys.agent_of(key, app.roster.default_id), ctx.wall_ms, {"createdVia": "operator"}))
        rec = yield StoreCall("patch", (key, fields, ctx.wall_ms))
    assert rec is not None
    _changed(ctx, rec, "patch")
    return {"ok": True, "path": f"{app.facts.state_dir}/agents/sessions.sqlite", "key": key, "entry": _entry(rec),
            "resolved": _resolved(app, rec)}


def sessions_reset(ctx: Ctx, p: Any) -> Generator[Effect, Any, Any]:
    app = ctx.app
    key = keys.canonical(p.key, app.roster.default_id)
    current: SessionRecord | None = yield StoreCall("get", (key,))
    if current is not None and p.expected_session_id is not UNSET and p.expected_session_id != current.session_id:
        raise Refused(E.invalid_request(f"Session {p.key} changed before reset. Retry.", {"reason": "session-changed"}))
    if current is None:
        yield StoreCall("ensure", (key, keys.agent_of(key, app.roster.default_id), ctx.wall_ms, {"createdVia": "operator"}))
    marker = MessageRecord(role="system", content=[{"type": "text", "text": "Reset"}], ts=ctx.wall_ms, meta={"kind": "reset"})
    rec: SessionRecord | None = yield StoreCall("reset", (key, ctx.wall_ms, marker))
    assert rec is not None
    _changed(ctx, rec, "reset")
    return {"ok": True, "key": key, "entry": _entry(rec), "resolved": _resolved(app, rec)}


def sessions_delete(ctx: Ctx, p: Any) -> Generator[Effect, Any, Any]:
    app = ctx.app
    key = keys.canonical(p.key, app.roster.default_id)
    if keys.split(key)[1] == "main":
        raise Refused(E.invalid_request(f"Cannot delete the main session ({key})."))
    if app.runs.active_for(key):
        raise Refused(E.unavailable(f"session {key} has an active run; abort it first"))
    current: SessionRecord | None = yield StoreCall("get", (key,))
    if current is not None and p.expected_session_id is not UNSET and p.expected_session_id != current.session_id:
        raise Refused(E.invalid_request(f"Session {p.key} changed before delete. Retry.", {"reason": "session-changed"}))
    deleted: bool = yield StoreCall("delete", (key,))
    if deleted and current is not None:
        stats = app.session_stats
        stats["count"] = max(0, stats.get("count", 1) - 1)
        stats["recent"] = [r for r in stats.get("recent", []) if r.get("key") != key]
        to = app.subscribers("sessions")
        if to:
            ctx.publish("sessions.changed", {"sessionKey": key, "sessionId": current.session_id, "agentId": current.agent_id,
                                             "reason": "delete", "ts": ctx.wall_ms}, to=to)
    return {"ok": True, "key": key, "deleted": deleted, "archived": []}


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
