"""Who is really calling: ingress attribution of an HTTP request or WebSocket upgrade.

http-agents-channels.md §1 step 5 and design.md §5 ("identity headers only from a configured
proxy"). Every request falls in one of four classes, decided from the socket peer and the headers:

================  =============================================================================
class             when
================  =============================================================================
direct-local      the peer is loopback and there are no forwarding or Tailscale headers
trusted-proxy     the peer is in ``gateway.trustedProxies``; the client is the right-most
                  ``X-Forwarded-For`` hop that is neither loopback nor a trusted proxy
                  (``X-Real-IP`` only with ``gateway.allowRealIpFallback``); a missing or
                  loopback client makes it *unattributable* instead
direct-remote     any other peer without such headers
unattributable    any other peer that sends them: answered 403 ``proxy_attribution_required``
================  =============================================================================

Forwarding headers are ``Forwarded``, ``X-Real-IP`` and every ``X-Forwarded-*``; Tailscale headers
are the ones the Tailscale proxy owns. A loopback peer that sends them is therefore *not* local:
a local reverse proxy can no longer lend its clients the loopback exemptions.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from typing import Final, Literal

from msgspec import Struct

from .auth import IP_CACHE, canonical_ip, is_loopback

IngressKind = Literal["direct-local", "trusted-proxy", "direct-remote", "unattributable"]

TAILSCALE_HEADERS: Final = frozenset(
    {
        "tailscale-funnel-request",
        "tailscale-headers-info",
        "tailscale-user-login",
        "tailscale-user-name",
        "tailscale-user-profile-pic",
    }
)
PROXY_ATTRIBUTION_MESSAGE: Final = (
    "Proxy client attribution is required. Configure gateway.trustedProxies narrowly and make the proxy "
    "overwrite or safely rebuild forwarded client headers."
)


def is_forwarding_header(name: str) -> bool:
    """``Forwarded``, ``X-Real-IP`` or any ``X-Forwarded-*`` (lower-case ``name``)."""
    return name == "forwarded" or name == "x-real-ip" or name.startswith("x-forwarded-")


class Ingress(Struct, frozen=True, kw_only=True):
    """The attribution of one request."""

    kind: IngressKind
    #: The client's canonical IP (the forwarded one behind a trusted proxy; the peer otherwise).
    client_ip: str
    #: Forwarding or Tailscale headers were present.
    forwarded: bool

    @property
    def refused(self) -> bool:
        return self.kind == "unattributable"

    @property
    def local(self) -> bool:
        return self.kind == "direct-local"


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted_proxies(entries: Iterable[str] | None) -> tuple[Network, ...]:
    """``gateway.trustedProxies`` (IPs or CIDRs) as networks; entries that do not parse are skipped."""
    nets: list[Network] = []
    for entry in entries or ():
        if not isinstance(entry, str) or not entry.strip():
            continue
        try:
            net = ipaddress.ip_network(canonical_ip(entry.strip()) if "/" not in entry else entry.strip(), strict=False)
        except ValueError:
            continue
        nets.append(net)
    return tuple(nets)


@functools.lru_cache(maxsize=IP_CACHE)
def _addr(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``ip`` parsed (canonical form), or None; remembered, as :func:`canonical_ip` is."""
    try:
        return ipaddress.ip_address(canonical_ip(ip))
    except ValueError:
        return None


@functools.lru_cache(maxsize=IP_CACHE)
def _trusted(ip: str, proxies: tuple[Network, ...]) -> bool:
    """Whether ``ip`` is in one of ``proxies``; remembered (a membership test costs µs per network)."""
    addr = _addr(ip)
    return addr is not None and any(addr.version == n.version and addr in n for n in proxies)


def is_trusted_proxy(ip: str, proxies: tuple[Network, ...]) -> bool:
    """Whether the socket peer ``ip`` is one of ``gateway.trustedProxies`` (trusted-proxy auth)."""
    return _trusted(ip, proxies)


def _ip_literal(raw: str) -> str | None:
    """A header hop as a canonical IP (``[v6]:port`` and ``v4:port`` forms accepted), else ``None``."""
    text = raw.strip()
    if text.startswith("["):
        end = text.find("]")
        text = text[1:end] if end != -1 else text
    elif text.count(":") == 1 and "." in text:
        text = text.split(":", 1)[0]
    addr = _addr(text)
    return str(addr) if addr is not None else None


def _forwarded_client(xff: str | None, proxies: tuple[Network, ...]) -> str | None:
    hops = [ip for ip in (_ip_literal(h) for h in (xff or "").split(",")) if ip is not None]
    for hop in reversed(hops):
        if is_loopback(hop):
            continue
        if not _trusted(hop, proxies):
            return hop
    return None


def attribute(
    peer_ip: str,
    headers: Iterable[tuple[str, str]],
    trusted_proxies: tuple[Network, ...] = (),
    *,
    allow_real_ip_fallback: bool = False,
) -> Ingress:
    """Classify one request from its socket peer and its (lower-case) header names and values."""
    peer = canonical_ip(peer_ip)
    forwarded = tailscale = False
    xff: str | None = None
    real_ip: str | None = None
    for name, value in headers:
        if is_forwarding_header(name):
            forwarded = True
            if name == "x-forwarded-for" and xff is None:
                xff = value
            elif name == "x-real-ip" and real_ip is None:
                real_ip = value
        elif name in TAILSCALE_HEADERS:
            tailscale = True
    has_headers = forwarded or tailscale
    if is_loopback(peer) and not has_headers:
        return Ingress(kind="direct-local", client_ip=peer, forwarded=False)
    if _trusted(peer, trusted_proxies):
        client = _forwarded_client(xff, trusted_proxies)
        if client is None and allow_real_ip_fallback and real_ip is not None:
            client = _ip_literal(real_ip)
        if client is None or is_loopback(client):
            return Ingress(kind="unattributable", client_ip=peer, forwarded=has_headers)
        return Ingress(kind="trusted-proxy", client_ip=client, forwarded=has_headers)
    if has_headers:
        return Ingress(kind="unattributable", client_ip=peer, forwarded=True)
    return Ingress(kind="direct-remote", client_ip=peer, forwarded=False)


__all__ = [
    "is_trusted_proxy",
    "PROXY_ATTRIBUTION_MESSAGE",
    "TAILSCALE_HEADERS",
    "Ingress",
    "IngressKind",
    "attribute",
    "is_forwarding_header",
    "parse_trusted_proxies",
]
