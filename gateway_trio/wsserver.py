"""The gateway port: one Trio listener serving HTTP (h11) and WebSocket upgrades (wsproto).

Each accepted TCP stream is read with h11 until its first request is complete. A WebSocket upgrade
is checked (:func:`check_upgrade`), then handed, with the raw bytes read so far, to a wsproto server
connection (no extensions: like the published gateway, permessage-deflate is off) and becomes a
:class:`Session`. Anything else is answered by :func:`gateway_trio.http.route`, with keep-alive.

Why not Hypercorn's ASGI worker (the first choice of the design card): measured against it, this
path (1) can abort a client that stopped reading (Hypercorn shields ``send_all``, so a stalled
client blocked stop and restart), (2) drops a connection without a close frame when the core says
``Terminate`` (Hypercorn answered 1011), (3) sends the core's keepalive pings and sees the pongs
(ASGI has no ping API, so a dead peer could not be detected), (4) stops in milliseconds (Hypercorn's
ping tasks held every stop for its graceful timeout), (5) never negotiates permessage-deflate, and
(6) is faster per message. See the gateway issue's note and bench/RESULTS.md.

Bounds (what a hostile or unlucky client can hold):

* a request head ≤ 16 KiB within 10 s, a request body ≤ 25 MiB within 30 s, ≤ 100 keep-alive
  requests per connection;
* every socket counts as *pre-auth* for its IP from ``accept`` until it is an admitted WebSocket
  client: past 32 per IP (``OPENCLAW_MAX_PREAUTH_CONNECTIONS_PER_IP``) a request is answered 503
  ``Too many unauthenticated sockets`` (liveness probes excepted) after a short head deadline;
* file descriptors: the port keeps ``FD_RESERVE`` of the process limit free. At the budget the
  oldest pre-auth socket (older than ``EVICT_MIN_AGE_S``) is dropped to make room, else the new
  socket is refused (503, closed) before ``accept`` could fail; either is logged once per episode,
  as is an ``accept`` that fails anyway (EMFILE), never once per socket;
* forwarding headers from a peer that is not in ``gateway.trustedProxies`` are answered 403
  ``proxy_attribution_required`` (gateway_core.ingress);
* the admission gate during shutdown (HTTP 503).
"""

from __future__ import annotations

import base64
import errno
import os
import re
import resource
import socket as stdsocket
from collections import OrderedDict
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final

import h11
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError as WsLocalError
from wsproto.utilities import RemoteProtocolError as WsRemoteError

from gateway_core.auth import canonical_ip, is_loopback
from gateway_core.ingress import Ingress, attribute
from gateway_core.server import PeerInfo

from . import http
from .session import Session

if TYPE_CHECKING:
    from .app import Gateway

MAX_HEAD_BYTES = 16 * 1024
HEAD_TIMEOUT_S = 10.0
#: A socket over its IP's pre-auth cap gets this long to send its head (then 503 or closed).
OVER_CAP_HEAD_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 30.0
MAX_BODY_BYTES = 25 * 1024 * 1024
MAX_KEEPALIVE_REQUESTS = 100
RECV_CHUNK = 65536
MAX_PREAUTH_PER_IP = int(os.environ.get("OPENCLAW_MAX_PREAUTH_CONNECTIONS_PER_IP") or 32)
#: File descriptors kept free for everything that is not a client socket (files, threads, logs).
FD_RESERVE = 64
#: A pre-auth socket younger than this is never evicted to make room (a handshake in progress).
EVICT_MIN_AGE_S = 0.5
#: Errors of ``accept`` that mean "out of resources", not "broken listener".
ACCEPT_CAPACITY_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
LIVENESS_PATHS: Final = frozenset({"/health", "/healthz"})


class GatewayRef:
    """The current :class:`Gateway` (swapped on an in-process restart)."""

    gateway: Gateway | None = None


# --------------------------------------------------------------------------- socket accounting


