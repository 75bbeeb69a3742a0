"""One WebSocket connection: the only code that calls into its ``ServerConnection``.

Resource handling: the reader sends its own answers inline, coalesced into one write per read,
which saves a task switch per request. Output that arises outside the reader (broadcasts, async
answers, pings) is written straight to the socket when it takes it; what it does not take is
queued and sent by a writer task that runs only while something is queued, so an idle client
holds no writer task and no queue. The core's
deadlines (handshake timeout, keepalive, close grace) are fired by the gateway-wide
:class:`~gateway_trio.scheduler.DeadlineScheduler`, so an idle connection costs no timer task. Outgoing frames wait in a per-connection queue whose size in bytes is the
back-pressure signal: above ``maxBufferedBytes`` a droppable broadcast is dropped (leaving a
``seq`` gap) and anything else closes the connection 1008 ``slow consumer``, so one slow client
never stalls the gateway or the other clients.

Error handling: a transport failure is reported to the core as a close (1006). ``Terminate``
(missed pong, close grace over, a stalled client at shutdown) aborts the socket at once, which
also unblocks a writer stuck on a client that stopped reading. ``Cancelled`` always propagates.
"""

from __future__ import annotations

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
    PairingRequested,
    PeerInfo,
    PongReceived,
    RequestReceived,
    SendPing,
    SendText,
    ServerConnection,
    Terminate,
)
from gateway_core.broadcast import EncodedEvent
from gateway_core.server import ConnState, PublishResult
from gateway_core.services import StorageError

from . import _runtime

if TYPE_CHECKING:
    from .app import Gateway
    from .wsserver import Transport


class _Close:
    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


#: A batch sent in one write stops growing past this many bytes.
MAX_BATCH_BYTES = 256 * 1024


