"""The gateway port: one Trio listener for HTTP (h11, served as ASGI) and WebSocket upgrades.

Each accepted TCP stream is read with h11 one request head at a time. A WebSocket upgrade is
checked and handed to :mod:`gateway_trio.wsserver`; any other request goes to the web application
(:mod:`gateway_trio.web`) through the ASGI adapter :mod:`gateway_trio.asgi`, with keep-alive.

Why our own listener and not Hypercorn (measured; see docs/architecture.md and bench/RESULTS.md):
for WebSockets it can abort a client that stopped reading, drop without a close frame, see pongs,
and stop in milliseconds; for HTTP the same ASGI app costs a third of the CPU per request, and a
cancel scope stops a stream whose client stalled (Hypercorn shields its writes).

Bounds (what a hostile or unlucky client can hold):

* a request head ≤ 16 KiB within 10 s, a request body ≤ 25 MiB within 30 s (routes have smaller
  limits), ≤ 100 keep-alive requests per connection;
* every socket counts as *pre-auth* for its IP from ``accept`` until it is an admitted WebSocket
  client: past 32 per IP (``OPENCLAW_MAX_PREAUTH_CONNECTIONS_PER_IP``) a request is answered 503
  ``Too many unauthenticated sockets`` (liveness probes excepted) after a short head deadline;
* file descriptors: the port keeps ``FD_RESERVE`` of the process limit free. At the budget the
  oldest pre-auth socket (older than ``EVICT_MIN_AGE_S``) is dropped to make room, else the new
  socket is refused (503, closed) before ``accept`` could fail; either is logged once per episode,
  as is an ``accept`` that fails anyway (EMFILE), never once per socket;
* forwarding headers from a peer that is not in ``gateway.trustedProxies`` are answered 403
  ``proxy_attribution_required`` (gateway_core.ingress).
"""

from __future__ import annotations

import errno
import os
import resource
import socket as stdsocket
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import h11
import trio

from gateway_core.auth import canonical_ip, is_loopback
from gateway_core.ingress import Ingress, attribute
from gateway_core.server import PeerInfo

from . import asgi, http
from .wsserver import check_upgrade, upgrade_head, websocket

if TYPE_CHECKING:
    from .app import Gateway

MAX_HEAD_BYTES = 16 * 1024
HEAD_TIMEOUT_S = 10.0
#: A socket over its IP's pre-auth cap gets this long to send its head (then 503 or closed).
OVER_CAP_HEAD_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = asgi.BODY_TIMEOUT_S
MAX_BODY_BYTES = 25 * 1024 * 1024
MAX_KEEPALIVE_REQUESTS = 100
RECV_CHUNK = 65536
DEFAULT_MAX_PREAUTH_PER_IP = 32
#: File descriptors kept free for everything that is not a client socket (files, threads, logs).
FD_RESERVE = 64
#: A pre-auth socket younger than this is never evicted to make room (a handshake in progress).
EVICT_MIN_AGE_S = 0.5
#: Errors of ``accept`` that mean "out of resources", not "broken listener".
ACCEPT_CAPACITY_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
LIVENESS_PATHS: Final = frozenset({"/health", "/healthz"})
#: After an answer that left the request body unread: how long and how much to discard before
#: closing (closing with unread data resets the connection, and the client may lose the answer).
LINGER_S = 1.0
LINGER_BYTES = MAX_BODY_BYTES


def max_preauth_per_ip() -> int:
    """``OPENCLAW_MAX_PREAUTH_CONNECTIONS_PER_IP`` (read when a tracker is made, not at import)."""
    raw = os.environ.get("OPENCLAW_MAX_PREAUTH_CONNECTIONS_PER_IP")
    try:
        return max(1, int(raw)) if raw else DEFAULT_MAX_PREAUTH_PER_IP
    except ValueError:
        return DEFAULT_MAX_PREAUTH_PER_IP


class GatewayRef:
    """The current :class:`Gateway` (swapped on an in-process restart) and the web app serving it
    (built on the first HTTP request: a gateway that only serves WebSocket clients never imports
    the routes, which keeps cold start short)."""

    gateway: Gateway | None = None
    _web: asgi.ASGIApp | None = None

    @property
    def web(self) -> asgi.ASGIApp:
        if self._web is None:
            from .web import WebApp

            self._web = WebApp(self)
        return self._web


# --------------------------------------------------------------------------- socket accounting


class SocketSlot:
    """One accepted socket as the port accounts for it."""

    __slots__ = ("evicted", "ip", "opened_at", "over_cap", "scope", "socket_ip", "tracker")

    def __init__(self, tracker: SocketTracker, ip: str, opened_at: float) -> None:
        self.tracker = tracker
        #: The key it is counted under: the peer's address, or the client a trusted proxy names.
        self.ip = ip
        #: The socket's own peer address (never rekeyed: auth and attribution start from it).
        self.socket_ip = ip
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
        per_ip: int | None = None,
        fd_limit: int | None = None,
        reserve: int = FD_RESERVE,
        log: Callable[[str], None] | None = None,
    ) -> None:
        limit = fd_limit if fd_limit is not None else _fd_soft_limit()
        self.budget = max(limit - reserve, 16)
        self.per_ip = per_ip if per_ip is not None else max_preauth_per_ip()
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


# --------------------------------------------------------------------------- HTTP