class SocketSlot:
    """One accepted socket as the port accounts for it."""

    __slots__ = ("evicted", "ip", "opened_at", "over_cap", "scope", "tracker")

    def __init__(self, tracker: SocketTracker, ip: str, opened_at: float) -> None:
        self.tracker = tracker
        self.ip = ip
        self.opened_at = opened_at
        self.over_cap = False
        self.evicted = False
        self.scope = trio.CancelScope()

    def admitted(self) -> None:
        """The socket became an authenticated WebSocket client: it no longer counts as pre-auth."""
        self.tracker.admitted(self)


class SocketTracker:
    """Every open socket of the port: the file-descriptor budget and the per-IP pre-auth count.

    Pure bookkeeping on the event loop (no locks); ``log`` receives each episode's one line.
    """

    def __init__(
        self,
        *,
        per_ip: int = MAX_PREAUTH_PER_IP,
        fd_limit: int | None = None,
        reserve: int = FD_RESERVE,
        log: Callable[[str], None] | None = None,
    ) -> None:
        limit = fd_limit if fd_limit is not None else _fd_soft_limit()
        self.budget = max(limit - reserve, 16)
        self.per_ip = per_ip
        self.open: dict[SocketSlot, None] = {}
        self.preauth: OrderedDict[SocketSlot, None] = OrderedDict()
        self.preauth_by_ip: dict[str, int] = {}
        self._log = log or (lambda _line: None)
        self._exhausted = False
        self.evicted = 0
        self.refused = 0

    def accept(self, ip: str, now: float) -> SocketSlot | None:
        """Account for a new socket from ``ip``; ``None`` means refuse it (nothing to evict)."""
        if len(self.open) >= self.budget:
            self._episode()
            if not self._evict_oldest(now):
                self.refused += 1
                return None
        if self._exhausted and len(self.open) < self.budget * 0.9:
            self._exhausted = False
            self._log(
                f"file descriptors available again ({len(self.open)} sockets open); "
                f"{self.evicted} stalled pre-auth socket(s) dropped, {self.refused} refused meanwhile"
            )
        slot = SocketSlot(self, ip, now)
        self.open[slot] = None
        self.preauth[slot] = None
        n = self.preauth_by_ip.get(ip, 0) + 1
        self.preauth_by_ip[ip] = n
        slot.over_cap = n > self.per_ip
        return slot

    def _evict_oldest(self, now: float) -> bool:
        for slot in self.preauth:
            if now - slot.opened_at < EVICT_MIN_AGE_S:
                return False  # the rest are younger still (insertion order)
            slot.evicted = True
            slot.scope.cancel()
            self._forget_preauth(slot)  # no longer a candidate, whenever its task ends
            self.evicted += 1
            return True
        return False

    def _episode(self, cause: str = "") -> None:
        """One log line when the budget is first reached; the next after recovery."""
        if not self._exhausted:
            self._exhausted = True
            self._log(
                f"file descriptor budget reached{cause} ({len(self.open)} sockets open, budget {self.budget}): "
                "dropping the oldest unauthenticated sockets, refusing new ones while none is old enough"
            )

    def accept_failed(self, exc: OSError) -> None:
        """``accept`` itself failed for lack of resources (logged once per episode)."""
        self._episode(f" (accept: {os.strerror(exc.errno or 0)})")

    def _forget_preauth(self, slot: SocketSlot) -> None:
        if self.preauth.pop(slot, 0) is None:
            n = self.preauth_by_ip.get(slot.ip, 1) - 1
            if n <= 0:
                self.preauth_by_ip.pop(slot.ip, None)
            else:
                self.preauth_by_ip[slot.ip] = n

    def admitted(self, slot: SocketSlot) -> None:
        self._forget_preauth(slot)

    def rekey(self, slot: SocketSlot, ip: str) -> None:
        """Count a pre-auth socket under its attributed client IP (behind a trusted proxy)."""
        if ip == slot.ip or slot not in self.preauth:
            return
        self._forget_preauth(slot)
        slot.ip = ip
        self.preauth[slot] = None
        n = self.preauth_by_ip.get(ip, 0) + 1
        self.preauth_by_ip[ip] = n
        slot.over_cap = n > self.per_ip

    def release(self, slot: SocketSlot) -> None:
        """The socket is closed."""
        self._forget_preauth(slot)
        self.open.pop(slot, None)


