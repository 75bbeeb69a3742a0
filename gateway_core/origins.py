"""Browser origins on the WebSocket (protocol.md §3.2 row 10, runtime-cli.md §5.4), as pure rules.

:func:`check_origin` decides whether a handshake's ``Origin`` is admitted, in the published
gateway's order: the allowlist (``gateway.controlUi.allowedOrigins``, ``*`` allowed), the
Host-header fallback when ``dangerouslyAllowHostHeaderOriginFallback`` is on, a same-origin page on
a trusted host (loopback for a local peer, a private IP, ``*.local``, ``*.ts.net``), and any
loopback origin for a local peer. Anything else is refused: a page on some other site must never
drive an operator session from the user's browser.

:func:`seeded_origins` is the runtime allowlist a non-loopback bind gets when none is configured
(``http://localhost:<port>`` and ``http://127.0.0.1:<port>``, plus the custom bind host), so a
browser reaching the gateway through a port forward still works; it is never written to config.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from typing import Any, Final

from msgspec import Struct

#: Clients that are checked as browsers even when they send no ``Origin``.
BROWSER_UI_CLIENTS: Final = frozenset({"openclaw-control-ui", "openclaw-browser-copilot"})
SEEDED_BINDS: Final = frozenset({"lan", "tailnet", "custom", "auto"})
#: "Private or loopback" as the published gateway counts it: RFC 1918, link-local, CGNAT (tailnets).
_PRIVATE_V4: Final = tuple(
    ipaddress.ip_network(n) for n in ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10")
)
_PRIVATE_V6: Final = tuple(ipaddress.ip_network(n) for n in ("::1/128", "fe80::/10", "fc00::/7"))


class OriginVerdict(Struct, frozen=True):
    """``ok`` and what decided it (``matched_by``) or why not (``reason``)."""

    ok: bool
    matched_by: str = ""
    reason: str = ""


def is_browser_client(client_id: str, client_mode: str) -> bool:
    """The published UI and webchat clients get the origin check even without an ``Origin``."""
    return client_id in BROWSER_UI_CLIENTS or client_mode == "webchat" or client_id == "webchat-ui"


def _hostname(host: str) -> str:
    """``[::1]:80`` → ``::1``; ``Example.COM:80`` → ``example.com``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def _ip(hostname: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        addr = ipaddress.ip_address(hostname)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def is_loopback_host(hostname: str) -> bool:
    if hostname == "localhost" or hostname.endswith(".localhost"):
        return True
    addr = _ip(hostname)
    return addr is not None and addr.is_loopback


def _trusted_same_origin_host(hostname: str, local: bool) -> bool:
    if is_loopback_host(hostname):
        return local
    addr = _ip(hostname)
    if addr is not None:
        nets = _PRIVATE_V4 if isinstance(addr, ipaddress.IPv4Address) else _PRIVATE_V6
        return any(addr in net for net in nets)
    return hostname.endswith(".local") or hostname.endswith(".ts.net")


def parse_origin(origin: str | None) -> tuple[str, str, str] | None:
    """``(normalized origin, host[:port], hostname)`` of an ``http(s)`` origin, else ``None``."""
    if not origin or not origin.strip() or origin.strip() == "null":
        return None
    try:
        parts = urllib.parse.urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    hostname = parts.hostname.lower()
    shown = f"[{hostname}]" if ":" in hostname else hostname
    netloc = f"{shown}:{port}" if port is not None else shown
    return f"{parts.scheme}://{netloc}", netloc, hostname


def check_origin(
    origin: str | None,
    *,
    host: str | None,
    local: bool,
    allowed: tuple[str, ...] = (),
    host_fallback: bool = False,
) -> OriginVerdict:
    """Whether a browser ``origin`` may open a gateway session (see the module docstring)."""
    parsed = parse_origin(origin)
    if parsed is None:
        return OriginVerdict(False, reason="origin missing or invalid")
    normalized, netloc, hostname = parsed
    allow = {a.strip().lower().rstrip("/") for a in allowed if isinstance(a, str) and a.strip()}
    if "*" in allow or normalized in allow:
        return OriginVerdict(True, matched_by="allowlist")
    request_host = (host or "").strip().lower()
    if host_fallback and request_host and netloc == request_host:
        return OriginVerdict(True, matched_by="host-header-fallback")
    if request_host and netloc == request_host and _trusted_same_origin_host(_hostname(request_host), local):
        return OriginVerdict(True, matched_by="private-same-origin")
    if local and is_loopback_host(hostname):
        return OriginVerdict(True, matched_by="local-loopback")
    return OriginVerdict(False, reason="origin not allowed")


def seeded_origins(config: dict[str, Any] | None, *, bind: str, port: int) -> tuple[str, ...]:
    """The runtime allowlist for a non-loopback bind without one (runtime-cli.md §5.4), or ``()``."""
    ui = (((config or {}).get("gateway") or {}).get("controlUi") or {}) if isinstance(config, dict) else {}
    configured = [o for o in ui.get("allowedOrigins") or () if isinstance(o, str) and o.strip()]
    if bind not in SEEDED_BINDS or configured or ui.get("dangerouslyAllowHostHeaderOriginFallback") is True:
        return ()
    seeded = [f"http://localhost:{port}", f"http://127.0.0.1:{port}"]
    custom = ((config or {}).get("gateway") or {}).get("customBindHost")
    if bind == "custom" and isinstance(custom, str) and custom.strip():
        seeded.append(f"http://{custom.strip()}:{port}")
    return tuple(seeded)


def seed_log_line(origins: tuple[str, ...], bind: str) -> str:
    """The published gateway's log line for a seeded allowlist."""
    shown = "[" + ",".join(f'"{o}"' for o in origins) + "]"
    return (
        f"seeded gateway.controlUi.allowedOrigins {shown} for bind={bind} (required since v2026.2.26; see issue "
        "#29385). Applied for this runtime without writing config; add other origins to "
        "gateway.controlUi.allowedOrigins if needed."
    )


__all__ = [
    "BROWSER_UI_CLIENTS",
    "OriginVerdict",
    "check_origin",
    "is_browser_client",
    "is_loopback_host",
    "parse_origin",
    "seed_log_line",
    "seeded_origins",
]
