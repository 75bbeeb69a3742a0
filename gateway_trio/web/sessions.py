"""``POST /sessions/<key>/kill`` and ``GET /sessions/<key>/history`` (§1.12): rules and shapes in
:mod:`gateway_core.sessions_http`, run as core jobs (the store read is an effect)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qs

from gateway_core import httpauth
from gateway_core import sessions_http as S
from gateway_core.httproutes import Match
from gateway_core.openai import wire
from gateway_core.openai.wire import Answer, Refused
from gateway_core.scopes import satisfies

from .request import Request

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
        answer = await gw.run_job(lambda ctx: S.history(ctx, target.key, limit, before), "chat.history")
    await req.answer(answer)


HANDLERS: Final = {"sessions": sessions_route}

__all__ = ["HANDLERS"]