def _fd_soft_limit() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY and soft > 0 else 1 << 20


async def serve_listeners(
    ref: GatewayRef,
    listeners: list[trio.socket.SocketType],
    tracker: SocketTracker,
    handlers: trio.Nursery,
) -> None:
    """Accept on every listener until cancelled; each connection runs in ``handlers``."""
    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(_accept_loop, ref, listener, tracker, handlers)


async def _accept_loop(
    ref: GatewayRef, listener: trio.socket.SocketType, tracker: SocketTracker, handlers: trio.Nursery
) -> None:
    while True:
        try:
            sock, addr = await listener.accept()
        except OSError as exc:
            if exc.errno not in ACCEPT_CAPACITY_ERRNOS:
                raise
            tracker.accept_failed(exc)
            await trio.sleep(0.1)
            continue
        ip = canonical_ip(addr[0]) if isinstance(addr, tuple) and addr else ""
        slot = tracker.accept(ip, trio.current_time())
        if slot is None:
            _refuse_now(sock)
            continue
        handlers.start_soon(handle_stream, ref, trio.SocketStream(sock), slot)


def _refuse_now(sock: trio.socket.SocketType) -> None:
    """Answer 503 without waiting (the kernel buffer of a new socket is empty) and close."""
    raw = stdsocket.socket(fileno=sock.detach())
    try:
        raw.setblocking(False)
        raw.send(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: 25\r\nconnection: close\r\n\r\nToo many open connections"
        )
        raw.shutdown(stdsocket.SHUT_WR)
        raw.recv(65536)  # what already arrived: closing with unread data would reset the answer
    except OSError:
        pass
    finally:
        raw.close()


# --------------------------------------------------------------------------- request facts


def ingress_of(gw: Gateway | None, ip: str, headers: list[tuple[bytes, bytes]]) -> Ingress:
    """Ingress attribution (direct-local, trusted-proxy, direct-remote, unattributable)."""
    names = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
    if gw is None:
        return attribute(ip, names)
    return attribute(ip, names, gw.trusted_proxies, allow_real_ip_fallback=gw.allow_real_ip_fallback)


def peer_info(ingress: Ingress, headers: list[tuple[bytes, bytes]]) -> PeerInfo:
    """Transport facts about the caller for the core: attributed client IP and browser origin."""
    origin = host = None
    for k, v in headers:
        if k == b"origin" and origin is None:
            origin = v.decode("latin-1")
        elif k == b"host" and host is None:
            host = v.decode("latin-1")
    return PeerInfo(
        client_ip=ingress.client_ip,
        is_loopback=is_loopback(ingress.client_ip),
        forwarded=ingress.forwarded,
        origin=origin,
        host=host,
    )


#: ``Sec-WebSocket-Key``: base64 of 16 bytes (RFC 6455 §4.2.1).
_KEY_RE: Final = re.compile(rb"^[+/0-9A-Za-z]{21}[AQgw]==$")
_VERSION_8_RE: Final = re.compile(rb"(?im)^(sec-websocket-version:[ \t]*)8([ \t]*\r?)$")


def check_upgrade(method: bytes, values: dict[bytes, bytes]) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
    """A WebSocket upgrade request's refusal (status, text, extra headers), or ``None`` if valid.

    The rules and texts of the published gateway (observed): method, Upgrade, key, version, in
    that order; versions 13 and 8 are accepted (the framing is the same).
    """
    if method != b"GET":
        return 405, "Invalid HTTP method", []
    if values.get(b"upgrade", b"").strip().lower() != b"websocket":
        return 400, "Invalid Upgrade header", []
    key = values.get(b"sec-websocket-key", b"").strip()
    if not _KEY_RE.match(key) or len(base64.b64decode(key)) != 16:
        return 400, "Missing or invalid Sec-WebSocket-Key header", []
    if values.get(b"sec-websocket-version", b"").strip() not in (b"13", b"8"):
        return 400, "Missing or invalid Sec-WebSocket-Version header", [(b"sec-websocket-version", b"13, 8")]
    return None


