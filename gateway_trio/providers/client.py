"""A lean HTTP/1.1 client for model calls: h11 for the protocol, Trio sockets (and ``trio.SSLStream``).

Chosen by measurement over httpx: a streamed POST with its SSE answer costs about a third of
httpx's CPU per request here (with httpx-sse), and about half its wall time. The provider
adapters need one thing, ``POST`` a body and read the answer as it streams, so that is all this
does. h11 does the HTTP (framing, chunked coding, keep-alive rules); this module owns the
sockets, the pool and the clocks.

    client = HTTPClient()
    async with client.request("POST", url, headers={...}, body=b"...", idle_s=20) as response:
        response.status, response.headers        # headers: lower-case names
        async for piece in response:             # the body, decoded (gzip/deflate) as it arrives
            ...
    await client.aclose()

* **Pool.** Keep-alive connections per ``(scheme, host, port)``: at most ``max_connections`` open,
  ``max_idle`` kept idle, each for ``idle_expiry_s``. A connection goes back only when its
  answer was read to the end (h11 ``DONE`` on both sides); leaving the ``async with`` earlier (a
  ``break``, an exception, a cancel) closes its socket at once. A pooled connection the server
  closed while idle is noticed (readable at checkout, or EOF before any answer byte) and the
  request is sent once more on a fresh one, only if nothing of an answer had arrived.
* **Clocks.** ``idle_s`` bounds every read and write (and the wait for a pool slot); the connect,
  TLS handshake included, is bounded by ``min(idle_s, MAX_CONNECT_S)``.
* **TLS.** The system store (``SSL_CERT_FILE`` honoured) plus certifi's bundle when installed;
  host names checked; ALPN ``http/1.1``. No proxies from the environment, no redirects followed.
* **Failures** are the :class:`HTTPError` subclasses below, split by what happened;
  ``gateway_trio.providers._http.map_exception`` turns them into provider errors.
"""

from __future__ import annotations

import ssl
import zlib
from functools import lru_cache
from typing import Final, NamedTuple
from urllib.parse import urlsplit

import h11
import trio

from .._runtime import now

USER_AGENT: Final = "openclaw-gateway-py"
#: Longest a connect (TCP and TLS) may take, whatever the idle timeout.
MAX_CONNECT_S: Final = 30.0
RECV_CHUNK: Final = 65536
#: Largest response head accepted (h11's limit on an incomplete event).
MAX_HEAD: Final = 64 * 1024
#: Largest piece a compressed body is inflated into at once (a small body cannot become a huge one).
MAX_INFLATE: Final = 256 * 1024


class HTTPError(Exception):
    """A request failed; the subclass says how."""


class InvalidURL(HTTPError):
    """The URL cannot be requested (scheme, host or port)."""


class InvalidRequest(HTTPError):
    """A header h11 refuses to send (a newline in a value, …)."""


class ConnectTimeout(HTTPError):
    """No connection (TCP and TLS) within the connect bound."""


class ConnectFailed(HTTPError):
    """Refused, unresolvable, unreachable, or the TLS handshake failed."""


class IdleTimeout(HTTPError):
    """No byte moved for ``idle_s`` (a read, a write, or the wait for a pool slot)."""


class Dropped(HTTPError):
    """The server broke off or broke HTTP: closed before the answer ended, or sent something unparseable."""


class NetworkFailure(HTTPError):
    """The connection failed under us (reset, broken pipe, TLS error after the handshake)."""


class DecodingFailed(HTTPError):
    """The body's content-encoding is unsupported or its compressed data is corrupt."""


class _Stale(Exception):
    """A reused connection turned out closed before any byte of the answer (retry on a fresh one)."""


class Target(NamedTuple):
    """Where a URL points: the pool key parts, the request target and the ``Host`` header."""

    scheme: str
    host: str
    port: int
    target: bytes
    host_header: bytes

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


