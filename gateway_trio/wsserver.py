"""The gateway port: one Trio listener serving HTTP (h11) and WebSocket upgrades (wsproto).

Each accepted TCP stream is read with h11 until its first request is complete. A WebSocket upgrade
is handed, with the raw bytes read so far, to a wsproto server connection (no extensions: like the
published gateway, permessage-deflate is off) and becomes a :class:`Session`. Anything else is
answered by :func:`gateway_trio.http.route`, with keep-alive.

Why not Hypercorn's ASGI worker (the first choice of the design card): measured against it, this
path (1) can abort a client that stopped reading (Hypercorn shields ``send_all``, so a stalled
client blocked stop and restart), (2) drops a connection without a close frame when the core says
``Terminate`` (Hypercorn answered 1011), (3) sends the core's keepalive pings and sees the pongs
(ASGI has no ping API, so a dead peer could not be detected), (4) stops in milliseconds (Hypercorn's
ping tasks held every stop for its graceful timeout), (5) never negotiates permessage-deflate, and
(6) is faster per message. See the gateway issue's note and bench/RESULTS.md.

Bounds: request head ≤ 16 KiB within 10 s; at most 100 keep-alive requests per connection; the
per-IP pre-auth socket cap (HTTP 503) and the admission gate during shutdown (HTTP 503).
"""

from __future__ import annotations

import os
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import h11
import trio
from wsproto import ConnectionType, WSConnection
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
from gateway_core.server import PeerInfo

from . import http
from .session import Session

if TYPE_CHECKING:
    from .app import Gateway

MAX_HEAD_BYTES = 16 * 1024
HEAD_TIMEOUT_S = 10.0
MAX_KEEPALIVE_REQUESTS = 100
RECV_CHUNK = 65536
MAX_PREAUTH_PER_IP = int(os.environ.get("OPENCLAW_MAX_PREAUTH_CONNECTIONS_PER_IP") or 32)
FORWARD_HEADERS = frozenset(
    {
        b"forwarded",
        b"x-forwarded-for",
        b"x-forwarded-host",
        b"x-forwarded-proto",
        b"x-real-ip",
        b"tailscale-user-login",
        b"tailscale-user-name",
    }
)


class GatewayRef:
    """The current :class:`Gateway` (swapped on an in-process restart)."""

    gateway: Gateway | None = None


def peer_info(stream: trio.SocketStream, headers: list[tuple[bytes, bytes]]) -> PeerInfo:
    """Transport facts about the caller, from the socket and the request headers."""
    try:
        ip = canonical_ip(stream.socket.getpeername()[0])
    except OSError:
        ip = ""
    forwarded = any(k in FORWARD_HEADERS for k, _ in headers)
    origin = host = None
    for k, v in headers:
        if k == b"origin":
            origin = v.decode("latin-1")
        elif k == b"host":
            host = v.decode("latin-1")
    return PeerInfo(client_ip=ip, is_loopback=is_loopback(ip), forwarded=forwarded, origin=origin, host=host)


class WsTransport:
    """A session's way out: wsproto frames over the Trio stream."""

    def __init__(self, stream: trio.SocketStream, ws: WSConnection) -> None:
        self.stream = stream
        self.ws = ws
        self._send_lock = trio.Lock()

    async def _send(self, data: bytes) -> None:
        async with self._send_lock:
            await self.stream.send_all(data)

    async def send_batch(self, items: list[str | None]) -> None:
        ws = self.ws
        try:
            data = b"".join(ws.send(Ping()) if item is None else ws.send(Message(data=item)) for item in items)
        except WsLocalError:
            raise trio.ClosedResourceError("websocket is closed") from None
        await self._send(data)

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
                if not session.closed:
                    try:
                        await transport._send(ws.send(event.response()))
                    except (trio.BrokenResourceError, trio.ClosedResourceError, WsLocalError):
                        pass
                session.feed_closed(event.code, event.reason or "")
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
            session.feed_closed(1002, "protocol error")
            return


async def _reject(stream: trio.SocketStream, ws: WSConnection, status: int, text: str) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await stream.send_all(ws.send(RejectConnection(status_code=status, headers=headers, has_body=True)))
    await stream.send_all(ws.send(RejectData(data=body)))


async def _websocket(ref: GatewayRef, stream: trio.SocketStream, raw: bytes, peer: PeerInfo) -> None:
    ws = WSConnection(ConnectionType.SERVER)
    ws.receive_data(raw)
    request = next((e for e in ws.events() if isinstance(e, Request)), None)
    if request is None:
        return
    gw = ref.gateway
    if gw is None or gw.closing:
        await _reject(stream, ws, 503, "Gateway websocket admission closed")
        return
    if not gw.claim_preauth(peer.client_ip, MAX_PREAUTH_PER_IP):
        await _reject(stream, ws, 503, "Too many unauthenticated sockets")
        return
    transport = WsTransport(stream, ws)
    session = Session(gw, peer, transport)
    session.preauth_counted = True
    try:
        await stream.send_all(ws.send(AcceptConnection()))
        await session.run(lambda s: _ws_reader(stream, ws, transport, s))
    finally:
        gw.unregister(session)


async def handle_stream(ref: GatewayRef, stream: trio.SocketStream) -> None:
    """Serve one TCP connection: HTTP requests, or one WebSocket."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
    try:
        for _ in range(MAX_KEEPALIVE_REQUESTS):
            raw = bytearray()
            request: h11.Request | None = None
            with trio.move_on_after(HEAD_TIMEOUT_S):
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
            values = {k: v.lower() for k, v in headers}
            if values.get(b"upgrade") == b"websocket" and b"upgrade" in values.get(b"connection", b""):
                head, peer = bytes(raw), peer_info(stream, headers)
                del raw, conn, request, headers, values  # nothing of the HTTP phase outlives it
                await _websocket(ref, stream, head, peer)
                return
            if values.get(b"upgrade"):
                await _respond(conn, stream, *http.plain(400, "Bad Request", [(b"connection", b"close")]))
                return
            while True:  # drain any request body (probes take none)
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(RECV_CHUNK)
                    if not data:
                        return
                    conn.receive_data(data)
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    return
            status, out_headers, body = http.route(
                ref.gateway, request.method.decode(), request.target.decode("latin-1"), peer_info(stream, headers), headers
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
    finally:
        try:
            await stream.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass


async def _respond(conn: h11.Connection, stream: trio.SocketStream, status: int, headers: Any, body: bytes) -> None:
    reason = HTTPStatus(status).phrase.encode() if status in HTTPStatus._value2member_map_ else b""
    data = conn.send(h11.Response(status_code=status, headers=headers, reason=reason))
    if body:
        data = (data or b"") + (conn.send(h11.Data(data=body)) or b"")
    data = (data or b"") + (conn.send(h11.EndOfMessage()) or b"")
    await stream.send_all(data)


__all__ = ["GatewayRef", "WsTransport", "handle_stream", "peer_info"]