# --------------------------------------------------------------------------- WebSocket


def text_frame_parts(payload: bytes) -> list[bytes]:
    """:func:`text_frame` as (header, payload) for large payloads, so they are never copied."""
    if len(payload) < 65536:
        return [text_frame(payload)]
    return [b"\x81\x7f" + len(payload).to_bytes(8, "big"), payload]


def text_frame(payload: bytes) -> bytes:
    """A complete, unmasked server-to-client text frame (RFC 6455 §5.2; no extensions are ever
    negotiated). wsproto frames text only from ``str``; the session keeps answers as UTF-8 bytes
    (counted exactly against ``maxBufferedBytes``, one byte per byte) and frames them here once."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


class WsTransport:
    """A session's way out: frames over the Trio stream (control frames through wsproto)."""

    def __init__(self, stream: trio.SocketStream, ws: WSConnection) -> None:
        self.stream = stream
        self.ws = ws
        self._send_lock = trio.Lock()
        fd = stream.socket.fileno()
        self._raw_send: Callable[[bytes], int] = lambda data: os.write(fd, data)

    frame_text = staticmethod(text_frame_parts)

    def ping_frame(self) -> bytes:
        try:
            return self.ws.send(Ping())
        except WsLocalError:
            return b""

    @property
    def busy(self) -> bool:
        return self._send_lock.locked()

    def try_write(self, data: bytes) -> int:
        """A non-blocking ``send`` on the socket (Trio keeps it non-blocking); 0 if it is full."""
        if self.ws.state is not ConnectionState.OPEN:
            return 0
        try:
            return self._raw_send(data)
        except BlockingIOError:
            return 0

    async def _send(self, data: bytes) -> None:
        async with self._send_lock:
            await self.stream.send_all(data)

    async def send_batch(self, items: list[bytes]) -> None:
        if self.ws.state is not ConnectionState.OPEN:
            raise trio.ClosedResourceError("websocket is closed")
        if len(items) == 1:
            await self._send(items[0])
            return
        async with self._send_lock:  # small frames coalesced into one write; large ones never copied
            small: list[bytes] = []
            for item in items:
                if len(item) < 65536:
                    small.append(item)
                    continue
                if small:
                    await self.stream.send_all(b"".join(small))
                    small = []
                await self.stream.send_all(item)
            if small:
                await self.stream.send_all(b"".join(small))

    async def send_close(self, code: int, reason: str) -> None:
        try:
            data = self.ws.send(CloseConnection(code=code, reason=reason))
        except WsLocalError:
            return  # already closing
        await self._send(data)

    def abort(self) -> None:
        """Drop the TCP connection (a blocked sender or reader wakes with an error)."""
        try:
            self.stream.socket.close()
        except OSError:
            pass


async def _ws_reader(stream: trio.SocketStream, ws: WSConnection, transport: WsTransport, session: Session) -> None:
    """Feed wsproto events to the session until the connection closes."""
    chunks: list[str | bytes] = []
    size = 0
    discarding = False
    while not session.finished:
        for event in ws.events():
            if isinstance(event, Message):
                if discarding:
                    if event.message_finished:
                        discarding = False
                    continue
                size += len(event.data)
                if size > session.max_message_bytes:
                    chunks, size, discarding = [], 0, not event.message_finished
                    session.feed_too_big()
                    continue
                if event.message_finished and not chunks:
                    data = event.data
                else:
                    chunks.append(event.data)
                    if not event.message_finished:
                        continue
                    data = "".join(chunks) if isinstance(event, TextMessage) else b"".join(chunks)  # type: ignore[arg-type]
                    chunks = []
                size = 0
                if isinstance(event, BytesMessage):
                    session.feed_bytes(bytes(data))  # type: ignore[arg-type]
                else:
                    session.feed_text(data)  # type: ignore[arg-type]
            elif isinstance(event, Ping):
                try:
                    await transport._send(ws.send(event.response()))
                except (trio.BrokenResourceError, trio.ClosedResourceError, WsLocalError):
                    pass
            elif isinstance(event, Pong):
                session.feed_pong()
            elif isinstance(event, CloseConnection):
                # wsproto reports a frame it could not parse (bad UTF-8, reserved opcode, unmasked
                # frame) as a close while the connection is still OPEN; its reason is Python's
                # exception text, which stays here: the peer gets the code with an empty reason,
                # as from the published gateway.
                local_failure = ws.state is ConnectionState.OPEN
                reason = "" if local_failure else (event.reason or "")
                if not session.closed:
                    try:
                        await transport._send(ws.send(CloseConnection(code=event.code, reason=reason)))
                    except (trio.BrokenResourceError, trio.ClosedResourceError, WsLocalError):
                        pass
                session.feed_closed(event.code, reason)
                return
        if session.finished:
            return
        if session.out:
            await session.drain()  # answer inline: one write per read, no task switch
        try:
            data = await stream.receive_some(RECV_CHUNK)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            session.feed_closed(1006)
            return
        if not data:
            session.feed_closed(1006)
            return
        try:
            ws.receive_data(data)
        except WsRemoteError:
            session.feed_closed(1002, "")
            return


