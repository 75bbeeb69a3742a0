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

Live mode (``Accept`` naming ``text/event-stream`` explicitly, with q > 0; ``*/*`` and ``text/*``
get JSON), as published (2026.9.6, observed): ``200`` with the SSE headers, ``retry: 1000``, then
``event: history`` carrying the JSON answer's object, then for each message appended later
``event: message`` ``{sessionKey, message, messageId, messageSeq}`` (the entry in the history
form) — or, when the request named ``limit`` or ``cursor``, a fresh ``event: history`` page per
change; ``: keepalive`` every 15 s. A reset or deleted session ends the stream (the published
gateway ends it at its next keep-alive tick, without a frame).
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
from .negotiation import media_ranges
from .openai import wire
from .openai.wire import Answer, Refused, dumps

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


def is_paged(query: str) -> bool:
    """Whether the request named ``limit`` or ``cursor`` (live mode then re-sends whole pages)."""
    args = parse_qs(query, keep_blank_values=True)
    return "limit" in args or bool("cursor" in args and args["cursor"][-1].strip())


def wants_event_stream(accept: str | None) -> bool:
    """``Accept`` names ``text/event-stream`` itself (any case, parameters allowed) with q > 0."""
    return any(media == "text/event-stream" and q > 0 for media, q in media_ranges(accept))


#: The live stream's opening, its keep-alive comment and their interval (as published).
SSE_OPEN: Final = b"retry: 1000\n\n"
KEEPALIVE: Final = b": keepalive\n\n"
KEEPALIVE_S: Final = 15.0
#: More new messages than this since the last frame: one fresh page instead (bounded frames).
MAX_CATCH_UP: Final = MAX_LIMIT


def named_frame(event: str, obj: Any) -> bytes:
    """``event: <name>\\ndata: <compact json>\\n\\n`` (the history stream's frames)."""
    return b"event: " + event.encode() + b"\ndata: " + dumps(obj) + b"\n\n"


def history_frame(page: dict[str, Any]) -> bytes:
    """``event: history`` with the page the JSON route answers."""
    return named_frame("history", page)


def message_frame(key: str, entry: dict[str, Any]) -> bytes:
    """``event: message`` for one appended entry (history form, its ``__openclaw`` marks carry id and seq)."""
    marks = entry.get("__openclaw") or {}
    return named_frame("message", {"sessionKey": key, "message": entry, "messageId": marks.get("id"),
                                   "messageSeq": marks.get("seq")})


class Page(Struct, frozen=True):
    """A history page and what the live stream needs to follow it."""

    body: dict[str, Any]
    session_id: str
    count: int


class Since(Struct, frozen=True):
    """What was appended after ``seq``: the entries, or ``ended`` (reset, deleted, replaced)."""

    entries: list[dict[str, Any]]
    count: int
    ended: bool = False
    too_many: bool = False


def not_found(key: str) -> Answer:
    return wire.json_answer(404, {"ok": False, "error": {"type": "not_found", "message": f"Session not found: {key}"}})


def canonical_key(ctx: Ctx, raw_key: str) -> str:
    return keys.canonical(raw_key, ctx.app.roster.default_id)


def history_page(ctx: Ctx, raw_key: str, limit: int, before: int | None) -> Generator[Any, Any, Page]:
    """The history page of the session, or :class:`Refused` 404."""
    key = canonical_key(ctx, raw_key)
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
    return Page(out, rec.session_id, rec.message_count)


def history(ctx: Ctx, raw_key: str, limit: int, before: int | None) -> Generator[Any, Any, Any]:
    """The history answer, or :class:`Refused` 404."""
    page = yield from history_page(ctx, raw_key, limit, before)
    return wire.json_answer(200, page.body)


def history_since(ctx: Ctx, key: str, session_id: str, seq: int) -> Generator[Any, Any, Since]:
    """The entries appended to ``key`` after ``seq`` (the live stream's next frames)."""
    rec = yield StoreCall("get", (key,))
    if rec is None or rec.session_id != session_id or rec.message_count < seq:
        return Since([], 0, ended=True)
    fresh = rec.message_count - seq
    if fresh > MAX_CATCH_UP:
        return Since([], rec.message_count, too_many=True)
    messages = []
    if fresh:
        messages = yield StoreCall("messages", (session_id,), {"limit": fresh})
    return Since([history_entry(m) for m in messages if m.seq > seq], rec.message_count)


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


__all__ = [
    "ACTIONS",
    "KEEPALIVE",
    "KEEPALIVE_S",
    "SSE_OPEN",
    "Page",
    "Since",
    "Target",
    "canonical_key",
    "history",
    "history_frame",
    "history_page",
    "history_since",
    "history_query",
    "is_paged",
    "kill",
    "message_frame",
    "named_frame",
    "not_found",
    "parse_path",
    "scopes_for",
    "wants_event_stream",
]
