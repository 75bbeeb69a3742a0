"""The Control UI's response headers: the security headers and CSP every response carries, and the
small builders of whole responses (plain text, JSON) on top of them."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any, Final

Headers = list[tuple[bytes, bytes]]
Response = tuple[int, Headers, bytes]

_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$")
_INLINE_SCRIPT = re.compile(r"<script(\s[^>]*)?>(.*?)</script>", re.IGNORECASE | re.DOTALL)
_SRC_ATTR = re.compile(r"\ssrc\s*=", re.IGNORECASE)

BASE_SECURITY: Final[Headers] = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(self), microphone=*, geolocation=*, clipboard-write=*"),
]


def csp(*, script_hashes: tuple[str, ...] = (), host: str | None = None, published: bool = False) -> str:
    """The Control UI's Content-Security-Policy.

    Our own UI talks only to the gateway that served it, so ``connect-src`` names that origin
    (``'self'`` plus its ``ws:``/``wss:`` forms); a configured build (``published``) gets the
    published policy, whose UI also reaches a few fixed hosts.
    """
    scripts = ["'self'", *(f"'{h}'" for h in script_hashes)]
    if published:
        connect = ["'self'", "ws:", "wss:", "data:", "https://api.openai.com", "https://tweakcn.com"]
        styles = "style-src 'self' 'unsafe-inline' https://fonts.googleapis.com"
        fonts = "font-src 'self' https://fonts.gstatic.com"
        frames = "frame-src 'self' http: https:"
        images = "img-src 'self' data: blob: https:"
    else:
        connect = ["'self'"]
        if host and _HOST.match(host):
            connect += [f"ws://{host}", f"wss://{host}"]
        styles = "style-src 'self'"
        fonts = "font-src 'self'"
        frames = "frame-src 'none'"
        images = "img-src 'self' data: blob:"
    return "; ".join(
        [
            "default-src 'self'",
            "base-uri 'none'",
            "object-src 'none'",
            "frame-ancestors 'none'",
            frames,
            f"script-src {' '.join(scripts)}",
            styles,
            images,
            "media-src 'self' data: blob:",
            fonts,
            "worker-src 'self'",
            f"connect-src {' '.join(connect)}",
        ]
    )


def inline_script_hashes(doc: str) -> tuple[str, ...]:
    """``sha256-…`` of every inline ``<script>`` body (those without ``src``)."""
    out: list[str] = []
    for m in _INLINE_SCRIPT.finditer(doc):
        attrs, body = m.group(1) or "", m.group(2)
        if _SRC_ATTR.search(" " + attrs) or not body:
            continue
        out.append("sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode())
    return tuple(out)


def base_headers(content_type: str | None, *, policy: str, extra: Headers | None = None) -> Headers:
    """The security headers and CSP, the content type when there is a body, then ``extra``."""
    out = list(BASE_SECURITY)
    out.append((b"content-security-policy", policy.encode()))
    if content_type:
        out.append((b"content-type", content_type.encode()))
    return out + (extra or [])


def finish(status: int, headers: Headers, body: bytes, head: bool) -> Response:
    """Add ``content-length`` and drop the body of a HEAD answer."""
    headers.append((b"content-length", str(len(body)).encode()))
    return status, headers, b"" if head else body


def text_reply(status: int, text: str, policy: str, head: bool, extra: Headers | None = None) -> Response:
    """A plain-text response."""
    return finish(status, base_headers("text/plain; charset=utf-8", policy=policy, extra=extra), text.encode(), head)


def json_reply(status: int, body: Any, policy: str, head: bool) -> Response:
    """A compact JSON response, never cached without revalidation."""
    data = json.dumps(body, separators=(",", ":")).encode()
    return finish(
        status,
        base_headers("application/json; charset=utf-8", policy=policy, extra=[(b"cache-control", b"no-cache")]),
        data,
        head,
    )