async def _reject(stream: trio.SocketStream, ws: WSConnection, status: int, text: str) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await stream.send_all(ws.send(RejectConnection(status_code=status, headers=headers, has_body=True)))
    await stream.send_all(ws.send(RejectData(data=body)))


async def _websocket(ref: GatewayRef, stream: trio.SocketStream, raw: bytes, peer: PeerInfo, slot: SocketSlot) -> None:
    ws = WSConnection(ConnectionType.SERVER)
    head, sep, rest = raw.partition(b"\r\n\r\n")
    ws.receive_data(_VERSION_8_RE.sub(rb"\g<1>13\g<2>", head) + sep + rest)
    request = next((e for e in ws.events() if isinstance(e, Request)), None)
    if request is None:
        return
    gw = ref.gateway
    if gw is None or gw.closing:
        await _reject(stream, ws, 503, "Gateway websocket admission closed")
        return
    transport = WsTransport(stream, ws)
    session = Session(gw, peer, transport)
    session.socket_slot = slot
    try:
        await stream.send_all(ws.send(AcceptConnection()))
        await session.run(lambda s: _ws_reader(stream, ws, transport, s))
    finally:
        gw.unregister(session)


# --------------------------------------------------------------------------- HTTP


def _debug(ref: GatewayRef, line: str) -> None:
    gw = ref.gateway
    if gw is not None:
        gw.log.debug("gateway/http", line)


async def _read_body(conn: h11.Connection, stream: trio.SocketStream) -> str | None:
    """Drain the request body (no route takes one yet) within its time and size bounds.

    Returns ``None`` when the whole body was read, else why the connection must end
    (``"closed"``, ``"timeout"``, ``"too-large"``).
    """
    received = 0
    with trio.move_on_after(BODY_TIMEOUT_S):
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(RECV_CHUNK)
                if not data:
                    return "closed"
                conn.receive_data(data)
            elif isinstance(event, h11.Data):
                received += len(event.data)
                if received > MAX_BODY_BYTES:
                    return "too-large"
            elif isinstance(event, h11.EndOfMessage):
                return None
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return "closed"
    return "timeout"


