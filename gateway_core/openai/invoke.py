"""``POST /tools/invoke``: one tool call from an operator (http-agents-channels.md §1.7, §4.2; observed §6).

Always on, ``operator.write``, 2 MiB. :func:`parse_invoke` reads the body; :func:`invoke` is a
generator that yields the agent runtime's :class:`~gateway_core.agents.effects.StoreCall` effects
(the host runs them, as for a run's built-in tools) and returns the :class:`Answer`.

=====================================================  ==========================================
case                                                   answer
=====================================================  ==========================================
body not JSON                                          400 ``{"error":{message,type}}`` (V8 text)
no ``name``/``tool``                                   400 ``{"ok":false,"error":{"type":
                                                       "invalid_request","message":"tools.invoke
                                                       requires name"}}``
bad ``sessionKey``/``agentId``                         400 ``invalid_request``
tool unknown, filtered by policy or the HTTP deny list 404 ``not_found`` ``Tool not available: <n>``
tool input error                                       400 ``tool_error`` (``sessionKey required``)
success                                                200 ``{"ok":true,"result":{"content":[{"type":
                                                       "text","text":<pretty JSON>}],"details":…}}``
=====================================================  ==========================================

Policy, in order (a deny always wins): the tool must exist here; ``gateway.tools.deny`` adds names
to the HTTP default deny list; ``gateway.tools.allow`` removes names from it (owner/admin callers
only); owner-only tools are never available to other callers.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any, Final

from msgspec import Struct

from ..agents import keys
from ..agents.effects import StoreCall
from ..agents.roster import Roster
from ..agents.store import SessionRecord
from ..agents.tools import AGENTS_LIST, BUILTIN, agents_list, run_tool
from ..app.effects import Effect
from .chat import read_json
from .models import default_agent, header
from .wire import Answer, json_answer

#: The HTTP surface's default deny list (dist has these 21; the docs list twelve).
HTTP_DENY: Final = frozenset(
    {"exec", "spawn", "shell", "fs_write", "fs_delete", "fs_move", "apply_patch", "terminal", "portal",
     "sessions_spawn", "sessions_send", "conversations_list", "conversations_send", "conversations_turn",
     "automations", "gateway", "plugins", "nodes", "computer", "mobile_ui", "openclaw"}
)
#: Core tools only owners (shared-secret callers, ``operator.admin``) may ever call on gateway surfaces.
OWNER_ONLY: Final = frozenset(
    {"automations", "gateway", "plugins", "sessions", "screen", "terminal", "portal", "conversations_list",
     "conversations_send", "conversations_turn", "nodes", "computer", "mobile_ui", "openclaw"}
)
ALIASES: Final = {"cron": "automations"}
#: What this gateway can run over HTTP (everything else is "not available", like ``ls`` in f10).
AVAILABLE: Final = frozenset({*BUILTIN, AGENTS_LIST.name})
CONTEXT_HEADERS: Final = ("x-openclaw-message-channel", "x-openclaw-account-id", "x-openclaw-message-to", "x-openclaw-thread-id")
BODY_LIMIT: Final = 2 * 1024 * 1024


def _fail(status: int, type_: str, message: str) -> Answer:
    return json_answer(status, {"ok": False, "error": {"type": type_, "message": message}})


def not_available(name: str) -> Answer:
    return _fail(404, "not_found", f"Tool not available: {name}")


class Invocation(Struct, frozen=True, kw_only=True):
    """A parsed ``/tools/invoke`` body (``name`` is empty when none was given)."""

    name: str
    args: dict[str, Any]
    action: str | None = None
    session_key: str = "main"
    agent_id: str | None = None
    idempotency_key: str | None = None
    context: dict[str, str] = {}

    def tool_call_id(self, now_ms: int) -> str:
        """``http-direct-operator-<idempotencyKey>``, else ``…-<ms timestamp>``."""
        return f"http-direct-operator-{self.idempotency_key or now_ms}"


def _opt_str(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def parse_invoke(body: bytes, headers: dict[str, str] | None = None) -> Invocation:
    """Read the body (``name`` wins over ``tool``; ``cron`` means ``automations``); raises :class:`Refused` on bad JSON."""
    raw = read_json(body)
    data = raw if isinstance(raw, dict) else {}
    chosen = data.get("name") if data.get("name") is not None else data.get("tool")
    name = _opt_str(chosen) or ""
    args = data.get("args") if isinstance(data.get("args"), dict) else {}
    return Invocation(
        name=ALIASES.get(name, name),
        args=args,
        action=_opt_str(data.get("action")),
        session_key=_opt_str(data.get("sessionKey")) or "main",
        agent_id=_opt_str(data.get("agentId")),
        idempotency_key=_opt_str(data.get("idempotencyKey")),
        context={h: v for h in CONTEXT_HEADERS if (v := header(headers or {}, h)) is not None},
    )


def _names(config: dict[str, Any] | None, key: str) -> set[str]:
    tools = (((config or {}).get("gateway") or {}).get("tools") or {}) if isinstance((config or {}).get("gateway"), dict) else {}
    value = tools.get(key) if isinstance(tools, dict) else None
    return {ALIASES.get(v.strip().lower(), v.strip().lower()) for v in value if isinstance(v, str) and v.strip()} if isinstance(value, list) else set()


def allowed(name: str, config: dict[str, Any] | None, sender_is_owner: bool) -> bool:
    """The HTTP policy for ``name`` (it must also be :data:`AVAILABLE`)."""
    if name not in AVAILABLE:
        return False
    if name in _names(config, "deny"):
        return False
    if name in HTTP_DENY and not (sender_is_owner and name in _names(config, "allow")):
        return False
    return sender_is_owner or name not in OWNER_ONLY


def resolve_target(inv: Invocation, roster: Roster) -> tuple[str, str] | Answer:
    """``(agent id, canonical session key)``; a missing or ``main`` key is the agent's main session."""
    raw = inv.session_key
    if raw.lower().startswith("agent:"):
        parts = raw.split(":", 2)
        if len(parts) < 3 or not parts[1] or not parts[2]:
            return _fail(400, "invalid_request", f'malformed session key "{raw}"')
    requested = inv.agent_id.lower() if inv.agent_id else None
    if inv.agent_id is not None and (requested is None or roster.get(requested) is None):
        return _fail(400, "invalid_request", f'Unknown agent id "{inv.agent_id}"')
    base = requested or default_agent(roster)
    key = keys.canonical(raw, base)
    owner = keys.split(key)[0]
    if requested is not None and owner != requested:
        return _fail(400, "invalid_request", f'agent id "{inv.agent_id}" does not match session agent "{owner}"')
    return owner, key


