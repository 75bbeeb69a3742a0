"""HTTP on the gateway port: the Control UI (§1.9, :mod:`gateway_trio.control_ui`), the probes of
http-agents-channels.md §1.5, a JSON 404 otherwise.

``/health`` ``/healthz`` (liveness), ``/startup`` ``/startupz``, ``/ready`` ``/readyz``; GET and
HEAD only (else 405 with ``Allow``). Version and uptime details go only to local-direct callers.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from gateway_core.ingress import PROXY_ATTRIBUTION_MESSAGE
from gateway_core.server import PeerInfo

from . import control_ui

if TYPE_CHECKING:
    from .app import Gateway

BASE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(), microphone=(self), geolocation=()"),
    (b"cache-control", b"no-store"),
]
PROBES = frozenset({"/health", "/healthz", "/ready", "/readyz", "/startup", "/startupz"})


def _json(status: int, body: dict[str, Any], head: bool) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = [
        *BASE_HEADERS,
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(data)).encode()),
    ]
    return status, headers, b"" if head else data


def plain(
    status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    data = text.encode()
    headers = [
        *BASE_HEADERS,
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(data)).encode()),
    ]
    return status, headers + (extra or []), data


def proxy_attribution_required() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """403 for a request with forwarding headers from a peer that is not a trusted proxy."""
    return _json(403, {"error": {"message": PROXY_ATTRIBUTION_MESSAGE, "type": "proxy_attribution_required"}}, False)


def route(
    gw: Gateway | None, method: str, path: str, peer: PeerInfo, headers: list[tuple[bytes, bytes]] | None = None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body for one HTTP request."""
    if (ui := control_ui.respond(gw, method, path, headers)) is not None:
        return ui
    path = path.split("?", 1)[0]
    head = method == "HEAD"
    if path not in PROBES:
        return _json(404, {"error": {"message": "Not Found", "type": "not_found"}}, head)
    if method not in ("GET", "HEAD"):
        return plain(405, "Method Not Allowed", [(b"allow", b"GET, HEAD")])
    if path in ("/health", "/healthz"):
        return _json(200, {"ok": True, "status": "live"}, head)
    draining = gw is None or gw.closing
    detailed = peer.local
    uptime = gw.uptime_ms if gw is not None else 0
    if path in ("/startup", "/startupz"):
        body: dict[str, Any] = {"ok": not draining, "status": "draining" if draining else "started"}
        if detailed and gw is not None:
            body.update({"version": gw.policy.server_version, "uptimeMs": uptime})
        return _json(503 if draining else 200, body, head)
    body = {"ready": not draining}
    if detailed:
        body.update({"failing": ["gateway-draining"] if draining else [], "uptimeMs": uptime})
    return _json(503 if draining else 200, body, head)
