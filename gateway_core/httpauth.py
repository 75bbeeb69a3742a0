"""Authentication of HTTP requests on the gateway port (http-agents-channels.md §1.4). Pure.

One decision per request: :func:`authenticate` takes the configured secret, what the transport
knows about the caller (:class:`HttpPeer`), the failed-auth limiter the WebSocket handshake also
uses (one budget per client IP and credential class, whichever surface the guesses arrive on) and
the wall clock, and returns a :class:`Caller` or a :class:`Denied` carrying its wire answer and the
delay to hold it back (the loopback penalty).

Rules, in order (token and password modes):

===========================  ==============================================================
caller                       answer
===========================  ==============================================================
no secret configured         401 (``*_missing_config``), not counted
no ``Authorization: Bearer``  401 (``*_missing``), not counted
locked out, secret given     429 ``rate_limited`` with ``Retry-After``
wrong secret                 401, counted (loopback: escalating delay, never locked)
right secret                 full operator scopes, owner; the counter is reset
===========================  ==============================================================

``none`` admits everyone but a browser page whose ``Origin`` the Control UI policy refuses (a
same-host caller's loopback page passes on any port);
``trusted-proxy`` admits a configured proxy's identity header (and, from the same host without
forwarding headers, the gateway password as a bearer). Identity callers' scopes come from
``x-openclaw-scopes`` (absent: the default set; present but empty: none).
"""

from __future__ import annotations

import hmac
from typing import Any, Final

from msgspec import Struct

from .auth import SHARED_SECRET_CLASS, AuthRateLimiter, SharedSecret, is_loopback
from .openai.wire import Answer, rate_limited, unauthorized
from .origin import is_loopback_host, parse_origin
from .scopes import satisfies

#: What a shared-secret caller gets, whatever ``x-openclaw-scopes`` says (dist's set, 7 scopes).
DEFAULT_OPERATOR_SCOPES: Final = (
    "operator.admin",
    "operator.read",
    "operator.write",
    "operator.approvals",
    "operator.questions",
    "operator.pairing",
    "operator.talk.secrets",
)
SCOPES_HEADER: Final = "x-openclaw-scopes"


class ProxyRules(Struct, frozen=True, kw_only=True):
    """``gateway.auth.trustedProxy``."""

    user_header: str | None = None
    required_headers: tuple[str, ...] = ()
    allow_users: tuple[str, ...] = ()
    allow_loopback: bool = False


def proxy_rules(config: dict[str, Any] | None) -> ProxyRules:
    """The trusted-proxy rules from config (names lower-cased; blanks dropped)."""
    auth = (((config or {}).get("gateway") or {}).get("auth") or {}) if isinstance(config, dict) else {}
    raw = auth.get("trustedProxy") if isinstance(auth, dict) else None
    if not isinstance(raw, dict):
        return ProxyRules()
    user = raw.get("userHeader")
    required = raw.get("requiredHeaders") if isinstance(raw.get("requiredHeaders"), list) else []
    users = raw.get("allowUsers") if isinstance(raw.get("allowUsers"), list) else []
    return ProxyRules(
        user_header=user.strip().lower() if isinstance(user, str) and user.strip() else None,
        required_headers=tuple(h.strip().lower() for h in required if isinstance(h, str) and h.strip()),
        allow_users=tuple(u.strip() for u in users if isinstance(u, str) and u.strip()),
        allow_loopback=raw.get("allowLoopback") is True,
    )


class HttpPeer(Struct, frozen=True, kw_only=True):
    """What the transport knows about the caller of one request."""

    headers: dict[str, str]  # lower-case names
    #: The attributed client IP (behind a trusted proxy: the forwarded one).
    client_ip: str
    #: The socket peer's IP.
    peer_ip: str
    #: Loopback peer, no forwarding headers.
    local_direct: bool
    #: The socket peer is in ``gateway.trustedProxies``.
    peer_trusted: bool = False
    #: ``None`` without an ``Origin`` header; else whether the Control UI origin policy allows it.
    origin_allowed: bool | None = None


class Caller(Struct, frozen=True, kw_only=True):
    """An authenticated HTTP caller."""

    method: str  # token | password | none | trusted-proxy
    scopes: frozenset[str]
    #: Shared-secret callers, or identity callers holding ``operator.admin``.
    owner: bool
    user: str | None = None

    def allows(self, scope: str) -> bool:
        return satisfies(self.scopes, scope)

    @property
    def shared_secret(self) -> bool:
        return self.method in ("token", "password")


class Denied(Struct, frozen=True, kw_only=True):
    answer: Answer
    reason: str
    #: Hold the answer back this long (the loopback penalty for a wrong secret).
    delay_ms: int = 0


