"""``POST /tools/invoke`` (§1.7) and the admin HTTP RPC ``POST /api/v1/admin/rpc`` (§1.10).

``/tools/invoke`` parses and plans in :mod:`gateway_core.openai.invoke` and runs the tool as a core
job (its store reads are effects). The admin RPC validates the call as a WebSocket request would be
(:mod:`gateway_core.admin_rpc`) and runs the method through the application's router on a
transient, event-less connection carrying the caller's scopes; its answer comes back through the
host's reply sinks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import trio

from gateway_core import admin_rpc, httpauth
from gateway_core import errors as E
from gateway_core.app import ConnView
from gateway_core.events import Principal, RequestReceived
from gateway_core.frames import ClientInfo, ErrorShape
from gateway_core.httproutes import Match
from gateway_core.openai import invoke as tool_invoke

from .. import _runtime
from .request import Request

if TYPE_CHECKING:
    from gateway_core.app import Reply

    from ..app import Gateway

#: How long an admin RPC call may take before it is answered 504 (the run-style methods wait more).
CALL_TIMEOUT_S: Final = 120.0


async def invoke_route(req: Request, gw: Gateway, found: Match, caller: httpauth.Caller | None) -> None:
    assert caller is not None
    body = await req.body(found.row.body_limit)
    inv = tool_invoke.parse_invoke(body, req.headers)
    answer = await gw.run_job(
        lambda _ctx: tool_invoke.invoke(inv, roster=gw.app.roster, config=gw.app.config, sender_is_owner=caller.owner),
        "tools.invoke",
    )
    await req.answer(answer)


async def call_method(gw: Gateway, method: str, params: Any, caller: httpauth.Caller, client_ip: str, local: bool) -> tuple[bool, Any, ErrorShape | None]:
    """Run one gateway method for an HTTP caller; ``(ok, payload, error)`` of its (final) answer."""
    conn_id = f"http-{_runtime.new_uuid()}"
    principal = Principal(
        conn_id=conn_id, role="operator", scopes=caller.scopes, scope_list=tuple(sorted(caller.scopes)),
        auth_method=caller.method, client=ClientInfo(id="gateway-client", version="1", platform="http", mode="backend"),
        client_ip=client_ip, local=local,
    )
    got: list[Reply] = []
    done = trio.Event()

    def sink(reply: Reply) -> None:
        if reply.final or not reply.ok:
            got.append(reply)
            done.set()

    gw.reply_sinks[conn_id] = sink
    gw.app.conns[conn_id] = ConnView(conn_id, principal, None)
    try:
        event = RequestReceived(conn_id, method, params, principal)
        gw.channels.before_request(method)
        job = gw.app.request(conn_id, event, _runtime.now(), _runtime.wall_ms())
        gw.flush()
        with trio.move_on_after(CALL_TIMEOUT_S):
            if job is not None:
                await gw._drive(job)
            await done.wait()
    finally:
        gw.reply_sinks.pop(conn_id, None)
        gw.app.conns.pop(conn_id, None)
    if not got:
        return False, None, E.error("AGENT_TIMEOUT", f"{method} did not answer within {CALL_TIMEOUT_S:.0f}s")
    reply = got[0]
    return reply.ok, reply.payload, reply.error


async def admin_rpc_route(req: Request, gw: Gateway, found: Match, caller: httpauth.Caller | None) -> None:
    assert caller is not None
    body = await req.body(found.row.body_limit, too_large=admin_rpc.too_large())
    parsed = admin_rpc.parse(body, _runtime.new_uuid())
    if not isinstance(parsed, tuple):
        await req.answer(parsed)
        return
    rid, method, params = parsed
    if method == "commands.list":
        await req.answer(admin_rpc.answer(rid, True, admin_rpc.commands_list()))
        return
    checked = admin_rpc.check(method, params, caller.scopes)
    if isinstance(checked, ErrorShape):
        await req.answer(admin_rpc.answer(rid, False, error=checked))
        return
    req.watch_disconnect()
    ok, payload, error = await call_method(gw, method, checked, caller, req.client_ip, req.local_direct)
    await req.answer(admin_rpc.answer(rid, ok, payload, error))


HANDLERS: Final = {"tools.invoke": invoke_route, "admin.rpc": admin_rpc_route}

__all__ = ["HANDLERS", "call_method"]
