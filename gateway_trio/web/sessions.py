"""``POST /sessions/<key>/kill`` and ``GET /sessions/<key>/history`` (§1.12): rules and shapes in
:mod:`gateway_core.sessions_http`, run as core jobs (the store read is an effect).

The history's live mode (``Accept: text/event-stream``) follows the session through the store's
watch (:meth:`gateway_trio.store.cached.CachedSessionStore.watch`): a flag set by each committed
write, so a reader that stops reading costs one blocked task and no queue; a write that cannot go
out within :data:`STALL_S` drops the client. The client leaving cancels the stream (the listener's
disconnect watcher), and a reset or deleted session ends it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qs

import trio

from gateway_core import httpauth
from gateway_core import sessions_http as S
from gateway_core.agents import keys
from gateway_core.httproutes import Match
from gateway_core.openai import wire
from gateway_core.openai.wire import Answer, Refused
from gateway_core.scopes import satisfies

from .request import Request

#: A live-history write that cannot go out for this long drops its client.
STALL_S: Final = 60.0

if TYPE_CHECKING:
    from ..app import Gateway


async def sessions_route(req: Request, gw: Gateway, found: Match, caller: httpauth.Caller | None) -> None:
    assert caller is not None
    target = S.parse_path(found.rest)
    if target is None:
        await req.answer(wire.not_found_text())
        return
    if isinstance(target, Answer):
        raise Refused(target)
    method, scope = S.ACTIONS[target.action]
    if req.method != method and not (method == "GET" and req.method == "HEAD"):
        raise Refused(wire.method_not_allowed(method))
    if not satisfies(S.scopes_for(caller), scope):
        raise Refused(wire.missing_scope(scope))
    if target.action == "kill":
        agent = parse_qs(req.query).get("agentId", [None])[-1]
        answer = await gw.run_job(lambda ctx: S.kill(ctx, target.key, agent), "sessions.kill")
    else:
        query = S.history_query(req.query)
        if isinstance(query, Answer):
            raise Refused(query)
        limit, before = query
        if req.method == "GET" and S.wants_event_stream(req.headers.get("accept")):
            await history_stream(req, gw, target.key, limit, before, paged=S.is_paged(req.query))
            return
        answer = await gw.run_job(lambda ctx: S.history(ctx, target.key, limit, before), "chat.history")
    await req.answer(answer)


async def history_stream(req: Request, gw: Gateway, raw_key: str, limit: int, before: int | None, *, paged: bool) -> None:
    """The live history: the page, then each appended message (or a fresh page when ``paged``)."""
    store = await gw.agents.ready_store()  # a fresh state dir opens it at the first need
    if store is None:
        raise Refused(wire.unavailable())
    key = keys.canonical(raw_key, gw.app.roster.default_id)
    watch = store.watch(key)  # before the page is read: no write falls between the two
    try:
        page: S.Page = await gw.run_job(lambda ctx: S.history_page(ctx, raw_key, limit, before), "chat.history")
        await req.open_stream(200, wire.SSE_HEADERS)
        if not await _write(req, S.SSE_OPEN + S.history_frame(page.body)):
            return
        seq = page.count
        while True:
            kinds: set[str] | None = None
            with trio.move_on_after(S.KEEPALIVE_S):
                kinds = await watch.wait()
            if kinds is None:
                frame = S.KEEPALIVE
            elif kinds & {"reset", "delete"}:
                break
            elif "message" not in kinds:
                continue
            elif paged:
                try:
                    page = await gw.run_job(lambda ctx: S.history_page(ctx, raw_key, limit, before), "chat.history")
                except Refused:
                    break
                frame, seq = S.history_frame(page.body), page.count
            else:
                since: S.Since = await gw.run_job(
                    lambda ctx, sid=page.session_id, after=seq: S.history_since(ctx, key, sid, after), "chat.history"
                )
                if since.ended:
                    break
                if since.too_many:
                    page = await gw.run_job(lambda ctx: S.history_page(ctx, raw_key, limit, None), "chat.history")
                    frame, seq = S.history_frame(page.body), page.count
                else:
                    frame, seq = b"".join(S.message_frame(key, e) for e in since.entries), since.count
            if frame and not await _write(req, frame):
                return
        await req.end()
    finally:
        store.unwatch(watch)


async def _write(req: Request, data: bytes) -> bool:
    """Write one piece of the stream; False when it could not go out within :data:`STALL_S`
    (the response is left unfinished: the listener drops the connection)."""
    with trio.move_on_after(STALL_S):
        await req.write(data)
        return True
    return False


HANDLERS: Final = {"sessions": sessions_route}

__all__ = ["HANDLERS"]