class Session:
    """Drives one ``ServerConnection``; the transport feeds it and carries its output."""

    def __init__(self, gateway: Gateway, peer: PeerInfo, transport: Transport) -> None:
        self.gw = gateway
        self.peer = peer
        self.transport = transport
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
        #: Framed bytes waiting for the socket (answers, events, pings) and at most one close;
        #: an empty tuple (no deque allocated) while nothing waits, as for most idle clients.
        self.out: deque[bytes | _Close] | tuple[()] = ()
        self.out_bytes = 0
        self._writing = False  # a writer task is running (started on demand: see _wake)
        self._timer_at: float | None = None
        self._draining = False
        self._done = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._scope = trio.CancelScope()
        self.admitted = False
        #: The port's accounting of this socket (pre-auth until admitted); ``None`` in tests.
        self.socket_slot: Any = None
        #: The shared secret this client authenticated with (None for device tokens / none mode).
        self.auth_secret: str | None = None
        self.subscriptions: set[str] = set()
        self._inflight: dict[str, tuple[str, float]] = {}
        self._tasks: dict[str, trio.CancelScope] | None = None  # created on first use
        self._overflowed = False

    @property
    def closed(self) -> bool:
        return self.core.state in (ConnState.CLOSING, ConnState.CLOSED)

    @property
    def congested(self) -> bool:
        return self.out_bytes > self.gw.policy.max_buffered_bytes

    async def run(self, reader: Callable[[Session], Awaitable[None]]) -> None:
        """Serve until the connection is over; ``reader`` feeds transport input via ``feed_*``."""
        with self._scope:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self.pump()
                try:
                    await reader(self)
                    if self.core.state is not ConnState.CLOSED:
                        self.feed_closed(1006)
                finally:
                    self.gw.unregister(self)
                    nursery.cancel_scope.cancel()
        self._done.set()

    # ------------------------------------------------------------------ transport input

    def feed_text(self, text: str) -> None:
        self.core.receive_text(text, now=_runtime.now(), wall_ms=_runtime.wall_ms())
        self.pump()

    def feed_bytes(self, data: bytes) -> None:
        self.core.receive_bytes(data, now=_runtime.now(), wall_ms=_runtime.wall_ms())
        self.pump()

    def feed_too_big(self) -> None:
        self.core.receive_message_too_big(now=_runtime.now())
        self.pump()

    def feed_pong(self) -> None:
        self.core.receive_pong(now=_runtime.now())
        self.pump()

    def feed_closed(self, code: int | None, reason: str = "") -> None:
        self.core.receive_closed(code, reason, now=_runtime.now())
        self.pump()

    @property
    def max_message_bytes(self) -> int:
        return self.core.max_frame_bytes

    @property
    def finished(self) -> bool:
        return self.core.state is ConnState.CLOSED

    # ------------------------------------------------------------------ core plumbing

    def pump(self, *, wake: bool = True) -> None:
        """Move the core's actions to the outgoing queue and its events to the gateway.

        Answers count toward ``maxBufferedBytes`` like broadcasts do: a frame that may not be
        dropped and would take the client's queue over it closes the client 1008 ``slow
        consumer`` at once and frees what was queued for it. (Droppable broadcasts never get
        here: ``publish`` drops them first.)
        """
        core = self.core
        while True:
            actions = core.actions()
            events = core.events()
            if not actions and not events:
                break
            self._queue(actions)
            for event in events:
                self._on_event(event)
        if self.out and wake:
            self._wake()
        nxt = core.next_deadline()
        if nxt is not None and (self._timer_at is None or nxt < self._timer_at):
            self._timer_at = nxt
            self.gw.scheduler.schedule(nxt, self)

    def close_if_slow(self) -> bool:
        """Before serving more work for this client: close it if it is already over its buffer."""
        if self.congested and self.core.state is ConnState.OPEN:
            self._overflow()
            self.pump()
            return True
        return False

    def _queue(self, actions: list[Any]) -> None:
        core = self.core
        limit = self.gw.policy.max_buffered_bytes
        for action in actions:
            if isinstance(action, SendText):
                if self._overflowed:
                    continue
                if self.out_bytes + len(action.data) > limit and core.state is ConnState.OPEN:
                    self._overflow()  # a frame that may not be dropped and does not fit any more
                    continue
                for part in self.transport.frame_text(action.data):
                    self._push(part)
                    self.out_bytes += len(part)
            elif isinstance(action, CloseTransport):
                self._push(_Close(action.code, action.reason))
            elif isinstance(action, SendPing):
                self._push(self.transport.ping_frame())
            elif isinstance(action, Terminate):
                self.abort()

    def _push(self, item: bytes | _Close, *, front: bool = False) -> None:
        out = self.out
        if not isinstance(out, deque):
            out = self.out = deque()
        if front:
            out.appendleft(item)
        else:
            out.append(item)

    def _wake(self) -> None:
        """Have the queue sent: start a writer task unless one runs (it ends once the queue is empty,
        so an idle client holds no writer task)."""
        if not self._writing and self._nursery is not None:
            self._writing = True
            self._nursery.start_soon(self._writer)

    def _overflow(self) -> None:
        self._overflowed = True
        self.out = ()
        self.out_bytes = 0
        self.gw.log.warn(
            "gateway/ws",
            f"closing slow consumer conn={self.conn_id[:8]} ip={self.peer.client_ip}: more than "
            f"{self.gw.policy.max_buffered_bytes} bytes queued",
        )
        now = _runtime.now()
        self.core.send_buffer_overflow(now=now)
        if self._draining:
            # A write to this client is stuck: the close frame could only follow the bytes the
            # client is not reading, so the close grace would change nothing. Drop it now.
            self.core.receive_closed(None, now=now)
            self.abort()

    def on_deadline(self, now: float) -> None:
        """Called by the scheduler at (or after) a deadline this session asked for."""
        if self.core.state is ConnState.CLOSED:
            return
        self._timer_at = None
        due = self.core.next_deadline()
        if due is not None and due <= now:
            self.core.handle_timer(now=now, wall_ms=_runtime.wall_ms())
        self.pump()  # re-schedules the next deadline

    def abort(self) -> None:
        """Drop the connection now, without a close handshake."""
        self.transport.abort()
        self._scope.cancel()

    def _on_event(self, event: Any) -> None:
        if isinstance(event, RequestReceived):
            self.gw.dispatch(self, event)
        elif isinstance(event, HandshakeAuthenticated):
            if event.decisions:  # a pairing or a device token: on disk before the hello
                services = self.gw.services
                services.apply(event.decisions)
                assert self._nursery is not None
                self._nursery.start_soon(self._persist_then_accept, event, services.staged)
            else:
                self._accept(event)
        elif isinstance(event, PairingRequested):
            self.gw.services.apply((event.request,))
        elif isinstance(event, PongReceived):
            self.gw.touch_presence(self)
        elif isinstance(event, HandshakeFailed):
            self.gw.log_handshake_failure(self, event)
        elif isinstance(event, FrameIgnored):
            self.gw.ws_log.parse_error(self.conn_id, event.reason)
        elif isinstance(event, ConnectionTerminated):
            # Nothing more will be sent: free the queue now, not when the last reference goes.
            self.out = ()
            self.out_bytes = 0
            self._inflight.clear()
            self.gw.unregister(self)

    def _accept(self, event: HandshakeAuthenticated) -> None:
        self.core.accept(self.gw.snapshot(), now=_runtime.now(), wall_ms=_runtime.wall_ms())
        self.admitted = True
        self.gw.admitted(self, event.principal)

    async def _persist_then_accept(self, event: HandshakeAuthenticated, mark: int) -> None:
        """Write the handshake's decisions off the event loop; accept only once they are kept."""
        try:
            await self.gw.services.persist(mark)
        except StorageError:
            self.core.refuse_storage(now=_runtime.now())
        else:
            if self.core.state is ConnState.AUTHENTICATING:
                self._accept(event)
        self.pump()

    def publish(
        self,
        event: str,
        payload: Any,
        *,
        state_version: Any = None,
        drop_if_slow: bool = False,
        now: float | None = None,
    ) -> None:
        """Deliver one broadcast to this client alone (see :meth:`publish_encoded`)."""
        ev = EncodedEvent(event, payload, state_version=state_version, drop_if_slow=drop_if_slow)
        self.publish_encoded(ev, _runtime.now() if now is None else now)

    def publish_staged(self, ev: EncodedEvent, now: float) -> bytes | None:
        """:meth:`publish_encoded` for a large fan-out: the frame to write straight to the socket
        is returned (the caller writes it, then calls :meth:`written`); every other outcome is
        handled here as :meth:`publish_encoded` does."""
        out = self.core.publish_encoded(ev, congested=self.out_bytes > self.gw.policy.max_buffered_bytes, now=now)
        if out.__class__ is bytes:
            self.gw.ws_log.event(self.conn_id, ev.event)
            if not self.out and not self._draining and not self.transport.busy:
                parts = self.transport.frame_text(out)  # type: ignore[arg-type]
                return parts[0] if len(parts) == 1 else b"".join(parts)
            self._queue([SendText(out)])  # type: ignore[arg-type]
        elif out is PublishResult.SENT:
            self.gw.ws_log.event(self.conn_id, ev.event)
        elif out is not PublishResult.CLOSED:
            return None  # FILTERED, DROPPED
        self.pump(wake=False)
        self.flush_now()
        if self.out:
            self._wake()
        return None

    def written(self, data: bytes, sent: int) -> None:
        """A staged frame's write took ``sent`` bytes: the rest waits for the writer task."""
        if sent < len(data):
            rest = data[sent:] if sent else data
            self._push(rest, front=True)
            self.out_bytes += len(rest)
            self._wake()

    def publish_encoded(self, ev: EncodedEvent, now: float) -> None:
        """Deliver one broadcast through the core (scope gating, ``seq``, back-pressure).

        The common case (nothing queued, nothing writing) is written straight to the socket: no
        queue, no task switch, no deadline bookkeeping. Otherwise the frame joins the queue
        behind what is there, counted toward ``maxBufferedBytes`` like any other frame.
        """
        data = self.publish_staged(ev, now)
        if data is not None:
            self._write_now(data)
            if self.out:
                self._wake()

    def flush_now(self) -> None:
        """Write the queued frames straight to the socket when nothing else is writing: a broadcast
        then costs one ``send`` per client and no task switch. What the socket does not take now
        stays queued, in order, for the writer task."""
        if self._draining or not self.out or self.transport.busy:
            return
        chunks: list[bytes] = []
        while self.out and isinstance(self.out[0], bytes):
            data = self.out.popleft()  # type: ignore[union-attr]
            self.out_bytes -= len(data)  # type: ignore[arg-type]
            chunks.append(data)  # type: ignore[arg-type]
        if chunks:
            self._write_now(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def _write_now(self, data: bytes) -> None:
        """Write ``data`` (the head of the queue) without waiting; what the socket does not take
        goes back to the front of the queue for the writer task."""
        try:
            sent = self.transport.try_write(data)
        except OSError:
            sent = 0  # the writer's send will see the error and close the session
        if sent < len(data):
            rest = data[sent:] if sent else data
            self._push(rest, front=True)
            self.out_bytes += len(rest)

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
        self.gw.ws_log.request(self.conn_id, request_id, method)

    def _log_response(self, request_id: str, error: Any) -> None:
        """The answer's ws-log line (which ones, and how: gateway_trio/wslog.py)."""
        started = self._inflight.pop(request_id, None)
        self.gw.request_done()
        if started is None:
            return
        method, t0 = started
        self.gw.ws_log.response(self.conn_id, request_id, method, int((_runtime.now() - t0) * 1000), error)

    def spawn(self, fn: Callable[..., Awaitable[None]], *args: Any, request_id: str | None = None) -> None:
        """Run an async method handler in this connection's nursery (cancelled when it closes).

        With ``request_id`` the task is the one that answers that request: :meth:`fail_pending`
        can then cancel it before answering in its place.
        """
        assert self._nursery is not None
        if request_id is None:
            self._nursery.start_soon(fn, *args)
            return
        scope = trio.CancelScope()
        tasks = self._tasks if self._tasks is not None else {}
        self._tasks = tasks
        tasks[request_id] = scope

        async def task() -> None:
            try:
                with scope:
                    await fn(*args)
            finally:
                if tasks.get(request_id) is scope:
                    del tasks[request_id]

        self._nursery.start_soon(task)

    def fail_pending(self, error_for: Callable[[str], Any]) -> int:
        """Answer every request still in flight with ``error_for(method)`` (their tasks are
        cancelled first, so nothing answers twice); returns how many were failed."""
        failed = 0
        for request_id in self.core.pending_request_ids:
            scope = self._tasks.pop(request_id, None) if self._tasks else None
            if scope is not None:
                scope.cancel()
            method = self._inflight.get(request_id, ("?", 0.0))[0]
            self.respond_error(request_id, error_for(method))
            failed += 1
        return failed

    def begin_shutdown(self, restart_expected_ms: int | None) -> None:
        """``shutdown`` event then close 1012; a client too far behind to read it is dropped."""
        if self.congested:
            self.abort()
            return
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

    async def drain(self) -> None:
        """Send everything queued, in order, coalescing frames into few writes. One drain at a time."""
        if self._draining:
            return
        self._draining = True
        try:
            while self.out:
                batch: list[bytes] = []
                size = 0
                close: _Close | None = None
                while self.out and size < MAX_BATCH_BYTES:
                    item = self.out.popleft()  # type: ignore[union-attr]
                    if isinstance(item, _Close):
                        close = item
                        break
                    size += len(item)
                    batch.append(item)
                if batch:
                    # Counted until the socket took it (like the published gateway's buffered amount).
                    try:
                        await self.transport.send_batch(batch)
                    finally:
                        # (Zero if the queue was freed meanwhile: a slow consumer's close.)
                        self.out_bytes = max(0, self.out_bytes - size)
                if close is not None:
                    self.out = ()
                    await self.transport.send_close(close.code, close.reason)
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            self.core.receive_closed(1006, "send failed", now=_runtime.now())
            self.pump()
            self._scope.cancel()
        finally:
            self._draining = False

    async def _writer(self) -> None:
        """Send the queue, then end. A drain already under way (the reader's) sends everything,
        what is queued meanwhile included, so this one then has nothing to do."""
        try:
            await self.drain()
        finally:
            self._writing = False
            if not self.out:
                self.out = ()  # give the deque back while idle