def _debug(ref: GatewayRef, line: str) -> None:
    gw = ref.gateway
    if gw is not None:
        gw.log.debug("gateway/http", line)


async def handle_stream(ref: GatewayRef, stream: Any, slot: SocketSlot, web: asgi.ASGIApp | None = None) -> None:
    """Serve one TCP connection: HTTP requests (``web``, else the ref's app), or one WebSocket."""
    try:
        with slot.scope:
            upgrade = await _serve_stream(ref, stream, slot, web)
            if upgrade is not None:  # the HTTP phase's frames and nursery are gone: nothing of them outlives it
                await websocket(ref, stream, upgrade[0], upgrade[1], slot)
    finally:
        slot.tracker.release(slot)
        try:
            await trio.aclose_forcefully(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass


async def _read_head(conn: h11.Connection, stream: Any, slot: SocketSlot) -> h11.Request | None:
    with trio.move_on_after(OVER_CAP_HEAD_TIMEOUT_S if slot.over_cap else HEAD_TIMEOUT_S):
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(RECV_CHUNK)
                if not data:
                    return None
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                return event
            else:  # ConnectionClosed, PAUSED
                return None
    return None


async def _serve_stream(
    ref: GatewayRef, stream: Any, slot: SocketSlot, web: asgi.ASGIApp | None
) -> tuple[bytes, PeerInfo] | None:
    """HTTP requests until the connection ends, or a valid WebSocket upgrade: its head and peer
    facts are returned, so the WebSocket session does not keep the HTTP phase's frames alive."""
    async with trio.open_nursery() as watchers:  # each exchange's disconnect watcher
        upgrade = await _serve_requests(ref, stream, slot, web, watchers)
        watchers.cancel_scope.cancel()
    return upgrade


async def _serve_requests(
    ref: GatewayRef, stream: Any, slot: SocketSlot, web: asgi.ASGIApp | None, watchers: trio.Nursery
) -> tuple[bytes, PeerInfo] | None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
    server = asgi.socket_names(stream)[0]
    try:
        for n in range(MAX_KEEPALIVE_REQUESTS):
            request = await _read_head(conn, stream, slot)
            if request is None:
                return
            headers = list(request.headers)  # names lower-cased by h11
            values = {k: v.lower() if k in (b"upgrade", b"connection") else v for k, v in headers}
            path = request.target.decode("latin-1").split("?", 1)[0]
            gw = ref.gateway
            ingress = ingress_of(gw, slot.socket_ip, headers)
            if ingress.kind == "trusted-proxy":
                slot.tracker.rekey(slot, ingress.client_ip)
            upgrade = b"upgrade" in values and b"upgrade" in values.get(b"connection", b"")
            if path not in LIVENESS_PATHS or upgrade:
                refusal = _refusal(request.method, values, ingress, slot, upgrade)
                if refusal is not None:
                    status, out_headers, body, why = refusal
                    _debug(ref, f"{request.method.decode('latin-1')} {path} → {status} ({why}) ip={slot.ip}")
                    await _respond(conn, stream, status, out_headers, body)
                    return
            if upgrade:
                return upgrade_head(request, conn), peer_info(ingress, headers)
            if b"upgrade" in values:
                await _respond(conn, stream, *http.plain(400, "Bad Request", [(b"connection", b"close")]))
                return
            extensions = {"gateway.ingress": ingress, "gateway.peer": peer_info(ingress, headers), "gateway.socket_ip": slot.socket_ip}
            again = await asgi.serve_request(
                web or ref.web, conn, stream, request, last=n == MAX_KEEPALIVE_REQUESTS - 1, nursery=watchers,
                max_body=MAX_BODY_BYTES, extensions=extensions, client=(slot.socket_ip, 0), server=server,
                on_error=partial_log(ref), headers=headers,
            )
            if not again:
                if conn.their_state is h11.SEND_BODY:
                    await _linger(stream)
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
            gw.log.error("gateway/http", f"connection handler failed: {exc!r}")


def partial_log(ref: GatewayRef) -> Callable[[BaseException], None]:
    def log(exc: BaseException) -> None:
        gw = ref.gateway
        if gw is not None:
            gw.log.error("gateway/http", f"request handler failed: {exc!r}")

    return log


async def _linger(stream: Any) -> None:
    """The answer went out before the body was read: discard what still comes (bounded), then close."""
    try:
        await stream.send_eof()
    except (AttributeError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        return
    discarded = 0
    with trio.move_on_after(LINGER_S):
        while discarded < LINGER_BYTES:
            try:
                data = await stream.receive_some(RECV_CHUNK)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                return
            if not data:
                return
            discarded += len(data)


def _refusal(
    method: bytes, values: dict[bytes, bytes], ingress: Ingress, slot: SocketSlot, upgrade: bool
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


async def _respond(conn: h11.Connection, stream: Any, status: int, headers: Any, body: bytes) -> None:
    data = conn.send(h11.Response(status_code=status, headers=headers, reason=asgi.reason(status)))
    if body:
        data = (data or b"") + (conn.send(h11.Data(data=body)) or b"")
    data = (data or b"") + (conn.send(h11.EndOfMessage()) or b"")
    await stream.send_all(data)


__all__ = [
    "GatewayRef",
    "SocketSlot",
    "SocketTracker",
    "handle_stream",
    "ingress_of",
    "max_preauth_per_ip",
    "peer_info",
    "serve_listeners",
]
