"""The narrow interface through which the core reaches gateway-wide state (no I/O here).

A :class:`ServerConnection` decides the handshake itself, but some answers depend on state that
outlives a connection: the admission phase, the current shared secret, paired devices, device
tokens, the failed-auth limiter, the control-plane write budget. The application hands the core an
object with this shape. :class:`MemoryServices` is a complete in-memory implementation (used by
tests and the conformance runner); the Trio shell supplies one that persists to the state dir and
draws tokens from a CSPRNG.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Callable
from typing import Protocol

from msgspec import Struct

from .auth import AuthRateLimiter, SharedSecret, canonical_ip


class Admission(enum.Enum):
    """Gateway phase as seen by a connecting client (§3.2 rows 7, 7b)."""

    ACCEPTING = "accepting"
    STARTING = "starting"
    RESTARTING = "restarting"
    SUSPENDING = "suspending"
    #: Stopping or restarting: requests in flight are finishing, new work is refused (§8.2).
    DRAINING = "draining"


class PairedDevice(Struct, kw_only=True):
    """An approved device (§6.6). Platform and family are pinned at pairing."""

    device_id: str
    public_key: str
    roles: list[str]
    scopes: list[str]
    platform: str = ""
    device_family: str = ""
    client_id: str = ""
    client_mode: str = ""
    display_name: str = ""
    paired_at_ms: int = 0


class DeviceToken(Struct, kw_only=True):
    """A device token issued for (device, role) with the granted scopes."""

    token: str
    device_id: str
    role: str
    scopes: list[str]
    issued_at_ms: int


class PairingRequest(Struct, kw_only=True):
    """A pending pairing request (remote device, not auto-approved)."""

    request_id: str
    device_id: str
    public_key: str
    role: str
    scopes: list[str]
    client_id: str
    client_mode: str
    remote_ip: str
    ts: int
    #: What pairing would pin (so an approval can record it) and why it is asked for.
    platform: str = ""
    device_family: str = ""
    display_name: str = ""
    reason: str = "not-paired"


class StorageError(Exception):
    """Raised by a :class:`GatewayServices` that could not persist a change (disk full, read-only).

    The core answers the connect that needed it ``UNAVAILABLE`` (retryable) and closes 1013; the
    message stays in the application's log, so no host path reaches the wire.
    """


class GatewayServices(Protocol):
    """What the core reads during a handshake and a request (a read-only view).

    The core never changes this state: what a handshake decides (a pairing, a device token, a
    pairing request) comes out as events, and the application applies and persists it. The only
    thing the core draws from here besides reads is fresh ids (tokens come from the host's CSPRNG).
    """

    rate_limiter: AuthRateLimiter
    write_budget: WriteBudget

    def admission(self) -> Admission: ...
    def shared_secret(self) -> SharedSecret: ...
    def get_device(self, device_id: str) -> PairedDevice | None: ...
    def current_token(self, device_id: str, role: str) -> DeviceToken | None: ...
    def find_device_token(self, device_id: str, role: str, token: str) -> DeviceToken | None: ...
    def pending_request(self, device_id: str, public_key: str) -> PairingRequest | None: ...
    def new_id(self, kind: str) -> str: ...


class WriteBudget:
    """Control-plane write budget: ``limit`` calls per ``window_ms`` per (method, caller) (§7.3 step 11)."""

    def __init__(self, limit: int = 30, window_ms: int = 60_000, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.window_ms = window_ms
        self.max_keys = max_keys
        self._calls: dict[tuple[str, str], list[int]] = {}

    def take(self, method: str, caller: str, now_ms: int) -> int | None:
        """Spend one call; ``None`` if allowed, else milliseconds until the oldest call expires."""
        key = (method, canonical_ip(caller))
        horizon = now_ms - self.window_ms
        calls = [t for t in self._calls.get(key, ()) if t > horizon]
        if len(calls) >= self.limit:
            self._calls[key] = calls
            return calls[0] + self.window_ms - now_ms
        calls.append(now_ms)
        if key not in self._calls and len(self._calls) >= self.max_keys:
            self._calls.pop(next(iter(self._calls)))
        self._calls[key] = calls
        return None


class MemoryServices:
    """In-memory :class:`GatewayServices`; tokens and request ids come from ``id_factory``."""

    def __init__(
        self,
        secret: SharedSecret | None = None,
        *,
        id_factory: Callable[[str], str] | None = None,
        rate_limiter: AuthRateLimiter | None = None,
    ) -> None:
        self.secret = secret or SharedSecret(mode="token", token="T")
        self.phase = Admission.ACCEPTING
        self.rate_limiter = rate_limiter if rate_limiter is not None else AuthRateLimiter()
        self.write_budget = WriteBudget()
        self.devices: dict[str, PairedDevice] = {}
        self.tokens: dict[tuple[str, str], DeviceToken] = {}
        self.pairing_requests: dict[str, PairingRequest] = {}
        self._counter = 0
        self._id_factory = id_factory or self._next_id

    def _next_id(self, kind: str) -> str:
        self._counter += 1
        return f"{kind}-{self._counter}"

    def admission(self) -> Admission:
        return self.phase

    def shared_secret(self) -> SharedSecret:
        return self.secret

    def get_device(self, device_id: str) -> PairedDevice | None:
        return self.devices.get(device_id)

    def current_token(self, device_id: str, role: str) -> DeviceToken | None:
        return self.tokens.get((device_id, role))

    def pending_request(self, device_id: str, public_key: str) -> PairingRequest | None:
        for existing in self.pairing_requests.values():
            if existing.device_id == device_id and existing.public_key == public_key:
                return existing
        return None

    def new_id(self, kind: str) -> str:
        return self._id_factory(kind)

    # ------------------------------------------------------------------ the application's side

    def apply(self, decisions: tuple[PairedDevice | DeviceToken | PairingRequest, ...]) -> None:
        """Take what a handshake (or ``device.pair.approve``) decided into the in-memory state."""
        for item in decisions:
            if isinstance(item, PairedDevice):
                self.devices[item.device_id] = item
            elif isinstance(item, DeviceToken):
                self.tokens[(item.device_id, item.role)] = item
            else:
                self.pairing_requests[item.request_id] = item

    def save_device(self, device: PairedDevice) -> None:
        """Record one paired device (tests and tools; handshakes go through :meth:`apply`)."""
        self.apply((device,))

    def find_device_token(self, device_id: str, role: str, token: str) -> DeviceToken | None:
        current = self.tokens.get((device_id, role))
        if current is not None and hmac.compare_digest(current.token.encode(), token.encode()):
            return current
        return None


__all__ = [
    "Admission",
    "DeviceToken",
    "GatewayServices",
    "MemoryServices",
    "PairedDevice",
    "PairingRequest",
    "StorageError",
    "WriteBudget",
]
