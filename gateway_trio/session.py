"""One WebSocket connection: the only code that calls into its ``ServerConnection``.

Resource handling: each session runs three tasks in its own nursery: the reader (this coroutine's
body: transport messages in), the writer (queued frames out, in order, one at a time) and the
timer (fires the core's deadlines). Outgoing frames wait in a per-connection queue whose size in
bytes is the back-pressure signal: above ``maxBufferedBytes`` a droppable broadcast is dropped
(leaving a ``seq`` gap) and anything else closes the connection 1008 ``slow consumer``, so one
slow client never stalls the gateway or the other clients.

Error handling: a transport failure is reported to the core as a close (1006); ``Cancelled``
always propagates.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio
from msgspec import UNSET

from gateway_core import (
    CloseTransport,
    ConnectionTerminated,
    FrameIgnored,
    HandshakeAuthenticated,
    HandshakeFailed,
    PeerInfo,
    PongReceived,
    RequestReceived,
    SendPing,
    SendText,
    ServerConnection,
    Terminate,
)
from gateway_core.server import ConnState, PublishResult

from . import _runtime

if TYPE_CHECKING:
    from .app import Gateway

#: Answers slower than this are logged even without --verbose (runtime-cli.md §9.3).
SLOW_RESPONSE_MS = 50

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


class _Close:
    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


class Session:
    """Drives one ``ServerConnection`` over an ASGI WebSocket."""

    def __init__(self, gateway: Gateway, peer: PeerInfo, send: Send) -> None:
        self.gw = gateway
        self.peer = peer
        self._send = send
        self.core = ServerConnection(
            policy=gateway.policy,
            services=gateway.services,
            now=_runtime.now(),
            wall_ms=_runtime.wall_ms(),
            nonce=_runtime.new_uuid(),
            conn_id=_runtime.new_uuid(),
            peer=peer,
        )
        self.conn_id = self.core.conn_id
        self.out: deque[str | _Close] = deque()
        self.out_bytes = 0
        self._out_ready = trio.Event()
        self._timer_wake = trio.Event()
        self._timer_at: float | None = None
        self._terminated = False
        self._done = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._scope = trio.CancelScope()
        self.admitted = False
        self.subscriptions: set[str] = set()
        self._inflight: dict[str, tuple[str, float]] = {}

    @property
    def closed(self) -> bool:
        return self.core.state in (ConnState.CLOSING, ConnState.CLOSED)

    async def run(self, receive: Receive) -> None:
        """Accept the upgrade and serve until the connection is over."""
        await self._send({"type": "websocket.accept"})
        with self._scope:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._writer)
                nursery.start_soon(self._timer)
                self.pump()
                try:
                    while self.core.state is not ConnState.CLOSED:
                        message = await receive()
                        kind = message["type"]
                        if kind == "websocket.receive":
                            text = message.get("text")
                            t, w = _runtime.now(), _runtime.wall_ms()
                            if text is not None:
                                self.core.receive_text(text, now=t, wall_ms=w)
                            else:
                                self.core.receive_bytes(message.get("bytes") or b"", now=t, wall_ms=w)
                            self.pump()
                        elif kind == "websocket.disconnect":
                            self.core.receive_closed(message.get("code", 1006), "", now=_runtime.now())
                            self.pump()
                            break
                finally:
                    self.gw.unregister(self)
                    nursery.cancel_scope.cancel()

    # ------------------------------------------------------------------ core plumbing

    def pump(self) -> None:
        """Move the core's actions to the outgoing queue and its events to the gateway."""
        core = self.core
        while True:
            actions = core.actions()
            events = core.events()
            if not actions and not events:
                break
            for action in actions:
                if isinstance(action, SendText):
                    self.out.append(action.text)
                    self.out_bytes += len(action.text)
                elif isinstance(action, CloseTransport):
                    self.out.append(_Close(action.code, action.reason))
                elif isinstance(action, Terminate):
                    self._terminated = True
                    self._scope.cancel()  # drop the connection without a close handshake
                elif isinstance(action, SendPing):
                    pass  # the transport (hypercorn) sends its own keepalive pings
            for event in events:
                self._on_event(event)
        if self.out:
            self._out_ready.set()
        nxt = core.next_deadline()
        if nxt is not None and (self._timer_at is None or nxt < self._timer_at):
            self._timer_wake.set()

    def _on_event(self, event: Any) -> None:
        if isinstance(event, RequestReceived):
            self.gw.dispatch(self, event)
        elif isinstance(event, HandshakeAuthenticated):
            self.core.accept(self.gw.snapshot(), now=_runtime.now(), wall_ms=_runtime.wall_ms())
            self.admitted = True
            self.gw.admitted(self, event.principal)
        elif isinstance(event, PongReceived):
            self.gw.touch_presence(self)
        elif isinstance(event, HandshakeFailed):
            self.gw.log_handshake_failure(self, event)
        elif isinstance(event, FrameIgnored):
            self.gw.log.warn("gateway/ws", f"✗ parse-error error={event.reason} conn={self.conn_id[:8]}")
        elif isinstance(event, ConnectionTerminated):
            self._done.set()

    def publish(self, event: str, payload: Any, *, state_version: Any = None, drop_if_slow: bool = False) -> None:
        """Deliver one broadcast through the core (scope gating, ``seq``, back-pressure)."""
        if self.core.state is not ConnState.OPEN:
            return
        congested = self.out_bytes > self.gw.policy.max_buffered_bytes
        result = self.core.publish(
            event, payload, state_version=state_version, drop_if_slow=drop_if_slow, congested=congested
        )
        if result is not PublishResult.FILTERED:
            self.pump()

    def respond(self, request_id: str, payload: Any, *, final: bool = True) -> None:
        if self.core.respond(request_id, payload, final=final):
            if final:
                self._log_response(request_id, None)
            self.pump()

    def respond_error(self, request_id: str, error: Any, *, payload: Any = None, final: bool = True) -> None:
        if self.core.respond_error(request_id, error, payload=UNSET if payload is None else payload, final=final):
            if final:
                self._log_response(request_id, error)
            self.pump()

    def request_started(self, request_id: str, method: str) -> None:
        """Remember when a request reached the application (for the ws log)."""
        self._inflight[request_id] = (method, _runtime.now())

    def _log_response(self, request_id: str, error: Any) -> None:
        """``⇄ res ✓/✗ <method> <ms>ms``: errors and slow answers always, everything with --verbose (§9.3)."""
        started = self._inflight.pop(request_id, None)
        if started is None:
            return
        method, t0 = started
        ms = int((_runtime.now() - t0) * 1000)
        if error is None and ms < SLOW_RESPONSE_MS and not self.gw.settings.verbose:
            return
        conn = f"{self.conn_id[:8]}…{self.conn_id[-4:]}"
        if error is None:
            line = f"⇄ res ✓ {method} {ms}ms conn={conn} id={request_id}"
        else:
            line = f"⇄ res ✗ {method} {ms}ms errorCode={error.code} errorMessage={error.message} conn={conn} id={request_id}"
        self.gw.log.info("gateway/ws", line)

    def spawn(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run an async method handler in this connection's nursery (cancelled when it closes)."""
        assert self._nursery is not None
        self._nursery.start_soon(fn, *args)

    def begin_shutdown(self, restart_expected_ms: int | None) -> None:
        self.core.begin_shutdown(
            now=_runtime.now(), wall_ms=_runtime.wall_ms(), restart_expected_ms=restart_expected_ms
        )
        self.pump()

    def close(self, code: int, reason: str) -> None:
        self.core.close(code, reason, now=_runtime.now())
        self.pump()

    async def wait_closed(self) -> None:
        await self._done.wait()

    # ------------------------------------------------------------------ tasks

    async def _writer(self) -> None:
        while True:
            while not self.out:
                self._out_ready = trio.Event()
                await self._out_ready.wait()
            item = self.out.popleft()
            try:
                if isinstance(item, str):
                    self.out_bytes -= len(item)
                    await self._send({"type": "websocket.send", "text": item})
                else:
                    await self._send({"type": "websocket.close", "code": item.code, "reason": item.reason})
                    return
            except OSError:
                self.core.receive_closed(1006, "send failed", now=_runtime.now())
                self.pump()
                return

    async def _timer(self) -> None:
        while True:
            self._timer_wake = trio.Event()
            at = self.core.next_deadline()
            self._timer_at = at
            with trio.move_on_at(at if at is not None else math.inf):
                await self._timer_wake.wait()
                continue
            self._timer_at = None
            self.core.handle_timer(now=_runtime.now(), wall_ms=_runtime.wall_ms())
            self.pump()
