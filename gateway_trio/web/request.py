"""One HTTP request as the routes see it: head facts, a bounded body, and the ways to answer.

Built from the ASGI scope the listener's adapter (:mod:`gateway_trio.asgi`) passes, including the
gateway's extensions (ingress attribution, peer facts, the disconnect watcher). Every answer gets
the baseline security headers of §1.2 (``Strict-Transport-Security`` when configured); the Control
UI brings its own set.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import trio

from gateway_core.ingress import Ingress
from gateway_core.openai import wire
from gateway_core.openai.wire import Answer, Refused
from gateway_core.server import PeerInfo

from .. import asgi

Headers = list[tuple[bytes, bytes]]
BASELINE: Final[Headers] = [(k.lower().encode(), v.encode()) for k, v in wire.SECURITY_HEADERS]


class Request:
    """The request's head, its body on demand, and :meth:`answer` / :meth:`stream`."""

    def __init__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]], send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        self.method: str = scope["method"]
        raw = scope.get("raw_path") or scope["path"].encode()
        self.path: str = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
        self.query: str = scope.get("query_string", b"").decode("latin-1")
        self.header_list: Headers = list(scope.get("headers") or [])
        named: dict[str, str] = {}
        for k, v in self.header_list:
            name, value = k.decode("latin-1").lower(), v.decode("latin-1")
            named[name] = f"{named[name]}, {value}" if name in named else value
        self.headers = named
        ext = scope.get("extensions") or {}
        self.ingress: Ingress | None = ext.get("gateway.ingress")
        self.peer: PeerInfo = ext.get("gateway.peer") or PeerInfo(client_ip=(scope.get("client") or ("127.0.0.1", 0))[0])
        self.socket_ip: str = ext.get("gateway.socket_ip") or self.peer.client_ip
        self._watch: Callable[..., None] | None = ext.get("gateway.watch_disconnect")
        self.extra_headers: Headers = []
        self.started = False

    @property
    def head(self) -> bool:
        return self.method == "HEAD"

    @property
    def local_direct(self) -> bool:
        return self.ingress.local if self.ingress is not None else self.peer.local

    @property
    def client_ip(self) -> str:
        return self.peer.client_ip

    def declared_length(self) -> int | None:
        raw = self.headers.get("content-length")
        if raw is None:
            return None
        try:
            return int(raw)
        except ValueError:
            return None

    def watch_disconnect(self, on_gone: Callable[[], None] | None = None) -> None:
        """Cancel this request's task the moment its client goes away (long non-streaming routes),
        or call ``on_gone`` instead (a route driving a run in its own task aborts the run)."""
        if self._watch is not None:
            if on_gone is None:
                self._watch()
            else:
                self._watch(on_gone)

    # ------------------------------------------------------------------ body

    async def body(self, limit: int, *, too_large: Answer | None = None, timeout: Answer | None = None) -> bytes:
        """The whole body, at most ``limit`` bytes (checked first from ``Content-Length``, so a client
        waiting for ``100 Continue`` never sends it); refusals raise :class:`Refused` with the route's
        answers (§1.4 defaults: 413 ``Payload too large``, 408 ``Request body timeout``)."""
        declared = self.declared_length()
        if declared is not None and declared > limit:
            raise Refused(too_large or wire.payload_too_large())
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                message = await self._receive()
                if message["type"] == "http.disconnect":
                    raise asgi.ClientDisconnected("client disconnected")
                data = message.get("body", b"")
                if data:
                    size += len(data)
                    if size > limit:
                        raise Refused(too_large or wire.payload_too_large())
                    chunks.append(data)
                if not message.get("more_body", False):
                    return b"".join(chunks)
        except trio.TooSlowError:
            raise Refused(timeout or wire.body_timeout()) from None
        except asgi.BodyTooLarge:
            raise Refused(too_large or wire.payload_too_large()) from None

    # ------------------------------------------------------------------ answers

    def _headers(self, own: tuple[tuple[str, str], ...] | Headers, *, baseline: bool = True) -> Headers:
        out: Headers = list(BASELINE) if baseline else []
        for k, v in own:
            out.append((k.lower().encode() if isinstance(k, str) else k, v.encode() if isinstance(v, str) else v))
        out.extend(self.extra_headers)
        return out

    async def answer(self, answer: Answer, *, baseline: bool = True) -> None:
        """Send one complete answer (HEAD: the head only, with the body's length)."""
        headers = self._headers(answer.headers, baseline=baseline)
        headers.append((b"content-length", str(len(answer.body)).encode()))
        self.started = True
        await self._send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await self._send({"type": "http.response.body", "body": answer.body, "more_body": False})

    async def raw(self, status: int, headers: Headers, body: bytes) -> None:
        """A complete answer whose headers are given whole (the Control UI's own set)."""
        self.started = True
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        await self._send({"type": "http.response.body", "body": body, "more_body": False})

    async def open_stream(self, status: int, own: tuple[tuple[str, str], ...]) -> None:
        """Start a streamed answer (chunked); the head goes out with the first :meth:`write`."""
        self.started = True
        await self._send({"type": "http.response.start", "status": status, "headers": self._headers(own)})

    async def write(self, data: bytes) -> None:
        """One piece of a streamed answer, written now (back-pressure is the socket's)."""
        await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def end(self, data: bytes = b"") -> None:
        await self._send({"type": "http.response.body", "body": data, "more_body": False})


__all__ = ["BASELINE", "Request"]
