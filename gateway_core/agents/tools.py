"""Built-in agent tools (http-agents-channels.md §4.4): safe, read-only, over the session store.

Each tool is a generator of effects that returns a JSON-ready result. Unknown names and bad
arguments return an error result (the model reads it and may try again); they never fail the run.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

from ..app.effects import Effect
from ..providers.types import ToolSpec
from . import keys
from .effects import StoreCall
from .store import MessageRecord, SessionPage, SessionQuery, SessionRecord

_NO_ARGS = {"type": "object", "properties": {}, "additionalProperties": False}

BUILTIN: dict[str, ToolSpec] = {
    "session_status": ToolSpec(
        name="session_status",
        description="The current session: its key, agent, model, message count and token usage.",
        parameters=_NO_ARGS,
    ),
    "sessions_list": ToolSpec(
        name="sessions_list",
        description="List this gateway's sessions, newest first.",
        parameters={
            "type": "object",
            "properties": {
                "limit": {"type": "integer", "minimum": 1, "maximum": 100, "description": "At most this many (20)."},
                "search": {"type": "string", "description": "Only sessions whose key or label contains this."},
            },
            "additionalProperties": False,
        },
    ),
    "sessions_history": ToolSpec(
        name="sessions_history",
        description="The newest messages of a session (this one when sessionKey is omitted).",
        parameters={
            "type": "object",
            "properties": {
                "sessionKey": {"type": "string"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 50, "description": "At most this many (10)."},
            },
            "additionalProperties": False,
        },
    ),
}


def describe_session(rec: SessionRecord) -> dict[str, Any]:
    return {
        "sessionKey": rec.key,
        "sessionId": rec.session_id,
        "agentId": rec.agent_id,
        "label": rec.label,
        "model": rec.model_override or (f"{rec.last_provider}/{rec.last_model}" if rec.last_model else None),
        "messages": rec.message_count,
        "usage": {"input": rec.usage.input, "output": rec.usage.output, "total": rec.usage.total},
        "updatedAt": rec.updated_at,
    }


def _limit(args: dict[str, Any], default: int, top: int) -> int:
    value = args.get("limit", default)
    return max(1, min(top, value)) if isinstance(value, int) and not isinstance(value, bool) else default


def run_tool(name: str, raw_args: str, session: SessionRecord) -> Generator[Effect, Any, dict[str, Any]]:
    """Execute built-in tool ``name`` with the model's JSON arguments; the result the model reads."""
    try:
        args = json.loads(raw_args or "{}")
    except json.JSONDecodeError as exc:
        return {"status": "error", "tool": name, "error": f"arguments are not JSON: {exc.msg}"}
    if not isinstance(args, dict):
        return {"status": "error", "tool": name, "error": "arguments must be a JSON object"}
    if name == "session_status":
        current: SessionRecord | None = yield StoreCall("get", (session.key,))
        return describe_session(current or session)
    if name == "sessions_list":
        search = args.get("search") if isinstance(args.get("search"), str) else None
        page: SessionPage = yield StoreCall("list", (SessionQuery(search=search, limit=_limit(args, 20, 100)),))
        return {"count": len(page.rows), "total": page.total, "sessions": [describe_session(r) for r in page.rows]}
    if name == "sessions_history":
        raw_key = args.get("sessionKey")
        key = keys.canonical(raw_key, session.agent_id) if isinstance(raw_key, str) and raw_key else session.key
        target: SessionRecord | None = yield StoreCall("get", (key,))
        if target is None:
            return {"status": "error", "tool": name, "error": f"no session {key}"}
        msgs: list[MessageRecord] = yield StoreCall("messages", (target.session_id,), {"limit": _limit(args, 10, 50)})
        return {
            "sessionKey": key,
            "messages": [{"role": m.role, "content": m.content, "timestamp": m.ts} for m in msgs],
        }
    return {"status": "error", "tool": name, "error": f"Tool {name} not found"}


#: ``agents_list`` (http-agents-channels.md §4.4 item 3): not offered to models yet, since answering it
#: needs the roster, which :func:`run_tool` does not get; ``/tools/invoke`` answers it through
#: :func:`agents_list`.
AGENTS_LIST = ToolSpec(
    name="agents_list",
    description="The agents this agent may hand work to (itself included), with their models.",
    parameters=_NO_ARGS,
)


def agents_list(roster: Any, requester: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The published ``agents_list`` details (recording f07): the requester and the agents it may target.

    ``agents.entries.<id>.subagents.allowAgents`` (a list of ids, ``"*"`` for any) widens the list;
    by default it holds the requester alone. Rows: ``id``, ``configured``, ``model``, ``agentRuntime``.
    """
    from .roster import OFFLINE_REF

    entries = (((config or {}).get("agents") or {}).get("entries") or {}) if isinstance((config or {}).get("agents"), dict) else {}
    own = entries.get(requester) if isinstance(entries, dict) else None
    allow = ((own or {}).get("subagents") or {}).get("allowAgents") if isinstance(own, dict) else None
    allow_any = isinstance(allow, list) and "*" in allow
    ids = [requester] + [a.id for a in roster.agents if a.id != requester and (allow_any or (isinstance(allow, list) and a.id in allow))]
    rows = []
    for agent_id in ids:
        agent = roster.get(agent_id)
        rows.append(
            {
                "id": agent_id,
                "configured": agent is not None,
                "model": (agent.primary if agent is not None and agent.primary else OFFLINE_REF),
                "agentRuntime": {"id": "auto", "source": "implicit"},
            }
        )
    return {"requester": requester, "allowAny": allow_any, "agents": rows}


__all__ = ["AGENTS_LIST", "BUILTIN", "agents_list", "describe_session", "run_tool"]
