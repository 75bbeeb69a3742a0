"""Whole HTTP answers as bytes for the listener's refusals (before any route: attribution, the
pre-auth cap, bad upgrades). Routes answer through :mod:`gateway_trio.web`."""

from __future__ import annotations

import json
from typing import Any

from gateway_core.ingress import PROXY_ATTRIBUTION_MESSAGE

BASE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(), microphone=(self), geolocation=()"),
    (b"cache-control", b"no-store"),
]


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
