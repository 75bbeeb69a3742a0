"""In-memory pairing of a gateway_core ServerConnection with a ClientConnection, on a virtual clock.

Nothing here sleeps or touches a socket: the :class:`Pair` shuttles ``SendText`` actions between
the two state machines, answers ``SendPing`` with ``receive_pong`` (unless told not to), and turns
``CloseTransport`` / ``Terminate`` into ``receive_closed`` on both sides. Time only moves when a
test calls :meth:`Pair.advance`, which fires every deadline of either side in order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from msgspec import UNSET

from gateway_core import (
    ClientConnection,
    ClientInfo,
    CloseTransport,
    ConnectAuth,
    ConnectParams,
    DeviceKey,
    HandshakeAuthenticated,
    MemoryServices,
    PairingRequested,
    PeerInfo,
    RequestReceived,
    SendPing,
    SendText,
    ServerConnection,
    ServerPolicy,
    Snapshot,
    StateVersion,
    Terminate,
)

WALL0 = 1_800_000_000_000  # epoch ms at virtual t=0
TOKEN = "T"


def snapshot() -> Snapshot:
    return Snapshot(
        presence=[{"ts": WALL0, "mode": "gateway", "reason": "self"}],
        health={"ok": True},
        state_version=StateVersion(presence=1, health=1),
        uptime_ms=0,
        config_path="/virtual/openclaw.json",
        state_dir="/virtual",
        auth_mode="token",
    )


def connect_params(
    *,
    client_id: str = "cli",
    mode: str = "cli",
    role: str | None = "operator",
    scopes: list[str] | None = None,
    token: str | None = TOKEN,
    device_token: str | None = None,
    platform: str = "linux",
) -> ConnectParams:
    auth: Any = UNSET
    if token is not None or device_token is not None:
        auth = ConnectAuth(
            token=token if token is not None else UNSET,
            device_token=device_token if device_token is not None else UNSET,
        )
    return ConnectParams(
        min_protocol=4,
        max_protocol=4,
        client=ClientInfo(id=client_id, version="1.0.0", platform=platform, mode=mode),  # type: ignore[arg-type]
        role=role if role is not None else UNSET,
        scopes=list(scopes) if scopes is not None else UNSET,
        auth=auth,
    )


def echo_handler(pair: Pair, ev: RequestReceived) -> None:
    """Default application: answer every request at once with its method and params."""
    pair.server.respond(ev.request_id, {"method": ev.method, "echo": ev.request_id})


class Pair:
    """A ServerConnection and a ClientConnection wired back to back (see the module docstring)."""

    def __init__(
        self,
        *,
        params: ConnectParams | None = None,
        policy: ServerPolicy | None = None,
        services: MemoryServices | None = None,
        peer: PeerInfo | None = None,
        device_key: DeviceKey | None = None,
        now: float = 0.0,
        nonce: str = "nonce-1",
        conn_id: str = "conn-1",
        connect_id: str = "connect-1",
        connect_timeout_ms: int = 15_000,
        auto_accept: bool = True,
        answer_pings: bool = True,
        handler: Callable[[Pair, RequestReceived], None] | None = echo_handler,
        start: bool = True,
    ) -> None:
        self.now = now
        self.services = services if services is not None else MemoryServices()
        self.policy = policy if policy is not None else ServerPolicy()
        self.auto_accept = auto_accept
        self.answer_pings = answer_pings
        self.handler = handler
        #: Every action each side emitted, with the virtual time it was handled at.
        self.server_actions: list[tuple[float, Any]] = []
        self.client_actions: list[tuple[float, Any]] = []
        self.server_events: list[Any] = []
        self.client_events: list[Any] = []
        #: Decoded frames the server sent (what reached the client), in order.
        self.server_frames: list[dict[str, Any]] = []
        self.requests: list[RequestReceived] = []
        self.client_timeline: list[tuple[float, Any]] = []
        self.server = ServerConnection(
            policy=self.policy,
            services=self.services,
            now=now,
            wall_ms=self.wall_ms,
            nonce=nonce,
            conn_id=conn_id,
            peer=peer,
        )
        self.client = ClientConnection(
            params if params is not None else connect_params(scopes=["operator.admin"]),
            connect_id=connect_id,
            now=now,
            device_key=device_key,
            connect_timeout_ms=connect_timeout_ms,
        )
        if start:
            self.pump()

    # ------------------------------------------------------------------ clock

    @property
    def wall_ms(self) -> int:
        return WALL0 + int(round(self.now * 1000))

    def next_deadline(self) -> float | None:
        ds = [d for d in (self.server.next_deadline(), self.client.next_deadline()) if d is not None]
        return min(ds) if ds else None

    def advance(self, until: float) -> None:
        """Move the virtual clock to ``until``, firing each deadline on the way (no sleeping)."""
        guard = 0
        while True:
            nxt = self.next_deadline()
            if nxt is None or nxt > until:
                break
            guard += 1
            assert guard < 10_000, "deadline loop does not make progress"
            self.now = max(self.now, nxt)
            self._fire()
        self.now = max(self.now, until)
        self._fire()

    def advance_by(self, seconds: float) -> None:
        self.advance(self.now + seconds)

    def _fire(self) -> None:
        for side in (self.server, self.client):
            d = side.next_deadline()
            if d is not None and d <= self.now:
                side.handle_timer(now=self.now, wall_ms=self.wall_ms)
        self.pump()

    # ------------------------------------------------------------------ wiring

    def pump(self) -> None:
        """Move actions and events until neither side has anything queued."""
        moved = True
        while moved:
            moved = False
            for action in self.server.actions():
                moved = True
                self.server_actions.append((self.now, action))
                self._server_action(action)
            for event in self.server.events():
                moved = True
                self.server_events.append(event)
                self._application(event)
            for action in self.client.actions():
                moved = True
                self.client_actions.append((self.now, action))
                self._client_action(action)
            for event in self.client.events():
                moved = True
                self.client_events.append(event)
                self.client_timeline.append((self.now, event))

    def _server_action(self, action: Any) -> None:
        if isinstance(action, SendText):
            self.server_frames.append(json.loads(action.text))
            self.client.receive_text(action.text, now=self.now, wall_ms=self.wall_ms)
        elif isinstance(action, SendPing):
            if self.answer_pings:
                self.server.receive_pong(now=self.now)
        elif isinstance(action, CloseTransport):
            self.client.receive_closed(action.code, action.reason, now=self.now)
            self.server.receive_closed(action.code, action.reason, now=self.now)
        elif isinstance(action, Terminate):
            self.client.receive_closed(None, now=self.now)
            self.server.receive_closed(None, now=self.now)

    def _client_action(self, action: Any) -> None:
        if isinstance(action, SendText):
            self.server.receive_text(action.text, now=self.now, wall_ms=self.wall_ms)
        elif isinstance(action, CloseTransport):
            self.server.receive_closed(action.code, action.reason, now=self.now)
            self.client.receive_closed(action.code, action.reason, now=self.now)
        elif isinstance(action, Terminate):
            self.server.receive_closed(None, now=self.now)
            self.client.receive_closed(None, now=self.now)

    def _application(self, event: Any) -> None:
        if isinstance(event, HandshakeAuthenticated) and self.auto_accept:
            self.services.apply(event.decisions)  # kept (in memory) before the hello
            self.server.accept(snapshot(), now=self.now, wall_ms=self.wall_ms)
        elif isinstance(event, PairingRequested):
            self.services.apply((event.request,))
        elif isinstance(event, RequestReceived):
            self.requests.append(event)
            if self.handler is not None:
                self.handler(self, event)

    # ------------------------------------------------------------------ conveniences

    def request(self, method: str, params: Any = UNSET, *, request_id: str, expect_final: bool = False) -> None:
        self.client.request(method, params, request_id=request_id, expect_final=expect_final)
        self.pump()

    def send_raw(self, text: str) -> None:
        """A frame the client state machine would not produce, straight to the server."""
        self.server.receive_text(text, now=self.now, wall_ms=self.wall_ms)
        self.pump()

    def client_of(self, kind: type) -> list[Any]:
        return [e for e in self.client_events if isinstance(e, kind)]

    def server_of(self, kind: type) -> list[Any]:
        return [e for e in self.server_events if isinstance(e, kind)]

    def server_sent(self, kind: type) -> list[Any]:
        return [a for _, a in self.server_actions if isinstance(a, kind)]
