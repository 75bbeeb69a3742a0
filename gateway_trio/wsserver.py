"""WebSocket on the gateway port: the upgrade checks, the transport, and the reader feeding a session.

A valid upgrade (:func:`check_upgrade`) is handed, as bytes (:func:`upgrade_head`), to a wsproto
server connection (no extensions: like the published gateway, permessage-deflate is off) and
becomes a :class:`~gateway_trio.session.Session`. Text frames are written by hand
(:func:`text_frame`) from the session's UTF-8 bytes; control frames go through wsproto.
"""

from __future__ import annotations

import base64
import os
import re
from typing import TYPE_CHECKING, Final, Protocol

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

from gateway_core.server import PeerInfo

from .session import Session

if TYPE_CHECKING:
    from .listener import GatewayRef, SocketSlot

RECV_CHUNK = 65536


#: ``Sec-WebSocket-Key``: base64 of 16 bytes (RFC 6455 §4.2.1).
_KEY_RE: Final = re.compile(rb"^[+/0-9A-Za-z]{21}[AQgw]==$")


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




def upgrade_head(request: h11.Request, conn: h11.Connection) -> bytes:
    """The upgrade request's bytes for wsproto, rebuilt from h11's event (whichever keep-alive
    request it was) plus what already followed it. Version 8 is presented as 13 (same framing)."""
    lines = [request.method + b" " + request.target + b" HTTP/1.1"]
    for name, value in request.headers:
        if name == b"sec-websocket-version" and value.strip() == b"8":
            value = b"13"
        lines.append(name + b": " + value)
    return b"\r\n".join(lines) + b"\r\n\r\n" + conn.trailing_data[0]


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



class Transport(Protocol):
    """How a session reaches its socket (wsproto over a Trio stream)."""

    def frame_text(self, payload: bytes) -> list[bytes]:
        """One complete text frame carrying ``payload`` (UTF-8), as one or two byte strings."""
        ...

    def ping_frame(self) -> bytes: ...

    @property
    def busy(self) -> bool:
        """A write is in progress (nothing else may write now)."""
        ...

    def try_write(self, data: bytes) -> int:
        """Write what the socket takes now, without waiting; returns how many bytes (0 if full)."""
        ...

    async def send_batch(self, items: list[bytes]) -> None:
        """Send already framed bytes in order, in one write."""
        ...

    async def send_close(self, code: int, reason: str) -> None: ...
    def abort(self) -> None: ...


class WsTransport:
    """A session's way out: frames over the Trio stream (control frames through wsproto).

    ``busy`` and ``open`` are plain attributes kept up to date by the methods that change them,
    so the fan-out's per-client check reads this object only (not the lock or wsproto's).
    """

    __slots__ = ("stream", "ws", "busy", "open", "_fd", "_send_lock", "_senders")

    def __init__(self, stream: trio.SocketStream, ws: WSConnection) -> None:
        self.stream = stream
        self.ws = ws
        #: A write is in progress or waiting (nothing else may write now).
        self.busy = False
        #: The WebSocket is open (accepted; no close frame sent or received): see :meth:`sync_state`.
        self.open = ws.state is ConnectionState.OPEN
        self._fd = stream.socket.fileno()
        self._send_lock = trio.Lock()
        self._senders = 0

    frame_text = staticmethod(text_frame_parts)

    def ping_frame(self) -> bytes:
        try:
            return self.ws.send(Ping())
        except WsLocalError:
            return b""

    def try_write(self, data: bytes) -> int:
        """A non-blocking ``write`` on the socket (Trio keeps it non-blocking); 0 if it is full."""
        if not self.open:
            return 0
        try:
            return os.write(self._fd, data)
        except BlockingIOError:
            return 0

    async def _locked(self, items: list[bytes]) -> None:
        """Write ``items`` in order under the send lock (``busy`` while this or another waits)."""
        self._senders += 1
        self.busy = True
        try:
            async with self._send_lock:
                for item in items:
                    await self.stream.send_all(item)
        finally:
            self._senders -= 1
            self.busy = self._senders > 0

    async def _send(self, data: bytes) -> None:
        await self._locked([data])

    async def send_batch(self, items: list[bytes]) -> None:
        if not self.open:
            raise trio.ClosedResourceError("websocket is closed")
        if len(items) == 1:
            await self._locked(items)
            return
        # Small frames coalesced into one write; large ones never copied.
        writes: list[bytes] = []
        small: list[bytes] = []
        for item in items:
            if len(item) < 65536:
                small.append(item)
                continue
            if small:
                writes.append(b"".join(small))
                small = []
            writes.append(item)
        if small:
            writes.append(b"".join(small))
        await self._locked(writes)

    def sync_state(self) -> None:
        """Call after wsproto may have left OPEN (a close received or about to be sent)."""
        self.open = self.ws.state is ConnectionState.OPEN

    async def send_close(self, code: int, reason: str) -> None:
        try:
            data = self.ws.send(CloseConnection(code=code, reason=reason))
        except WsLocalError:
            return  # already closing
        finally:
            self.sync_state()
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
                transport.sync_state()
                # wsproto reports a frame it could not parse (bad UTF-8, reserved opcode, unmasked
                # frame) as a close while the connection is still OPEN; its reason is Python's
                # exception text, which stays here: the peer gets the code with an empty reason,
                # as from the published gateway.
                local_failure = ws.state is ConnectionState.OPEN
                reason = "" if local_failure else (event.reason or "")
                if not session.closed:
                    try:
                        reply = ws.send(CloseConnection(code=event.code, reason=reason))
                        transport.sync_state()
                        await transport._send(reply)
                    except (trio.BrokenResourceError, trio.ClosedResourceError, WsLocalError):
                        transport.sync_state()
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


async def websocket(ref: GatewayRef, stream: trio.SocketStream, head: bytes, peer: PeerInfo, slot: SocketSlot) -> None:
    """Accept the upgrade (or refuse it while the gateway closes) and run the session."""
    ws = WSConnection(ConnectionType.SERVER)
    ws.receive_data(head)
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
        accept = ws.send(AcceptConnection())
        transport.sync_state()
        await stream.send_all(accept)
        await session.run(lambda s: _ws_reader(stream, ws, transport, s))
    finally:
        gw.unregister(session)


__all__ = ["WsTransport", "check_upgrade", "text_frame", "text_frame_parts", "upgrade_head", "websocket"]
