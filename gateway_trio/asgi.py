"""ASGI over h11 on the gateway's own listener: one request/response exchange at a time.

Chosen by measurement over Hypercorn's trio worker (see the note in docs/architecture.md): the
same ASGI app, a third of the CPU per request, streams that a cancel scope can stop (Hypercorn
shields its writes, so a client that stopped reading held shutdown), and closes that HTTP/1.0 and
``Connection: close`` streams actually get.

Contract (ASGI 3.0, HTTP spec 2.4):
- ``receive`` yields the body in chunks, bounded by ``max_body`` (413 from ``Content-Length``
  before any ``100 Continue``; 413 mid-stream for chunked bodies) and by the body deadline (408);
  ``100 Continue`` goes out only when the app first asks for the body;
- ``send`` writes with ``await stream.send_all``: back-pressure is the socket's, and the write is
  cancellable; HEAD bodies are dropped; the last keep-alive response says ``Connection: close``;
- disconnect: once the body is read, the client's hang-up (FIN or reset) is watched; then
  ``http.disconnect`` and the app's cancel scope is cancelled. On a socket the watch is an entry in
  this run's :mod:`~gateway_trio.hangups` epoll set (no task per request; a pipelined next request
  stays unread in the kernel); on other streams a watcher task reads the stream, buffering a bounded
  pipelined next request. The watch starts when the response streams, when the app awaits
  ``receive()`` after the body, or when the app calls the ``gateway.watch_disconnect`` extension
  (long non-streaming routes: a chat completion is cancelled the moment its client goes away).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import h11
import trio

from . import _runtime, hangups

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]]

RECV_CHUNK = 65536
#: What the disconnect watcher buffers of a pipelined next request at most.
MAX_PIPELINE_BYTES = 16 * 1024
#: http-agents-channels.md §1.4: a body not received within 30 s is answered 408.
BODY_TIMEOUT_S = 30.0
#: The largest body any route accepts (routes enforce their own, smaller limits).
DEFAULT_MAX_BODY = 32 * 1024 * 1024


class ClientDisconnected(OSError):
    """``send()`` after the client went away (ASGI 2.4 asks for an ``OSError`` subclass)."""


class BodyTooLarge(Exception):
    """The request body passed the route's or the server's limit."""


_date: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    global _date
    second = _runtime.wall_ms() // 1000
    if _date[0] != second:
        _date = (second, formatdate(second, usegmt=True).encode())
    return _date[1]


def reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def simple_response(conn: h11.Connection, status: int, body: bytes, *, close: bool = False, extra: list[tuple[bytes, bytes]] | None = None) -> bytes:
    """A whole plain-text response in bytes (used when the app cannot answer)."""
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        *(extra or []),
    ]
    if close:
        headers.append((b"connection", b"close"))
    return (
        conn.send(h11.Response(status_code=status, headers=headers, reason=reason(status)))
        + conn.send(h11.Data(data=body))
        + conn.send(h11.EndOfMessage())
    )


class Exchange:
    """One request and its response on a connection: the ASGI ``receive``/``send`` pair."""

    def __init__(
        self,
        conn: h11.Connection,
        stream: trio.SocketStream,
        request: h11.Request,
        *,
        last: bool,
        nursery: trio.Nursery,
        max_body: int,
        body_timeout_s: float,
    ) -> None:
        self.conn = conn
        self.stream = stream
        self.last = last
        self.nursery = nursery
        self.max_body = max_body
        self.body_timeout_s = body_timeout_s
        self.head = request.method == b"HEAD"
        self.body_done = False
        #: A request without a body still owes the app its one (empty) ``http.request`` message.
        self.owe_empty_body = False
        self.body_size = 0
        self.start: dict[str, Any] | None = None
        self.started = False
        self.finished = False
        self.disconnected = False
        self.disconnect_event = trio.Event()
        self.cancel_scope = trio.CancelScope()
        self._watching = False
        self._on_gone: Callable[[], None] | None = None
        self._hangup: tuple[hangups.HangupMonitor, int] | None = None  # the monitor's watch, if it took it
        self._watch_scope: trio.CancelScope | None = None  # else the watcher task's
        self._watch_done: trio.Event | None = None
        #: The whole body must arrive by then (set when the app first asks for it).
        self._body_deadline: float | None = None

    # ------------------------------------------------------------------ disconnect watching

    def watch(self, on_gone: Callable[[], None] | None = None) -> None:
        """Start watching for the client going away (once the body is read; idempotent). Its going
        cancels the app's scope, or, given ``on_gone``, calls that instead (a route that drives a
        run in its own task stops the run that way, so that the run still settles)."""
        if on_gone is not None:
            self._on_gone = on_gone
        if self._watching or not self.body_done or self.disconnected:
            return
        self._watching = True
        sock = getattr(self.stream, "socket", None)
        found = hangups.monitor() if sock is not None else None
        if found is not None:
            fd = found.watch(sock, self._hung_up)
            if fd is not None:
                self._hangup = (found, fd)
                return
        self._watch_scope = trio.CancelScope()
        self._watch_done = trio.Event()
        self.nursery.start_soon(self._watch)

    async def _watch(self) -> None:
        assert self._watch_scope is not None and self._watch_done is not None
        try:
            with self._watch_scope:
                buffered = 0
                while buffered < MAX_PIPELINE_BYTES:
                    try:
                        data = await self.stream.receive_some(RECV_CHUNK)
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                        data = b""
                    if not data:
                        self._gone()
                        return
                    buffered += len(data)
                    self.conn.receive_data(data)
        finally:
            self._watch_done.set()

    def unwatch_hangup(self) -> None:
        """Drop the watch from the hang-up monitor (idempotent; safe on any path out)."""
        if self._hangup is not None:
            found, fd = self._hangup
            self._hangup = None
            found.unwatch(fd)

    async def stop_watching(self) -> None:
        self.unwatch_hangup()
        if self._watch_scope is not None and self._watch_done is not None:
            self._watch_scope.cancel()
            await self._watch_done.wait()  # never two readers on one socket

    def _hung_up(self) -> None:
        """From the hang-up monitor, which dropped its watch as it reported."""
        self._hangup = None
        self._gone()

    def _gone(self) -> None:
        self.disconnected = True
        self.disconnect_event.set()
        if self.finished:
            return
        if self._on_gone is not None:
            self._on_gone()
        else:
            self.cancel_scope.cancel()

    # ------------------------------------------------------------------ ASGI

    async def receive(self) -> dict[str, Any]:
        if self.disconnected:
            return {"type": "http.disconnect"}
        if self.owe_empty_body:
            self.owe_empty_body = False
            return {"type": "http.request", "body": b"", "more_body": False}
        if self.body_done:
            self.watch()
            await self.disconnect_event.wait()
            return {"type": "http.disconnect"}
        conn = self.conn
        if conn.they_are_waiting_for_100_continue:
            await self.stream.send_all(conn.send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")))
        if self._body_deadline is None:
            self._body_deadline = trio.current_time() + self.body_timeout_s
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                with trio.fail_at(self._body_deadline):  # a scope only where it waits: most bodies came with the head
                    data = await self.stream.receive_some(RECV_CHUNK)
                if not data:
                    self._gone()
                    return {"type": "http.disconnect"}
                conn.receive_data(data)
            elif isinstance(event, h11.Data):
                self.body_size += len(event.data)
                if self.body_size > self.max_body:
                    raise BodyTooLarge
                return {"type": "http.request", "body": bytes(event.data), "more_body": True}
            elif isinstance(event, h11.EndOfMessage):
                self.body_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            else:
                self._gone()
                return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if self.disconnected:
            raise ClientDisconnected("client disconnected")
        kind = message["type"]
        if kind == "http.response.start":
            if self.start is not None:
                raise RuntimeError("response already started")
            self.start = message
            return
        if kind != "http.response.body" or self.start is None or self.finished:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
        conn = self.conn
        out = b""
        if not self.started:
            headers = list(self.start.get("headers", []))
            headers.append((b"date", http_date()))
            if self.last or not self.body_done:  # an unread body: the connection cannot be reused
                headers.append((b"connection", b"close"))
            status = self.start["status"]
            out = conn.send(h11.Response(status_code=status, headers=headers, reason=reason(status))) or b""
            self.started = True
        body = message.get("body", b"")
        if body and not self.head:
            out += conn.send(h11.Data(data=body)) or b""
        if message.get("more_body", False):
            self.watch()
        else:
            out += conn.send(h11.EndOfMessage()) or b""
            self.finished = True
        if out:
            try:
                await self.stream.send_all(out)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                self._gone()
                raise ClientDisconnected("client disconnected") from exc


def _declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for k, v in headers:
        if k == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None
    return None


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    if any(k == b"transfer-encoding" for k, _ in headers):
        return True
    return (_declared_length(headers) or 0) > 0


def socket_names(stream: Any) -> tuple[tuple[str, int] | None, tuple[str, int] | None]:
    """(server, client) addresses of ``stream``'s socket (``None`` where unknown): once per
    connection, not per request (two system calls)."""
    sock = getattr(stream, "socket", None)
    try:
        if sock is not None:
            return tuple(sock.getsockname()[:2]), tuple(sock.getpeername()[:2])  # type: ignore[return-value]
    except OSError:
        pass
    return None, None


def make_scope(
    request: h11.Request, stream: Any, extensions: dict[str, Any], client: tuple[str, int] | None = None,
    server: tuple[str, int] | None = None, headers: list[tuple[bytes, bytes]] | None = None,
) -> dict[str, Any]:
    path, _, query = request.target.partition(b"?")
    if server is None or client is None:
        found_server, found_client = socket_names(stream)
        server, client = server or found_server, client or found_client
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": request.http_version.decode(),
        "method": request.method.decode("ascii"),
        "scheme": "http",
        "path": unquote(path.decode("latin-1")),
        "raw_path": path,
        "query_string": query,
        "root_path": "",
        "headers": list(request.headers) if headers is None else headers,  # h11 lower-cases names
        "client": client,
        "server": server,
        "extensions": extensions,
    }


async def serve_request(
    app: ASGIApp,
    conn: h11.Connection,
    stream: trio.SocketStream,
    request: h11.Request,
    *,
    last: bool,
    nursery: trio.Nursery,
    max_body: int = DEFAULT_MAX_BODY,
    body_timeout_s: float = BODY_TIMEOUT_S,
    on_error: Callable[[BaseException], None] | None = None,
    extensions: dict[str, Any] | None = None,
    client: tuple[str, int] | None = None,
    server: tuple[str, int] | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> bool:
    """Run ``app`` for one request; True when the connection can take another (``client`` and
    ``server``: the socket's addresses when the caller already knows them; ``headers``: the
    request's, listed once by the caller: h11 iterates them item by item)."""
    if headers is None:
        headers = list(request.headers)
    declared = _declared_length(headers)
    if declared is not None and declared > max_body:
        await stream.send_all(simple_response(conn, 413, b"Payload Too Large", close=True))
        return False
    ex = Exchange(conn, stream, request, last=last, nursery=nursery, max_body=max_body, body_timeout_s=body_timeout_s)
    if not _has_body(headers):
        event = conn.next_event()
        if isinstance(event, h11.EndOfMessage):
            ex.body_done = ex.owe_empty_body = True
    extensions = {**(extensions or {}), "gateway.watch_disconnect": ex.watch}
    error: BaseException | None = None
    try:
        with ex.cancel_scope:
            try:
                await app(make_scope(request, stream, extensions, client, server, headers), ex.receive, ex.send)
            except ClientDisconnected:
                pass
            except Exception as exc:  # noqa: BLE001 - body limits, deadlines, app bugs: answered below
                error = exc
    finally:
        ex.unwatch_hangup()  # a socket closed with its watch still registered would be a stale entry
    await ex.stop_watching()
    if ex.disconnected:
        return False
    if not ex.started:
        if isinstance(error, BodyTooLarge):
            body = b'{"error":{"message":"Payload too large","type":"invalid_request_error"}}'
            status = 413
        elif isinstance(error, trio.TooSlowError):
            body = b'{"error":{"message":"Request body timeout","type":"invalid_request_error"}}'
            status = 408
        else:
            if error is not None and on_error is not None:
                on_error(error)
            await stream.send_all(simple_response(conn, 500, b"Internal Server Error", close=True))
            return False
        headers = [
            (b"content-type", b"application/json; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await stream.send_all(
            conn.send(h11.Response(status_code=status, headers=headers, reason=reason(status)))
            + conn.send(h11.Data(data=body))
            + conn.send(h11.EndOfMessage())
        )
        return False
    if error is not None and on_error is not None:
        on_error(error)
    if not ex.finished:  # the app failed mid-response: nothing honest to send, drop the connection
        return False
    return conn.our_state is h11.DONE and conn.their_state is h11.DONE


__all__ = ["BodyTooLarge", "ClientDisconnected", "Exchange", "serve_request", "simple_response"]