async def handle_stream(ref: GatewayRef, stream: trio.SocketStream, slot: SocketSlot) -> None:
    """Serve one TCP connection: HTTP requests, or one WebSocket."""
    try:
        with slot.scope:
            await _serve_stream(ref, stream, slot)
    finally:
        slot.tracker.release(slot)
        try:
            await trio.aclose_forcefully(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass


async def _serve_stream(ref: GatewayRef, stream: trio.SocketStream, slot: SocketSlot) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
    try:
        for _ in range(MAX_KEEPALIVE_REQUESTS):
            raw = bytearray()
            request: h11.Request | None = None
            with trio.move_on_after(OVER_CAP_HEAD_TIMEOUT_S if slot.over_cap else HEAD_TIMEOUT_S):
                while request is None:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        data = await stream.receive_some(RECV_CHUNK)
                        if not data:
                            return
                        raw += data
                        conn.receive_data(data)
                    elif isinstance(event, h11.Request):
                        request = event
                    elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                        return
            if request is None:
                return
            headers = [(k.lower(), v) for k, v in request.headers]
            values = {k: v.lower() if k in (b"upgrade", b"connection") else v for k, v in headers}
            path = request.target.decode("latin-1").split("?", 1)[0]
            gw = ref.gateway
            ingress = ingress_of(gw, slot.ip, headers)
            if ingress.kind == "trusted-proxy":
                slot.tracker.rekey(slot, ingress.client_ip)
            upgrade = b"upgrade" in values and b"upgrade" in values.get(b"connection", b"")
            if path not in LIVENESS_PATHS or upgrade:
                refusal = _refusal(ref, request.method, values, ingress, slot, upgrade)
                if refusal is not None:
                    status, out_headers, body, why = refusal
                    _debug(ref, f"{request.method.decode('latin-1')} {path} → {status} ({why}) ip={slot.ip}")
                    await _respond(conn, stream, status, out_headers, body)
                    return
            if upgrade:
                head, peer = bytes(raw), peer_info(ingress, headers)
                del raw, conn, request, headers, values  # nothing of the HTTP phase outlives it
                await _websocket(ref, stream, head, peer, slot)
                return
            if b"upgrade" in values:
                await _respond(conn, stream, *http.plain(400, "Bad Request", [(b"connection", b"close")]))
                return
            ended = await _read_body(conn, stream)
            if ended is not None:
                if ended == "too-large":
                    await _respond(conn, stream, *http.plain(413, "Payload Too Large", [(b"connection", b"close")]))
                elif ended == "timeout":
                    _debug(ref, f"request body not received within {BODY_TIMEOUT_S:.0f}s ip={slot.ip}")
                return
            status, out_headers, body = http.route(
                ref.gateway, request.method.decode(), request.target.decode("latin-1"), peer_info(ingress, headers), headers
            )
            await _respond(conn, stream, status, out_headers, body)
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except (h11.RemoteProtocolError, h11.LocalProtocolError):
        try:
            await _respond(conn, stream, *http.plain(400, "Bad Request", [(b"connection", b"close")]))
        except Exception:  # noqa: BLE001 - best effort on a broken request
            pass
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
    except Exception as exc:  # noqa: BLE001 - one connection's bug must never take the listener down
        gw = ref.gateway
        if gw is not None:
            gw.log.error("gateway/ws", f"connection handler failed: {exc!r}")


def _refusal(
    ref: GatewayRef, method: bytes, values: dict[bytes, bytes], ingress: Ingress, slot: SocketSlot, upgrade: bool
) -> tuple[int, list[tuple[bytes, bytes]], bytes, str] | None:
    """Answers decided from the head alone, in order: attribution, pre-auth cap, upgrade checks."""
    if ingress.refused:
        status, headers, body = http.proxy_attribution_required()
        return status, headers + [(b"connection", b"close")], body, "proxy attribution required"
    if slot.over_cap:
        status, headers, body = http.plain(503, "Too many unauthenticated sockets", [(b"connection", b"close")])
        return status, headers, body, "pre-auth cap"
    if upgrade:
        bad = check_upgrade(method, values)
        if bad is not None:
            code, text, extra = bad
            status, headers, body = http.plain(code, text, [*extra, (b"connection", b"close")])
            return status, headers, body, text
    return None


async def _respond(conn: h11.Connection, stream: trio.SocketStream, status: int, headers: Any, body: bytes) -> None:
    reason = HTTPStatus(status).phrase.encode() if status in HTTPStatus._value2member_map_ else b""
    data = conn.send(h11.Response(status_code=status, headers=headers, reason=reason))
    if body:
        data = (data or b"") + (conn.send(h11.Data(data=body)) or b"")
    data = (data or b"") + (conn.send(h11.EndOfMessage()) or b"")
    await stream.send_all(data)


__all__ = [
    "GatewayRef",
    "SocketSlot",
    "SocketTracker",
    "WsTransport",
    "check_upgrade",
    "handle_stream",
    "ingress_of",
    "peer_info",
    "serve_listeners",
    "text_frame",
]
