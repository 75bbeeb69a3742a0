"""Shared-secret authentication, its failure texts, and the failed-auth rate limiter (§6.1, §6.5).

Pure: the secrets come in as arguments (resolved per connection by the application, so a rotated
token stops working at once), comparisons are constant-time, and the limiter takes ``now_ms``.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
from collections import OrderedDict
from typing import Any, Final, Literal

from msgspec import UNSET, Struct

from .errors import INVALID_REQUEST, error
from .frames import ConnectAuth, ErrorShape

AuthMode = Literal["none", "token", "password", "trusted-proxy"]


#: The limiter's key class for shared-secret attempts: the WebSocket handshake and HTTP auth count
#: failures of one client IP together.
SHARED_SECRET_CLASS: Final = "shared-secret"


class SharedSecret(Struct, frozen=True, kw_only=True):
    """The gateway's auth configuration as resolved for one connection attempt."""

    mode: AuthMode = "token"
    token: str | None = None
    password: str | None = None


class AuthOutcome(Struct, frozen=True, kw_only=True):
    """Result of checking the shared secret: ``ok`` with a method, or a failure reason."""

    ok: bool
    method: str | None = None
    reason: str | None = None
    #: Whether the client presented any shared credential at all (§6.3 rule 5 vs 6).
    presented: bool = False