def bearer(headers: dict[str, str]) -> str | None:
    """The secret of ``Authorization: Bearer <secret>`` (scheme case-insensitive, trimmed)."""
    value = headers.get("authorization")
    if value is None or len(value) < 7 or value[:7].lower() != "bearer ":
        return None
    secret = value[7:].strip()
    return secret or None


def declared_scopes(headers: dict[str, str]) -> frozenset[str]:
    """``x-openclaw-scopes`` for identity callers (absent: the default set; empty: none)."""
    raw = headers.get(SCOPES_HEADER)
    if raw is None:
        return frozenset(DEFAULT_OPERATOR_SCOPES)
    return frozenset(s.strip() for s in raw.split(",") if s.strip())


def _local_page(peer: HttpPeer) -> bool:
    """A same-host caller whose ``Origin`` is a loopback page on any port: the published HTTP check
    admits it (the WebSocket's Control UI rule wants the gateway's own port)."""
    origin = parse_origin(peer.headers.get("origin") or "")
    return peer.local_direct and origin is not None and origin.scheme in ("http", "https") and is_loopback_host(origin.hostname)


def _eq(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _shared(method: str) -> Caller:
    return Caller(method=method, scopes=frozenset(DEFAULT_OPERATOR_SCOPES), owner=True)


def _identity(method: str, headers: dict[str, str], user: str | None = None) -> Caller:
    scopes = declared_scopes(headers)
    return Caller(method=method, scopes=scopes, owner="operator.admin" in scopes, user=user)


def _deny(reason: str, delay_ms: int = 0) -> Denied:
    return Denied(answer=unauthorized(), reason=reason, delay_ms=delay_ms)


def authenticate(
    secret: SharedSecret,
    peer: HttpPeer,
    limiter: AuthRateLimiter,
    now_ms: int,
    rules: ProxyRules | None = None,
) -> Caller | Denied:
    """The caller of one request, or why not (see the module table)."""
    if secret.mode == "none":
        if peer.origin_allowed is False and not _local_page(peer):
            return _deny("origin_not_allowed")
        return _identity("none", peer.headers)
    if secret.mode == "trusted-proxy":
        return _trusted_proxy(secret, peer, limiter, now_ms, rules or ProxyRules())
    kind = "password" if secret.mode == "password" else "token"
    configured = secret.password if kind == "password" else secret.token
    return _shared_secret(kind, configured, peer, limiter, now_ms)


def _shared_secret(kind: str, configured: str | None, peer: HttpPeer, limiter: AuthRateLimiter, now_ms: int) -> Caller | Denied:
    if not configured:
        return _deny(f"{kind}_missing_config")
    given = bearer(peer.headers)
    if given is None:
        return _deny(f"{kind}_missing")
    retry = limiter.retry_after_ms(SHARED_SECRET_CLASS, peer.client_ip, now_ms)
    if retry is not None:
        return Denied(answer=rate_limited(retry), reason="rate_limited")
    if not _eq(given, configured):
        delay = limiter.record_failure(SHARED_SECRET_CLASS, peer.client_ip, now_ms)
        return _deny(f"{kind}_mismatch", delay)
    limiter.record_success(SHARED_SECRET_CLASS, peer.client_ip)
    return _shared(kind)


def _trusted_proxy(secret: SharedSecret, peer: HttpPeer, limiter: AuthRateLimiter, now_ms: int, rules: ProxyRules) -> Caller | Denied:
    headers = peer.headers
    if peer.local_direct and secret.password and bearer(headers) is not None:
        return _shared_secret("password", secret.password, peer, limiter, now_ms)
    if not peer.peer_trusted:
        return _deny("trusted_proxy_untrusted_source")
    if is_loopback(peer.peer_ip) and not rules.allow_loopback:
        return _deny("trusted_proxy_loopback_source")
    for name in rules.required_headers:
        if not (headers.get(name) or "").strip():
            return _deny("trusted_proxy_required_header_missing")
    user = (headers.get(rules.user_header) or "").strip() if rules.user_header else ""
    if not user:
        return _deny("trusted_proxy_user_missing")
    if rules.allow_users and user not in rules.allow_users:
        return _deny("trusted_proxy_user_not_allowed")
    return _identity("trusted-proxy", headers, user)


__all__ = [
    "DEFAULT_OPERATOR_SCOPES",
    "SHARED_SECRET_CLASS",
    "Caller",
    "Denied",
    "HttpPeer",
    "ProxyRules",
    "authenticate",
    "bearer",
    "declared_scopes",
    "proxy_rules",
]
