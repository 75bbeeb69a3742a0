"""The one ASGI app on the gateway port: WebSocket upgrades → protocol sessions; HTTP → probes.

HTTP routes (http-agents-channels.md §1.2, §1.5): ``/health`` ``/healthz`` (liveness),
``/startup`` ``/startupz``, ``/ready`` ``/readyz``; GET and HEAD only (else 405). Other paths
answer a JSON 404 for now. Probe details (version, uptime) only go to local-direct callers.
"""

from __future__ import annotations

import json
import os
from typing import Any

from gateway_core.auth import canonical_ip, is_loopback
from gateway_core.server import PeerInfo

from .session import Session

MAX_PREAUTH_PER_IP = int(os.environ.get("OPENCLAW_MAX_PREAUTH_CONNECTIONS_PER_IP") or 32)
FORWARD_HEADERS = frozenset(
    {
        b"forwarded",
        b"x-forwarded-for",
        b"x-forwarded-host",
        b"x-forwarded-proto",
        b"x-real-ip",
        b"tailscale-user-login",
        b"tailscale-user-name",
    }
)
BASE_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(), microphone=(self), geolocation=()"),
    (b"cache-control", b"no-store"),
]


def peer_of(scope: dict[str, Any]) -> PeerInfo:
    """Transport facts about the caller, from the ASGI scope."""
    client = scope.get("client") or ("", 0)
    ip = canonical_ip(client[0] or "")
    headers = scope.get("headers") or []
    forwarded = any(k.lower() in FORWARD_HEADERS for k, _ in headers)
    origin = host = None
    for k, v in headers:
        lk = k.lower()
        if lk == b"origin":
            origin = v.decode("latin-1")
        elif lk == b"host":
            host = v.decode("latin-1")
    return PeerInfo(client_ip=ip, is_loopback=is_loopback(ip), forwarded=forwarded, origin=origin, host=host)


class GatewayASGI:
    """ASGI 3 application bound to the current :class:`Gateway` (swapped on in-process restart)."""

    def __init__(self, holder: Any) -> None:
        self.holder = holder  # an object with a ``gateway`` attribute

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def _reject_ws(self, send: Any, status: int, text: str) -> None:
        body = text.encode()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})

    async def _websocket(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        gw = self.holder.gateway
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        if gw is None or gw.closing:
            await self._reject_ws(send, 503, "Gateway websocket admission closed")
            return
        peer = peer_of(scope)
        if not gw.claim_preauth(peer.client_ip, MAX_PREAUTH_PER_IP):
            await self._reject_ws(send, 503, "Too many unauthenticated sockets")
            return
        session = Session(gw, peer, send)
        session._preauth_counted = True  # type: ignore[attr-defined]
        try:
            await session.run(receive)
        finally:
            gw.unregister(session)

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        gw = self.holder.gateway
        path = scope.get("path", "/")
        method = scope.get("method", "GET")
        local = peer_of(scope)
        detailed = local.local
        status, body = 404, {"error": {"message": "Not Found", "type": "not_found"}}
        headers = list(BASE_HEADERS)
        if path in ("/health", "/healthz", "/ready", "/readyz", "/startup", "/startupz"):
            if method not in ("GET", "HEAD"):
                await self._plain(send, 405, b"Method Not Allowed", [(b"allow", b"GET, HEAD")])
                return
            draining = gw is None or gw.closing
            uptime = gw.uptime_ms if gw is not None else 0
            if path in ("/health", "/healthz"):
                status, body = 200, {"ok": True, "status": "live"}
            elif path in ("/startup", "/startupz"):
                if draining:
                    status, body = 503, {"ok": False, "status": "draining"}
                else:
                    status, body = 200, {"ok": True, "status": "started"}
                if detailed and gw is not None:
                    body.update({"version": gw.policy.server_version, "uptimeMs": uptime})
            else:
                ready = not draining
                status = 200 if ready else 503
                body = {"ready": ready}
                if detailed:
                    body.update({"failing": [] if ready else ["gateway-draining"], "uptimeMs": uptime})
        data = json.dumps(body).encode()
        headers += [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else data})

    async def _plain(self, send: Any, status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers + extra})
        await send({"type": "http.response.body", "body": body})