def _eq(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def check_shared_secret(secret: SharedSecret, auth: ConnectAuth | None) -> AuthOutcome:
    """Compare the presented credential with the configured one (§6.1 table)."""
    token = auth.token if auth is not None and auth.token is not UNSET else None
    password = auth.password if auth is not None and auth.password is not UNSET else None
    if secret.mode == "none":
        return AuthOutcome(ok=True, method="none", presented=bool(token or password))
    if secret.mode == "token":
        given = token if token is not None else password
        if not secret.token:
            return AuthOutcome(ok=False, reason="token_missing_config", presented=given is not None)
        if not given:
            return AuthOutcome(ok=False, reason="token_missing", presented=False)
        if _eq(given, secret.token):
            return AuthOutcome(ok=True, method="token", presented=True)
        return AuthOutcome(ok=False, reason="token_mismatch", presented=True)
    if secret.mode == "password":
        given = password if password is not None else token
        if not secret.password:
            return AuthOutcome(ok=False, reason="password_missing_config", presented=given is not None)
        if not given:
            return AuthOutcome(ok=False, reason="password_missing", presented=False)
        if _eq(given, secret.password):
            return AuthOutcome(ok=True, method="password", presented=True)
        return AuthOutcome(ok=False, reason="password_mismatch", presented=True)
    # trusted-proxy: identity headers are the shell's business; without them nothing matches.
    return AuthOutcome(ok=False, reason="trusted_proxy_user_missing", presented=bool(token or password))


#: authReason → (message template, details.code, recommendedNextStep). ``{hint}`` is per client.
FAILURES: Final[dict[str, tuple[str, str, str]]] = {
    "token_missing": (
        "unauthorized: gateway token missing ({hint})",
        "AUTH_TOKEN_MISSING",
        "update_auth_configuration",
    ),
    "token_mismatch": (
        "unauthorized: gateway token mismatch ({hint})",
        "AUTH_TOKEN_MISMATCH",
        "update_auth_credentials",
    ),
    "token_missing_config": (
        "unauthorized: gateway token not configured on gateway (set gateway.auth.token)",
        "AUTH_TOKEN_NOT_CONFIGURED",
        "update_auth_configuration",
    ),
    "password_missing": (
        "unauthorized: gateway password missing ({hint})",
        "AUTH_PASSWORD_MISSING",
        "update_auth_configuration",
    ),
    "password_mismatch": (
        "unauthorized: gateway password mismatch ({hint})",
        "AUTH_PASSWORD_MISMATCH",
        "update_auth_credentials",
    ),
    "password_missing_config": (
        "unauthorized: gateway password not configured on gateway (set gateway.auth.password)",
        "AUTH_PASSWORD_NOT_CONFIGURED",
        "update_auth_configuration",
    ),
    "device_token_mismatch": (
        "unauthorized: device token mismatch (rotate/reissue device token)",
        "AUTH_DEVICE_TOKEN_MISMATCH",
        "update_auth_credentials",
    ),
    "scope_mismatch": (
        "unauthorized: device token scope mismatch (re-pair or approve scope upgrade)",
        "AUTH_SCOPE_MISMATCH",
        "review_auth_configuration",
    ),
    "rate_limited": (
        "unauthorized: too many failed authentication attempts (retry later)",
        "AUTH_RATE_LIMITED",
        "wait_then_retry",
    ),
    "trusted_proxy_user_missing": (
        "unauthorized: trusted proxy identity header missing",
        "AUTH_IDENTITY_HEADER_REQUIRED",
        "review_auth_configuration",
    ),
}


def hint(kind: Literal["token", "password"], client_id: str, client_mode: str, local: bool) -> str:
    """The parenthetical hint of a missing/mismatch message, which depends on the client (§6.5)."""
    if client_id == "cli" and client_mode == "cli":
        if local:
            if kind == "password":
                return "use this gateway's gateway.auth.password"
            return "use this gateway's gateway.auth.token or pair the device"
        return f"set gateway.remote.{kind} to match gateway.auth.{kind}"
    return f"provide gateway auth {kind}"


def failure_error(
    reason: str,
    *,
    client_id: str,
    client_mode: str,
    local: bool,
    can_retry_with_device_token: bool = False,
    retry_after_ms: int | None = None,
) -> ErrorShape:
    """The ``INVALID_REQUEST "unauthorized: …"`` error for ``reason`` (§6.5 table)."""
    template, code, step = FAILURES.get(reason, ("unauthorized", "AUTH_UNAUTHORIZED", "review_auth_configuration"))
    kind: Literal["token", "password"] = "password" if reason.startswith("password") else "token"
    message = template.format(hint=hint(kind, client_id, client_mode, local))
    if can_retry_with_device_token:
        step = "retry_with_device_token"
    details: dict[str, Any] = {
        "code": code,
        "authReason": reason,
        "canRetryWithDeviceToken": can_retry_with_device_token,
        "recommendedNextStep": step,
    }
    if retry_after_ms is not None:
        return error(INVALID_REQUEST, message, details, retryable=True, retry_after_ms=retry_after_ms)
    return error(INVALID_REQUEST, message, details)


# --------------------------------------------------------------------------- rate limiting


class RateLimitPolicy(Struct, frozen=True, kw_only=True):
    """``gateway.auth.rateLimit`` (§6.5 defaults)."""

    max_attempts: int = 10
    window_ms: int = 60_000
    lockout_ms: int = 300_000
    exempt_loopback: bool = True
    #: Loopback penalty: base x 2^(n-1), capped.
    penalty_base_ms: int = 250
    penalty_cap_ms: int = 5_000
    max_keys: int = 10_000


class _Entry:
    __slots__ = ("failures", "locked_until")

    def __init__(self) -> None:
        self.failures: list[int] = []
        self.locked_until = 0


#: Peer addresses remembered by :func:`canonical_ip` and :func:`is_loopback` (parsing one costs
#: ~15 µs, and every request asks several times; the few peers of a gateway repeat).
IP_CACHE: Final = 4096


@functools.lru_cache(maxsize=IP_CACHE)
def canonical_ip(ip: str) -> str:
    """``::ffff:1.2.3.4`` → ``1.2.3.4``; anything unparsable is kept as given."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


@functools.lru_cache(maxsize=IP_CACHE)
def is_loopback(ip: str) -> bool:
    """Whether ``ip`` is a loopback address (IPv4-mapped forms included)."""
    try:
        return ipaddress.ip_address(canonical_ip(ip)).is_loopback
    except ValueError:
        return False


class AuthRateLimiter:
    """In-memory sliding window of failed authentications, keyed by (scope, canonical IP).

    Loopback peers are never locked out (when ``exempt_loopback``) but each failure earns an
    escalating delay before the answer; other peers are locked after ``max_attempts`` failures
    within ``window_ms`` for ``lockout_ms``, during which even a correct secret is refused.

    Browser-origin attempts (``origin`` given) are counted apart and never exempt: a page in the
    operator's own browser is as hostile as a remote peer. A loopback browser is keyed by its
    origin (every local page shares the peer address), any other by its address (§6.5).
    """

    def __init__(self, policy: RateLimitPolicy | None = None) -> None:
        self.policy = policy if policy is not None else RateLimitPolicy()
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()

    def _key(self, scope: str, ip: str, origin: str | None) -> tuple[str, str]:
        if origin is None:
            return (scope, canonical_ip(ip))
        if is_loopback(ip):
            return (f"{scope}:browser", origin.strip().lower())
        return (f"{scope}:browser", canonical_ip(ip))

    def _exempt(self, ip: str, origin: str | None) -> bool:
        return origin is None and self.policy.exempt_loopback and is_loopback(ip)

    def retry_after_ms(self, scope: str, ip: str, now_ms: int, *, origin: str | None = None) -> int | None:
        """Remaining lockout for this peer, or ``None`` when it may try."""
        if self._exempt(ip, origin):
            return None
        entry = self._entries.get(self._key(scope, ip, origin))
        if entry is None or entry.locked_until <= now_ms:
            return None
        return entry.locked_until - now_ms

    def record_failure(self, scope: str, ip: str, now_ms: int, *, origin: str | None = None) -> int:
        """Count one failure; returns the delay (ms) to hold the answer back (loopback penalty)."""
        key = self._key(scope, ip, origin)
        entry = self._entries.pop(key, None) or _Entry()
        self._entries[key] = entry
        while len(self._entries) > self.policy.max_keys:
            self._entries.popitem(last=False)
        horizon = now_ms - self.policy.window_ms
        entry.failures = [t for t in entry.failures if t > horizon]
        entry.failures.append(now_ms)
        n = len(entry.failures)
        if self._exempt(ip, origin):
            return min(self.policy.penalty_base_ms * 2 ** min(n - 1, 30), self.policy.penalty_cap_ms)
        if n >= self.policy.max_attempts:
            entry.locked_until = now_ms + self.policy.lockout_ms
        return 0

    def record_success(self, scope: str, ip: str, *, origin: str | None = None) -> None:
        """A success resets the peer's counter."""
        self._entries.pop(self._key(scope, ip, origin), None)

    @property
    def size(self) -> int:
        """How many keys are tracked (bounded by ``max_keys``)."""
        return len(self._entries)


__all__ = [
    "FAILURES",
    "AuthMode",
    "AuthOutcome",
    "AuthRateLimiter",
    "RateLimitPolicy",
    "SharedSecret",
    "canonical_ip",
    "check_shared_secret",
    "failure_error",
    "hint",
    "is_loopback",
]
