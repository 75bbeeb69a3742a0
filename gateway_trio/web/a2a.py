"""A2A on the gateway port (docs/channels/a2a.md, http-agents-channels.md §5.7): the public agent
card and ``POST /a2a/v1`` (JSON-RPC 2.0 with per-peer bearer tokens).

The protocol lives in :mod:`gateway_core.channels.a2a`; this module checks method, token and size
in the published order, resolves ``${VAR}`` peer tokens from the environment, and runs the
exchange as a core job (its runs are ordinary turns the host drives).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

from gateway_core.channels import a2a
from gateway_core.httproutes import Match
from gateway_core.openai.wire import Answer, json_answer

from .. import _runtime
from .request import Request

if TYPE_CHECKING:
    from gateway_core.httpauth import Caller

    from ..app import Gateway

_ENV: Final = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


def _config(gw: Gateway) -> a2a.A2AConfig:
    section = ((gw.app.config.get("channels") or {}).get("a2a") or {}) if isinstance(gw.app.config, dict) else {}
    peers = section.get("peers") if isinstance(section, dict) and isinstance(section.get("peers"), dict) else {}
    tokens: dict[str, str] = {}
    for name, peer in peers.items():
        raw = peer.get("token") if isinstance(peer, dict) else None
        found = _ENV.match(raw.strip()) if isinstance(raw, str) else None
        if found is not None:
            value = os.environ.get(found.group(1))
            if value:
                tokens[name] = value
            else:
                tokens[name] = ""  # an unset variable never matches
    return a2a.a2a_config(gw.app.config, tokens=tokens)


def _server(gw: Gateway) -> a2a.A2AServer:
    server = gw.app.parts.get("a2a")
    if server is None:
        server = gw.app.parts["a2a"] = a2a.A2AServer()
    return server


def _ids() -> Iterator[str]:
    while True:
        yield _runtime.new_uuid()


def _json(status: int, body: Any) -> Answer:
    """Every A2A answer, the public card included, says ``Cache-Control: no-store`` (as published)."""
    return json_answer(status, body, ("Cache-Control", "no-store"))


async def card_route(req: Request, gw: Gateway, found: Match, caller: Caller | None) -> None:
    if req.method not in ("GET", "HEAD"):
        await req.answer(_json(404, a2a.NOT_FOUND_BODY))
        return
    host = req.headers.get("host") or "127.0.0.1"
    scheme = "https" if req.scope.get("scheme") == "https" else "http"
    await req.answer(_json(200, a2a.agent_card(_config(gw), gw.app.roster, gw.policy.server_version, f"{scheme}://{host}")))


async def rpc_route(req: Request, gw: Gateway, found: Match, caller: Caller | None) -> None:
    # The published order: method (404), then the peer's token (401), then the size (413).
    if req.method != "POST":
        await req.answer(_json(404, a2a.NOT_FOUND_BODY))
        return
    cfg = _config(gw)
    peer = a2a.authenticate(cfg, req.headers.get("authorization"))
    if peer is None:
        await req.answer(_json(401, a2a.UNAUTHORIZED_BODY))
        return
    body = await req.body(a2a.MAX_BODY, too_large=_json(413, a2a.TOO_LARGE_BODY))
    server = _server(gw)
    req.watch_disconnect()
    result = await gw.run_job(lambda ctx: a2a.exchange(ctx, server, cfg, peer, body, _ids()), "a2a")
    if result is None:
        await req.answer(Answer(200, (), b""))
        return
    await req.answer(_json(200, result))


HANDLERS: Final = {"a2a": rpc_route, "a2a.card": card_route}

__all__ = ["HANDLERS"]