@lru_cache(maxsize=256)
def parse_url(url: str) -> Target:
    """``url`` split for a request; :class:`InvalidURL` when it cannot be one (cached: a gateway
    calls the same few URLs over and over)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(f"Invalid URL {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidURL(f"Request URL has an unsupported protocol '{scheme}://'." if scheme
                         else "Request URL is missing an 'http://' or 'https://' protocol.")
    host = parts.hostname or ""
    if not host:
        raise InvalidURL(f"Invalid URL {url!r}: no host")
    default = 443 if scheme == "https" else 80
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port in (None, default) else f"{shown}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        return Target(scheme, host, port or default, target.encode("ascii"), host_header.encode("ascii"))
    except UnicodeEncodeError:
        raise InvalidURL(f"Invalid URL {url!r}: not ASCII (percent-encode it)") from None


_ssl_context: ssl.SSLContext | None = None


def default_ssl_context() -> ssl.SSLContext:
    """The process's client TLS context: system trust store plus certifi's (made on first use)."""
    global _ssl_context
    if _ssl_context is None:
        context = ssl.create_default_context()
        try:
            import certifi
        except ImportError:  # a minimal install: the system store alone
            pass
        else:
            context.load_verify_locations(certifi.where())
        context.set_alpn_protocols(["http/1.1"])
        _ssl_context = context
    return _ssl_context


def _cause(exc: BaseException) -> str:
    """The most telling text of a Trio stream error (its OSError/SSLError cause when there is one)."""
    inner = exc.__cause__ or exc.__context__
    if isinstance(inner, OSError | ssl.SSLError) and str(inner):
        return str(inner)
    return str(exc) or type(exc).__name__


class _Conn:
    """One pooled connection: its stream, its socket (for closing and the staleness check) and h11."""

    __slots__ = ("closed", "got", "h11", "idle_since", "key", "reused", "sock", "stream")

    def __init__(self, key: tuple[str, str, int], stream: trio.abc.Stream, sock: trio.socket.SocketType) -> None:
        self.key = key
        self.stream = stream
        self.sock = sock
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        self.reused = False
        self.got = 0  # bytes of the current answer received
        self.idle_since = 0.0
        self.closed = False


class _Inflater:
    """Streaming gzip/deflate decoding, at most :data:`MAX_INFLATE` bytes out per call; deflate
    may come zlib-wrapped or raw (servers send both)."""

    def __init__(self, encoding: str) -> None:
        self._raw_allowed = encoding == "deflate"
        self._z = zlib.decompressobj(zlib.MAX_WBITS | 16 if encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS)

    def feed(self, data: bytes) -> bytes:
        """The first piece ``data`` inflates to (more may follow: :meth:`more`)."""
        try:
            piece = self._z.decompress(data, MAX_INFLATE)
        except zlib.error as exc:
            if not self._raw_allowed:
                raise DecodingFailed(f"corrupt compressed body: {exc}") from None
            self._raw_allowed = False
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, no zlib header
            return self.feed(data)
        self._raw_allowed = False
        return piece

    def more(self) -> bytes:
        """The next piece of what was fed, or ``b""``."""
        tail = self._z.unconsumed_tail
        return self.feed(tail) if tail else b""

    def flush(self) -> bytes:
        try:
            return self._z.flush()
        except zlib.error as exc:
            raise DecodingFailed(f"corrupt compressed body: {exc}") from None


class Response:
    """The answer: ``status``, ``reason``, ``headers`` (lower-case names, repeats joined by ``", "``)
    and the body by ``async for piece in response`` or :meth:`receive`. Owns its connection until
    the body has been read to the end (then the connection is back in the pool)."""

    def __init__(self, client: HTTPClient, conn: _Conn, head: h11.Response, idle_s: float) -> None:
        self.status = head.status_code
        self.reason = head.reason.decode("latin-1")
        headers: dict[str, str] = {}
        for name, value in head.headers:
            key = name.decode("latin-1")
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        self.headers = headers
        self._client = client
        self._conn: _Conn | None = conn
        self._idle_s = idle_s
        self._inflater: _Inflater | None = None
        self._encoding = headers.get("content-encoding", "").strip().lower() or "identity"
        self.complete = False

    async def receive(self) -> bytes:
        """The next piece of the body; ``b""`` once it has all been read."""
        while (piece := self.receive_nowait()) is None:
            assert self._conn is not None
            await self._client._fill(self._conn, self._idle_s, started=True)
        return piece

    def receive_nowait(self) -> bytes | None:
        """The next piece of the body if it is here already (no I/O): ``b""`` once it has all
        been read, ``None`` when a read would have to wait for the socket."""
        if self._inflater is not None and (piece := self._inflater.more()):
            return piece
        conn = self._conn
        while conn is not None:
            try:
                event = conn.h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise Dropped(str(exc)) from None
            kind = type(event)
            if kind is h11.Data:
                data: bytes = event.data  # type: ignore[union-attr]
                if self._encoding != "identity":
                    data = self._inflate(data)
                if data:
                    return data
            elif event is h11.NEED_DATA:
                return None
            elif kind is h11.EndOfMessage:
                tail = self._inflater.flush() if self._inflater is not None else b""
                self.complete = True
                self._conn = None
                self._client._release(conn)
                return tail
            else:  # ConnectionClosed before the end of the body
                raise Dropped("server closed the connection before the end of the body")
        return b""

    def _inflate(self, data: bytes) -> bytes:
        if self._inflater is None:
            if self._encoding not in ("gzip", "x-gzip", "deflate"):
                raise DecodingFailed(f"unsupported content-encoding {self._encoding!r}")
            self._inflater = _Inflater(self._encoding)
        return self._inflater.feed(data)

    def __aiter__(self) -> Response:
        return self

    async def __anext__(self) -> bytes:
        piece = await self.receive()
        if not piece:
            raise StopAsyncIteration
        return piece

    def close(self) -> None:
        """Stop reading: an unfinished answer closes its connection's socket now."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._client._discard(conn)