#: HTTP input rules of the tools (the published tools' own argument errors): name → (arg, message).
REQUIRED_ARGS: Final = {"sessions_history": ("sessionKey", "sessionKey required")}


def result_envelope(details: Any) -> Answer:
    """200 with the tool result: pretty JSON (``JSON.stringify(v, null, 2)``) as text, the object as details."""
    text = json.dumps(details, indent=2, ensure_ascii=False)
    return json_answer(200, {"ok": True, "result": {"content": [{"type": "text", "text": text}], "details": details}})


def invoke(
    inv: Invocation, *, roster: Roster, config: dict[str, Any] | None = None, sender_is_owner: bool = True
) -> Generator[Effect, Any, Answer]:
    """Run the invocation; yields ``StoreCall`` effects; returns the answer."""
    if not inv.name:
        return _fail(400, "invalid_request", "tools.invoke requires name")
    target = resolve_target(inv, roster)
    if isinstance(target, Answer):
        return target
    agent_id, key = target
    if not allowed(inv.name, config, sender_is_owner):
        return not_available(inv.name)
    args = dict(inv.args)  # ``action`` is merged only into tools with an ``action`` property: none here (§1.7)
    rule = REQUIRED_ARGS.get(inv.name)
    if rule is not None and not (isinstance(args.get(rule[0]), str) and args[rule[0]].strip()):
        return _fail(400, "tool_error", rule[1])
    if inv.name == AGENTS_LIST.name:
        return result_envelope(agents_list(roster, agent_id, config))
    found: SessionRecord | None = yield StoreCall("get", (key,))
    session = found or SessionRecord(key=key, session_id="", agent_id=agent_id, created_at=0, updated_at=0)
    output = yield from run_tool(inv.name, json.dumps(args), session)
    return result_envelope(output)


__all__ = [
    "ALIASES",
    "AVAILABLE",
    "BODY_LIMIT",
    "HTTP_DENY",
    "OWNER_ONLY",
    "REQUIRED_ARGS",
    "Invocation",
    "allowed",
    "invoke",
    "not_available",
    "parse_invoke",
    "resolve_target",
    "result_envelope",
]
