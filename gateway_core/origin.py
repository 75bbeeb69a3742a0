"""Browser origins: which ``Origin`` header values may open a gateway WebSocket (protocol.md §3.2 row 10).

A browser sends ``Origin`` on every WebSocket upgrade; a page on another site (or a page that
re-bound its own host name to 127.0.0.1, "DNS rebinding") must not reach the gateway. The
decision is a rules table evaluated in order, first match wins:

=====  ========================================================================================
rule   an origin is accepted when
=====  ========================================================================================
1      it is ``*``-allowed or listed in ``gateway.controlUi.allowedOrigins`` (case-insensitive)
2      ``gateway.controlUi.dangerouslyAllowHostHeaderOriginFallback`` is on and its host equals
       the ``Host`` header (the operator's explicit opt-in to "Origin equals Host")
3      its host equals the ``Host`` header and that host is a private IP *literal* (a loopback one
       only for a direct-local client): a rebinding page always sends a *name* it controls
4      the client is direct-local and the origin is a loopback host (``localhost``, 127.0.0.0/8,
       ``::1``) on the gateway's own port, over http or https
=====  ========================================================================================

Everything else is refused, so "Origin equals Host" with a host *name* (``evil.example:P`` in
both) never passes. Compared with the published gateway (2026.9.6) this is deliberately stricter
in two rows: rule 4 requires the gateway's port (the published one takes any port, and a missing
port), and same-origin by name under ``.local`` / ``.ts.net`` is not accepted (names an attacker on
the network can answer for); both can be allowed with ``allowedOrigins``.

Pure: no I/O; the shell passes the header values and the gateway's port.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Final

from msgspec import Struct

#: ``scheme://host[:port]`` with at most a trailing ``/``: no path, query, fragment or user info.
_ORIGIN_RE: Final = re.compile(r"^([a-z][a-z0-9+.-]*)://([^/?#\\@]+)/?$", re.IGNORECASE)
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}
INVALID: Final = "origin missing or invalid"
NOT_ALLOWED: Final = "origin not allowed"


class Origin(Struct, frozen=True):
    """A parsed origin, lower-cased: ``scheme``, ``host`` (with the port, as sent), ``hostname``, ``port``."""

    scheme: str
    host: str
    hostname: str
    port: int | None

    @property
    def serialized(self) -> str:
        return f"{self.scheme}://{self.host}"


#: Clients that are checked as browsers even when they send no ``Origin`` (as published).
BROWSER_UI_CLIENTS: Final = frozenset({"openclaw-control-ui", "openclaw-browser-copilot"})


def is_browser_client(client_id: str, client_mode: str) -> bool:
    """The published UI and webchat clients get the origin check even without an ``Origin``."""
    return client_id in BROWSER_UI_CLIENTS or client_mode == "webchat" or client_id == "webchat-ui"


def split_host(host: str) -> tuple[str, int | None] | None:
    """``name:port`` / ``[v6]:port`` / ``v6`` → (hostname, port); ``None`` if malformed."""
    host = host.strip().lower()
    if not host:
        return None
    if host.startswith("["):
        end = host.find("]")
        if end == -1:
            return None
        name, rest = host[1:end], host[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else ""
    elif host.count(":") > 1:  # a bare IPv6 literal
        name, port_text = host, ""
    else:
        name, _, port_text = host.partition(":")
    if not name:
        return None
    if port_text:
        if not port_text.isdigit() or int(port_text) > 65535:
            return None
        return name, int(port_text)
    return name, None


def parse_origin(raw: str | None) -> Origin | None:
    """The origin in ``raw``, or ``None`` for a missing, ``null`` or malformed value."""
    text = (raw or "").strip()
    if not text or text == "null":
        return None
    m = _ORIGIN_RE.match(text)
    if m is None:
        return None
    scheme, host = m.group(1).lower(), m.group(2).lower()
    parts = split_host(host)
    if parts is None:
        return None
    return Origin(scheme, host, parts[0], parts[1])


@functools.lru_cache(maxsize=4096)
def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``name`` as an address (IPv4-mapped forms unwrapped), or None; remembered (parsing costs ~15 µs)."""
    try:
        addr = ipaddress.ip_address(name)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def is_loopback_host(name: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ``::1``)."""
    if name == "localhost":
        return True
    addr = _ip(name)
    return addr is not None and addr.is_loopback


#: Private and loopback ranges trusted for same-origin by address: RFC 1918, link-local, CGNAT
#: (tailnets), IPv6 ULA and link-local, loopback.
_PRIVATE_NETS: Final = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "fc00::/7",
        "fe80::/10",
        "::1/128",
    )
)


def _private_or_loopback_ip(name: str) -> bool:
    addr = _ip(name)
    return addr is not None and any(addr in net for net in _PRIVATE_NETS if net.version == addr.version)


class OriginPolicy(Struct, frozen=True, kw_only=True):
    """The inputs of the decision that do not come from the request."""

    #: ``gateway.controlUi.allowedOrigins`` (after the non-loopback seeding, see ``seed_origins``).
    allowed: tuple[str, ...] = ()
    host_header_fallback: bool = False
    #: The port the gateway listens on (rule 4); ``None`` accepts a loopback origin on any port.
    port: int | None = None


def check_origin(raw: str, *, host_header: str | None, local: bool, policy: OriginPolicy) -> str | None:
    """``None`` when the browser origin ``raw`` may connect, else the refusal reason."""
    origin = parse_origin(raw)
    if origin is None:
        return INVALID
    allowed = {a.strip().lower().rstrip("/") for a in policy.allowed if a and a.strip()}
    if "*" in allowed or origin.serialized in allowed:
        return None
    request_host = (host_header or "").strip().lower()
    if policy.host_header_fallback and request_host and origin.host == request_host:
        return None
    if request_host and origin.host == request_host:
        addr = _ip(origin.hostname)
        if addr is not None and _private_or_loopback_ip(origin.hostname) and (local or not addr.is_loopback):
            return None
    if local and is_loopback_host(origin.hostname) and origin.scheme in ("http", "https"):
        port = origin.port if origin.port is not None else _DEFAULT_PORTS.get(origin.scheme)
        if policy.port is None or port == policy.port:
            return None
    return NOT_ALLOWED


def seed_origins(bind: str, port: int, custom_host: str | None = None) -> tuple[str, ...]:
    """Origins seeded for a non-loopback bind when none are configured (runtime-cli.md §5.4)."""
    if bind not in ("lan", "tailnet", "custom", "auto"):
        return ()
    seeded = [f"http://localhost:{port}", f"http://127.0.0.1:{port}"]
    if bind == "custom" and custom_host:
        seeded.append(f"http://{custom_host}:{port}")
    return tuple(seeded)


__all__ = [
    "INVALID",
    "NOT_ALLOWED",
    "Origin",
    "OriginPolicy",
    "check_origin",
    "is_loopback_host",
    "parse_origin",
    "seed_origins",
    "split_host",
]
