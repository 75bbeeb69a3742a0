"""The gateway's HTTP application (ASGI): the pipeline of http-agents-channels.md §1.2.

In order: ``Expect`` (anything but ``100-continue`` is 417), an unparsable path (401), the probes
(liveness first), work admission (503 while the gateway restarts or stops), then the route table of
:mod:`gateway_core.httproutes` (method, auth, scope, body limit per row; enable flags read from the
live config, so a hot reload switches routes), then the Control UI, then the plain-text 404.

Route handlers live beside this module, one per family: :mod:`.openai` (``/v1/*``),
:mod:`.tools` (``/tools/invoke``, the admin RPC), :mod:`.hooks`. They get the :class:`Request`, the
gateway, the matched row and the authenticated :class:`~gateway_core.httpauth.Caller`; refusals
are :class:`~gateway_core.openai.wire.Refused` with their wire answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import trio

from gateway_core import httpauth, probes
from gateway_core.auth import check_shared_secret
from gateway_core.frames import ConnectAuth
from gateway_core.httproutes import Flags, Match, flags_of, match
from gateway_core.ingress import is_trusted_proxy
from gateway_core.openai import wire
from gateway_core.openai.wire import Answer, Refused
from gateway_core.origin import OriginPolicy, check_origin

from .. import _runtime, control_ui
from .request import Request

if TYPE_CHECKING:
    from ..app import Gateway
    from ..listener import GatewayRef

Handler = Callable[[Request, "Gateway", Match, httpauth.Caller | None], Awaitable[None]]

UNAVAILABLE: Final = wire.json_answer(
    503,
    wire.error_body(
        "Gateway is temporarily unavailable while suspending or restarting", "service_unavailable", "gateway_unavailable"
    ),
    ("Retry-After", "1"),
    ("Cache-Control", "no-store"),
)
EXPECTATION_FAILED: Final = Answer(417, (), b"")


class WebApp:
    """The ASGI callable the listener serves every non-WebSocket request with."""

    def __init__(self, ref: GatewayRef) -> None:
        self.ref = ref
        self._flags: tuple[int, Flags] = (0, Flags())
        self._handlers: dict[str, Handler] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            return
        req = Request(scope, receive, send)
        try:
            await self.handle(req)
        except Refused as refused:
            if req.started:
                raise
            await req.answer(refused.answer)

    def flags(self, gw: Gateway) -> Flags:
        """The route switches of the applied config (recomputed when the config object changes)."""
        config = gw.app.config
        if self._flags[0] != id(config):
            self._flags = (id(config), flags_of(config))
        return self._flags[1]

    def handlers(self) -> dict[str, Handler]:
        if self._handlers is None:
            from . import a2a, hooks, openai, sessions, tools

            self._handlers = {**openai.HANDLERS, **tools.HANDLERS, **hooks.HANDLERS, **a2a.HANDLERS, **sessions.HANDLERS}
        return self._handlers

    async def handle(self, req: Request) -> None:
        expect = req.headers.get("expect")
        if expect is not None and expect.strip().lower() != "100-continue":
            await req.answer(EXPECTATION_FAILED)
            return
        if not req.path.startswith("/"):
            await req.answer(wire.unauthorized())
            return
        gw = self.ref.gateway
        if req.path in probes.PROBES:
            await req.answer(probe(req, gw))
            return
        if gw is None or gw.closing:
            await req.answer(UNAVAILABLE)
            return
        found = match(req.method, req.path, self.flags(gw))
        if found is not None:
            await self.route(req, gw, found)
            return
        ui = control_ui.respond(gw, req.method, req.path + (f"?{req.query}" if req.query else ""), req.header_list)
        if ui is not None:
            await req.raw(*ui)
            return
        await req.answer(wire.not_found_text())

    async def route(self, req: Request, gw: Gateway, found: Match) -> None:
        row = found.row
        if row.name == "worker":
            await req.answer(wire.not_found_text())
            return
        handler = self.handlers().get(row.name)
        if handler is None:  # a route this gateway does not serve yet: as if it were not registered
            await req.answer(wire.not_found_text())
            return
        if row.auth != "gateway":  # hooks and plugin routes check their own credentials (and methods)
            await handler(req, gw, found, None)
            return
        if not found.method_allowed:
            await req.answer(method_not_allowed(row.name, row.allow))
            return
        caller = await authorize(req, gw, row.scope)
        await handler(req, gw, found, caller)


def method_not_allowed(route: str, allow: str) -> Answer:
    if route == "admin.rpc":
        body = {"ok": False, "error": {"type": "method_not_allowed", "message": "Method Not Allowed"}}
        return wire.json_answer(405, body, ("Allow", allow), ("Cache-Control", "no-store"))
    return wire.method_not_allowed(allow)


def http_peer(req: Request, gw: Gateway) -> httpauth.HttpPeer:
    """What auth needs to know about the caller of ``req``."""
    origin_allowed: bool | None = None
    origin = (req.headers.get("origin") or "").strip()
    if origin:
        policy = gw.app.policy
        origin_allowed = (
            check_origin(
                origin,
                host_header=req.headers.get("host"),
                local=req.local_direct,
                policy=OriginPolicy(
                    allowed=policy.allowed_origins, host_header_fallback=policy.host_header_origin_fallback, port=policy.port
                ),
            )
            is None
        )
    return httpauth.HttpPeer(
        headers=req.headers,
        client_ip=req.client_ip,
        peer_ip=req.socket_ip,
        local_direct=req.local_direct,
        peer_trusted=is_trusted_proxy(req.socket_ip, gw.trusted_proxies),
        origin_allowed=origin_allowed,
    )


async def authorize(req: Request, gw: Gateway, scope: str | None) -> httpauth.Caller:
    """§1.4 for one request: the caller, or :class:`Refused` (401/403/429; a wrong secret from
    loopback is answered after the limiter's escalating delay)."""
    outcome = httpauth.authenticate(
        gw.app.secret, http_peer(req, gw), gw.services.rate_limiter, _runtime.wall_ms(), httpauth.proxy_rules(gw.app.config)
    )
    if isinstance(outcome, httpauth.Denied):
        if outcome.delay_ms > 0:
            await trio.sleep(outcome.delay_ms / 1000)
        raise Refused(outcome.answer, outcome.reason)
    if scope is not None and not outcome.allows(scope):
        raise Refused(wire.missing_scope(scope))
    return outcome


def probe(req: Request, gw: Gateway | None) -> Answer:
    """A probe's answer; details for local-direct callers and for a valid bearer (not counted as a
    failed attempt when wrong: probes are polled)."""
    bearer = httpauth.bearer(req.headers)
    detailed = req.local_direct or (
        gw is not None and bearer is not None and check_shared_secret(gw.app.secret, ConnectAuth(token=bearer)).ok
    ) or (gw is not None and bearer is None and gw.app.secret.mode == "trusted-proxy" and _proxy_identity(req, gw))
    if gw is None:
        state = probes.ProbeState(draining=True)
    else:
        state = probes.ProbeState(
            draining=gw.closing, version=gw.policy.server_version, uptime_ms=gw.uptime_ms, failing=gw.readiness_failing()
        )
    return probes.answer(req.path, req.method, state, detailed=detailed)


def _proxy_identity(req: Request, gw: Gateway) -> bool:
    """A trusted proxy vouches for a user (no secret involved, so nothing is counted as a failure)."""
    outcome = httpauth.authenticate(
        gw.app.secret, http_peer(req, gw), gw.services.rate_limiter, _runtime.wall_ms(), httpauth.proxy_rules(gw.app.config)
    )
    return isinstance(outcome, httpauth.Caller)


__all__ = ["UNAVAILABLE", "Request", "WebApp", "authorize", "http_peer", "probe"]
