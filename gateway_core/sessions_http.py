"""``POST /sessions/<key>/kill`` and ``GET /sessions/<key>/history`` (http-agents-channels.md §1.12).

Pure: parsing the path and query, the answers' shapes, and the two core jobs (a store read, then
the run table) the HTTP handler runs with ``gw.run_job``. Shapes as the published gateway answers
them (checked against 2026.9.6):

* a blank key is ``400 {"error":{"message":"invalid session key","type":"invalid_request_error"}}``;
* an unknown session is ``404 {"ok":false,"error":{"type":"not_found","message":"Session not found: <key>"}}``
  (the key as given, canonical for history);
* ``kill`` needs ``operator.admin`` *from the caller's identity*: a shared-secret bearer is treated
  as the plugin routes' write-default surface (``operator.write``) and is refused 403, as published;
* ``history`` is ``{sessionKey, items, messages, hasMore[, nextCursor]}``, newest ``limit``
  entries before ``cursor`` (a transcript seq; ``seq:N`` accepted), ``limit`` a positive integer.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Final
from urllib.parse import parse_qs, unquote

from msgspec import Struct

from . import httpauth
from .agents import keys
from .agents.effects import StoreCall
from .app import Ctx
from .app.handlers.sessions import history_entry
from .openai import wire
from .openai.wire import Answer, Refused

#: What each sub-route answers to, and the scope it needs.
ACTIONS: Final = {"kill": ("POST", "operator.admin"), "history": ("GET", "operator.read")}
DEFAULT_LIMIT: Final = 200
MAX_LIMIT: Final = 1000


class Target(Struct, frozen=True):
    key: str
    action: str


def parse_path(rest: str) -> Target | Answer | None:
    """``<key>/<action>`` (the part after ``/sessions/``): the target, a 400 for a blank key, or
    ``None`` when it is not one of these routes (the request goes on to the Control UI / 404)."""
    head, sep, action = rest.rpartition("/")
    if not sep or action not in ACTIONS:
        return None
    key = unquote(head).strip()
    if not key:
        return wire.invalid_request("invalid session key")
    return Target(key, action)


def scopes_for(caller: httpauth.Caller) -> frozenset[str]:
    """The scopes these routes see: a shared secret gets the write-default surface (as published:
    ``kill`` is refused to a bare token), an identity caller its own."""
    return frozenset({"operator.write"}) if caller.shared_secret else caller.scopes


def history_query(query: str) -> tuple[int, int | None] | Answer:
    """``(limit, before_seq)`` from ``?limit=&cursor=``, or the 400."""
    args = parse_qs(query, keep_blank_values=True)
    limit = DEFAULT_LIMIT
    if "limit" in args:
        raw = args["limit"][-1].strip()
        if not raw.isdigit() or int(raw) < 1:
            return wire.invalid_request("limit must be a positive integer")
        limit = min(int(raw), MAX_LIMIT)
    before: int | None = None
    if "cursor" in args and args["cursor"][-1].strip():
        raw = args["cursor"][-1].strip().removeprefix("seq:")
        if not raw.isdigit():
            return wire.invalid_request("cursor must be a transcript position")
        before = int(raw)
    return limit, before


def not_found(key: str) -> Answer:
    return wire.json_answer(404, {"ok": False, "error": {"type": "not_found", "message": f"Session not found: {key}"}})


def history(ctx: Ctx, raw_key: str, limit: int, before: int | None) -> Generator[Any, Any, Any]:
    """The history answer, or :class:`Refused` 404."""
    key = keys.canonical(raw_key, ctx.app.roster.default_id)
    rec = yield StoreCall("get", (key,))
    if rec is None:
        raise Refused(not_found(raw_key))
    messages = yield StoreCall("messages", (rec.session_id,), {"limit": limit + 1, "before_seq": before})
    more = len(messages) > limit
    messages = messages[1:] if more else messages
    entries = [history_entry(m) for m in messages]
    out: dict[str, Any] = {"sessionKey": key, "items": entries, "messages": entries, "hasMore": more}
    if more and messages:
        out["nextCursor"] = str(messages[0].seq)
    return wire.json_answer(200, out)


def kill(ctx: Ctx, raw_key: str, agent_id: str | None) -> Generator[Any, Any, Any]:
    """Abort every active run of the session: ``{"ok":true,"killed":n}``, or :class:`Refused` 404."""
    default = keys.normalize_agent_id(agent_id) if agent_id else ctx.app.roster.default_id
    key = keys.canonical(raw_key, default)
    rec = yield StoreCall("get", (key,))
    active = ctx.app.runs.active_for(key)
    if rec is None and not active:
        raise Refused(not_found(raw_key))
    for run in active:
        run.abort_requested = True
        ctx.app.interrupt(run.run_id, "session-kill")
    return wire.json_answer(200, {"ok": True, "killed": len(active)})


__all__ = ["ACTIONS", "Target", "history", "history_query", "kill", "not_found", "parse_path", "scopes_for"]