class _Exchange:
    """``async with client.request(...) as response`` (the response closed on the way out)."""

    __slots__ = ("_args", "_client", "_response")

    def __init__(self, client: HTTPClient, args: tuple[str, str, dict[str, str], bytes, float]) -> None:
        self._client = client
        self._args = args
        self._response: Response | None = None

    async def __aenter__(self) -> Response:
        self._response = await self._client.send(*self._args)
        return self._response

    async def __aexit__(self, *exc: object) -> None:
        if self._response is not None:
            self._response.close()


class HTTPClient:
    """A pool of keep-alive connections and the requests over them (see the module text)."""

    def __init__(
        self,
        *,
        max_connections: int = 256,
        max_idle: int = 32,
        idle_expiry_s: float = 60.0,
        user_agent: str = USER_AGENT,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.max_idle = max_idle
        self.idle_expiry_s = idle_expiry_s
        self._defaults = [(b"user-agent", user_agent.encode()), (b"accept-encoding", b"identity")]
        self._ssl_context = ssl_context
        self._slots = trio.Semaphore(max_connections)
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}
        self._idle_count = 0
        self._closed = False
        #: Connections opened so far (tests and benchmarks read it).
        self.opened = 0

    # ------------------------------------------------------------------ requests

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None, body: bytes = b"",
                idle_s: float = 60.0) -> _Exchange:
        """``async with client.request(...) as response``: see :class:`Response`."""
        return _Exchange(self, (method, url, headers or {}, body, idle_s))

    async def send(self, method: str, url: str, headers: dict[str, str], body: bytes, idle_s: float) -> Response:
        """Send the request and read the answer's head; the caller must :meth:`Response.close` it."""
        target = parse_url(url)
        idle_s = max(0.001, float(idle_s))
        request = self._request_event(method, target, headers, body)
        for attempt in (0, 1):
            conn = self._checkout(target.key) if attempt == 0 else None
            if conn is None:
                conn = await self._connect(target, idle_s)
            try:
                try:
                    data = conn.h11.send(request)
                    if body:
                        data += conn.h11.send(h11.Data(data=body))
                    data += conn.h11.send(h11.EndOfMessage())
                except h11.LocalProtocolError as exc:
                    raise InvalidRequest(str(exc)) from None
                head = await self._exchange(conn, data, idle_s)
            except _Stale:
                self._discard(conn)
                continue
            except BaseException:
                self._discard(conn)
                raise
            return Response(self, conn, head, idle_s)
        raise AssertionError("unreachable: a fresh connection is never stale")

    def _request_event(self, method: str, target: Target, headers: dict[str, str], body: bytes) -> h11.Request:
        given = {k.lower(): v for k, v in headers.items()}
        lines: list[tuple[bytes, bytes]] = [(b"host", target.host_header)]
        lines += [(name, value) for name, value in self._defaults if name.decode() not in given]
        for name, value in given.items():
            if name in ("host", "content-length", "transfer-encoding", "connection"):
                continue
            try:
                raw = value.encode("latin-1")
            except UnicodeEncodeError:
                raw = value.encode("utf-8")
            lines.append((name.encode("latin-1", "replace"), raw))
        if body or method not in ("GET", "HEAD"):
            lines.append((b"content-length", str(len(body)).encode()))
        try:
            return h11.Request(method=method, target=target.target, headers=lines)
        except h11.LocalProtocolError as exc:
            raise InvalidRequest(str(exc)) from None

    async def _exchange(self, conn: _Conn, data: bytes, idle_s: float) -> h11.Response:
        """Write the request, read up to the answer's head. One cancel scope for both (they are
        the per-request cost), its deadline moved to ``idle_s`` from now before each socket call."""
        conn.got = 0
        with trio.CancelScope(deadline=trio.current_time() + idle_s) as scope:
            try:
                await conn.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                if conn.reused:
                    raise _Stale from None
                raise NetworkFailure(_cause(exc)) from None
            while True:
                try:
                    event = conn.h11.next_event()
                except h11.RemoteProtocolError as exc:
                    raise Dropped(str(exc)) from None
                if event is h11.NEED_DATA:
                    scope.deadline = trio.current_time() + idle_s
                    await self._receive(conn, started=conn.got > 0)
                elif type(event) is h11.Response:
                    return event  # type: ignore[return-value]
                elif type(event) is not h11.InformationalResponse:  # 100 Continue and friends are skipped
                    raise Dropped(f"unexpected {type(event).__name__} before the answer")
        raise IdleTimeout(f"no byte moved for {idle_s}s")

    async def _fill(self, conn: _Conn, idle_s: float, *, started: bool) -> None:
        """Read once into h11 within ``idle_s``."""
        with trio.move_on_after(idle_s):
            await self._receive(conn, started=started)
            return
        raise IdleTimeout(f"no byte received for {idle_s}s")

    async def _receive(self, conn: _Conn, *, started: bool) -> None:
        """Read once into h11. ``started``: some of the answer has arrived (no retry after that)."""
        try:
            data = await conn.stream.receive_some(RECV_CHUNK)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            if started:
                raise NetworkFailure(_cause(exc)) from None
            data = b""  # reset before any answer byte: as good as a close
        if not data and not started:
            if conn.reused:
                raise _Stale
            raise Dropped("server disconnected without sending a response")
        conn.got += len(data)
        conn.h11.receive_data(data)

    # ------------------------------------------------------------------ the pool

    def _checkout(self, key: tuple[str, str, int]) -> _Conn | None:
        """The most recently used live idle connection to ``key`` (expired or readable ones closed)."""
        idle = self._idle.get(key)
        if not idle:
            return None
        oldest_ok = now() - self.idle_expiry_s
        while idle:
            conn = idle.pop()
            self._idle_count -= 1
            if conn.idle_since < oldest_ok or conn.sock.is_readable():  # expired, or closed by the server
                self._close(conn)
                continue
            return conn
        return None

    async def _connect(self, target: Target, idle_s: float) -> _Conn:
        if self._closed:
            raise NetworkFailure("the HTTP client is closed")
        if self._slots.value == 0:
            self._evict_oldest()
        with trio.move_on_after(idle_s) as scope:
            await self._slots.acquire()
        if scope.cancelled_caught:
            raise IdleTimeout(f"no free connection for {idle_s}s")
        try:
            with trio.move_on_after(min(idle_s, MAX_CONNECT_S)) as scope:
                conn = await self._open(target)
            if scope.cancelled_caught:
                raise ConnectTimeout(f"connect timeout reaching {target.host}:{target.port}")
        except BaseException:
            self._slots.release()
            raise
        self.opened += 1
        return conn

    async def _open(self, target: Target) -> _Conn:
        try:
            tcp = await trio.open_tcp_stream(target.host, target.port)
        except OSError as exc:  # refused, unreachable, DNS (socket.gaierror)
            raise ConnectFailed(str(exc) or type(exc).__name__) from None
        stream: trio.abc.Stream = tcp
        if target.scheme == "https":
            context = self._ssl_context or _ssl_context
            if context is None:  # the first https call: loading the trust stores takes a while, off the loop
                context = await trio.to_thread.run_sync(default_ssl_context)
            tls = trio.SSLStream(tcp, context, server_hostname=target.host, https_compatible=True)
            try:
                await tls.do_handshake()
            except trio.BrokenResourceError as exc:
                tcp.socket.close()
                raise ConnectFailed(_cause(exc)) from None
            except BaseException:
                tcp.socket.close()
                raise
            stream = tls
        return _Conn(target.key, stream, tcp.socket)

    def _release(self, conn: _Conn) -> None:
        """An answer was read to its end: keep the connection if both sides may go on."""
        h = conn.h11
        if (self._closed or h.our_state is not h11.DONE or h.their_state is not h11.DONE or h.trailing_data[0]
                or (self._slots.value == 0 and self._slots.statistics().tasks_waiting)):  # one waits for a slot
            self._close(conn)
            return
        try:
            h.start_next_cycle()
        except h11.LocalProtocolError:
            self._close(conn)
            return
        conn.reused = True
        conn.idle_since = now()
        self._idle.setdefault(conn.key, []).append(conn)
        self._idle_count += 1
        while self._idle_count > self.max_idle:
            self._evict_oldest()

    def _discard(self, conn: _Conn) -> None:
        """The answer was not read to its end (or failed): the socket closes now."""
        self._close(conn)

    def _evict_oldest(self) -> None:
        oldest: _Conn | None = None
        for conns in self._idle.values():
            if conns and (oldest is None or conns[0].idle_since < oldest.idle_since):
                oldest = conns[0]
        if oldest is not None:
            self._idle[oldest.key].remove(oldest)
            self._idle_count -= 1
            self._close(oldest)

    def _close(self, conn: _Conn) -> None:
        if not conn.closed:
            conn.closed = True
            conn.sock.close()  # at once: no TLS close_notify, the peer sees the FIN (or RST) now
            self._slots.release()

    def idle_connections(self) -> int:
        """How many connections sit idle in the pool."""
        return self._idle_count

    async def aclose(self) -> None:
        """Close the idle connections; those in use close when their answers are done."""
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                self._close(conn)
        self._idle.clear()
        self._idle_count = 0
        await trio.lowlevel.checkpoint()


__all__ = [
    "MAX_CONNECT_S",
    "USER_AGENT",
    "ConnectFailed",
    "ConnectTimeout",
    "DecodingFailed",
    "Dropped",
    "HTTPClient",
    "HTTPError",
    "IdleTimeout",
    "InvalidRequest",
    "InvalidURL",
    "NetworkFailure",
    "Response",
    "Target",
    "default_ssl_context",
    "parse_url",
]
