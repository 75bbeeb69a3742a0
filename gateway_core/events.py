"""What the core tells the application (events, past tense) and asks of the transport (actions).

Events are drained with ``conn.events()``, actions with ``conn.actions()``; both return lists
(eager, so forgetting to iterate never stalls a connection).
"""

from __future__ import annotations

from typing import Any

from msgspec import Struct

from .frames import ClientInfo, ErrorShape
from .services import DeviceToken, PairedDevice, PairingRequest

# --------------------------------------------------------------------------- actions


class SendText(Struct, frozen=True):
    """Send one WebSocket text frame: ``data`` is its UTF-8 payload (as encoded, never re-encoded)."""

    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode()


class SendPing(Struct, frozen=True):
    """Send a WebSocket ping (server keepalive, §1)."""

    payload: bytes = b""


class CloseTransport(Struct, frozen=True):
    """Start the WebSocket close handshake with ``code`` and ``reason`` (≤120 UTF-8 bytes)."""

    code: int
    reason: str = ""


class Terminate(Struct, frozen=True):
    """Drop the TCP connection without a close frame (missed pong, close grace expired)."""


Action = SendText | SendPing | CloseTransport | Terminate

# --------------------------------------------------------------------------- principal


class Principal(Struct, frozen=True, kw_only=True):
    """Who an admitted (or being admitted) connection is: the server-granted identity."""

    conn_id: str
    role: str
    scopes: frozenset[str]
    #: The same scopes in the order the client asked for them (hello-ok shows this order).
    scope_list: tuple[str, ...]
    auth_method: str
    client: ClientInfo
    client_ip: str
    local: bool
    caps: tuple[str, ...] = ()
    device_id: str | None = None
    device_token: str | None = None
    device_token_issued_at_ms: int | None = None
    #: ``recipientProfileId`` stamped on broadcasts: shared-secret operator clients other than
    #: cli/probe/backend get the gateway owner's profile (§2).
    profile_id: str | None = None

    @property
    def presence_tracked(self) -> bool:
        """Operators and nodes are tracked unless their mode is cli, backend or probe (§10.4)."""
        return self.client.mode not in ("cli", "backend", "probe")


# --------------------------------------------------------------------------- server events


class HandshakeAuthenticated(Struct, frozen=True):
    """The connect passed every check; call ``accept(snapshot)`` (or ``close``) next.

    ``decisions`` are what the handshake decided to keep (a :class:`PairedDevice` silently paired,
    a :class:`DeviceToken` issued): the application applies and persists them *before* it accepts,
    and calls ``refuse_storage()`` instead if it could not (a pairing that was not written does not
    count).
    """

    request_id: str
    principal: Principal
    decisions: tuple[PairedDevice | DeviceToken, ...] = ()


class PairingRequested(Struct, frozen=True):
    """The handshake asks an operator to approve this device (the refusal is already queued): the
    application records the request (``device.pair.list`` shows it)."""

    request: PairingRequest


class HandshakeFailed(Struct, frozen=True):
    """The connect was refused (for logging); the answer and close are already queued."""

    error: ErrorShape | None
    close_code: int
    close_reason: str


class RequestReceived(Struct, frozen=True):
    """An authorized, validated request. ``params`` is the typed Struct for core methods."""

    request_id: str
    method: str
    params: Any
    principal: Principal


class FrameIgnored(Struct, frozen=True):
    """A post-handshake frame that was not JSON: dropped without an answer (§9.2)."""

    reason: str


class PongReceived(Struct, frozen=True):
    """The peer answered a keepalive ping (refreshes presence, §1)."""


class ConnectionTerminated(Struct, frozen=True):
    """The connection is over. ``pending_request_ids`` were never finally answered."""

    code: int
    reason: str
    pending_request_ids: tuple[str, ...] = ()
    by_peer: bool = False


# --------------------------------------------------------------------------- client events


class ChallengeReceived(Struct, frozen=True):
    """``connect.challenge`` arrived; the connect request has been queued."""

    nonce: str
    ts: int


class HelloReceived(Struct, frozen=True):
    """The gateway admitted us; ``hello`` is the decoded hello-ok payload."""

    hello: dict[str, Any]


class ConnectFailed(Struct, frozen=True):
    """The gateway refused the connect with ``error``."""

    error: ErrorShape


class ResponseReceived(Struct, frozen=True):
    """A response to one of our requests; ``final`` is False for a two-stage ``accepted`` ack."""

    request_id: str
    ok: bool
    payload: Any = None
    error: ErrorShape | None = None
    final: bool = True


class EventReceived(Struct, frozen=True):
    """A server event (broadcast when ``seq`` is set)."""

    event: str
    payload: Any = None
    seq: int | None = None
    state_version: dict[str, int] | None = None


class SequenceGap(Struct, frozen=True):
    """A broadcast ``seq`` skipped numbers (events were dropped); refetch state (§10.1)."""

    expected: int
    received: int


class ProtocolViolation(Struct, frozen=True):
    """The server sent something the client cannot use (logged, never raised)."""

    reason: str


Event = (
    HandshakeAuthenticated
    | PairingRequested
    | HandshakeFailed
    | RequestReceived
    | FrameIgnored
    | PongReceived
    | ConnectionTerminated
    | ChallengeReceived
    | HelloReceived
    | ConnectFailed
    | ResponseReceived
    | EventReceived
    | SequenceGap
    | ProtocolViolation
)

__all__ = [
    "Action",
    "ChallengeReceived",
    "CloseTransport",
    "ConnectFailed",
    "ConnectionTerminated",
    "Event",
    "EventReceived",
    "FrameIgnored",
    "HandshakeAuthenticated",
    "HandshakeFailed",
    "HelloReceived",
    "PairingRequested",
    "PongReceived",
    "Principal",
    "ProtocolViolation",
    "RequestReceived",
    "ResponseReceived",
    "SendPing",
    "SendText",
    "SequenceGap",
    "Terminate",
]
