"""gateway_core: a sans-IO implementation of the OpenClaw Gateway WebSocket protocol v4.

No sockets, no event loop, no clock, no randomness, no files: time (``now`` monotonic seconds,
``wall_ms`` epoch milliseconds), nonces and ids are arguments. Both roles live here:
:class:`ServerConnection` (the gateway's side) and :class:`ClientConnection` (the CLI's side).
"""

from .auth import AuthRateLimiter, RateLimitPolicy, SharedSecret
from .client import ClientConnection, ClientState
from .device import DeviceKey
from .errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from .events import (
    ChallengeReceived,
    CloseTransport,
    ConnectFailed,
    ConnectionTerminated,
    EventReceived,
    FrameIgnored,
    HandshakeAuthenticated,
    HandshakeFailed,
    HelloReceived,
    PairingRequested,
    PongReceived,
    Principal,
    ProtocolViolation,
    RequestReceived,
    ResponseReceived,
    SendPing,
    SendText,
    SequenceGap,
    Terminate,
)
from .frames import ClientInfo, ConnectAuth, ConnectParams, ErrorShape, Snapshot, StateVersion
from .idempotency import IdempotencyLedger
from .server import ConnState, PeerInfo, PublishResult, ServerConnection, ServerPolicy
from .services import Admission, GatewayServices, MemoryServices

__all__ = [
    "Admission",
    "AuthRateLimiter",
    "ChallengeReceived",
    "ClientConnection",
    "ClientInfo",
    "ClientState",
    "CloseTransport",
    "ConnState",
    "ConnectAuth",
    "ConnectFailed",
    "ConnectParams",
    "ConnectionTerminated",
    "DeviceKey",
    "ErrorShape",
    "EventReceived",
    "FrameIgnored",
    "GatewayServices",
    "HandshakeAuthenticated",
    "PairingRequested",
    "HandshakeFailed",
    "HelloReceived",
    "IdempotencyLedger",
    "LocalProtocolError",
    "MemoryServices",
    "PeerInfo",
    "PongReceived",
    "Principal",
    "ProtocolError",
    "ProtocolViolation",
    "PublishResult",
    "RateLimitPolicy",
    "RemoteProtocolError",
    "RequestReceived",
    "ResponseReceived",
    "SendPing",
    "SendText",
    "SequenceGap",
    "ServerConnection",
    "ServerPolicy",
    "SharedSecret",
    "Snapshot",
    "StateVersion",
    "Terminate",
]
