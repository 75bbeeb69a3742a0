"""The providers' HTTP/1.1 client (h11 + Trio) against small scripted servers on 127.0.0.1 (trio +
h11, in the same run): keep-alive, stale connections, early exits closing the socket, idle and
connect timeouts, framing, compression, bounded reads, SSE limits, TLS, the pool's bounds and
the error texts the adapters give. Every wait is bounded."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import h11
import pytest
import trio
import trio.testing

from gateway_core.providers.errors import ProviderError
from gateway_trio.providers import _http
from gateway_trio.providers import client as http
from gateway_trio.providers.client import HTTPClient

BOUND = 20.0


class Peer:
    """The server's side of one accepted connection (h11 SERVER over the stream)."""

    def __init__(self, stream: trio.abc.Stream, index: int) -> None:
        self.stream = stream
        self.index = index  # 1 for the first connection the server accepted
        self.h = h11.Connection(h11.SERVER)

    async def request(self) -> tuple[h11.Request, bytes] | None:
        """The next whole request, or ``None`` when the client closed the connection."""
        req: h11.Request | None = None
        body = b""
        while True:
            event = self.h.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await self.stream.receive_some(65536)
                except trio.BrokenResourceError:
                    data = b""
                self.h.receive_data(data)
            elif isinstance(event, h11.Request):
                req = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert req is not None
                return req, body
            elif isinstance(event, h11.ConnectionClosed):
                return None

    async def head(self, status: int = 200, headers: list[tuple[str, str]] | None = None) -> None:
        await self.stream.send_all(self.h.send(h11.Response(status_code=status, headers=headers or [])))

    async def data(self, data: bytes) -> None:
        await self.stream.send_all(self.h.send(h11.Data(data=data)))

    async def end(self) -> None:
        await self.stream.send_all(self.h.send(h11.EndOfMessage()))
        self.h.start_next_cycle()

    async def answer(self, body: bytes = b"ok", status: int = 200, content_type: str = "text/plain") -> None:
        await self.head(status, [("content-type", content_type), ("content-length", str(len(body)))])
        await self.data(body)
        await self.end()

    async def raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def eof(self, within: float = 5.0) -> bool:
        """Whether the client closed its side within ``within`` seconds (nothing else arrives)."""
        with trio.move_on_after(within):
            try:
                while await self.stream.receive_some(65536):
                    pass
            except trio.BrokenResourceError:
                pass
            return True
        return False

    async def close(self) -> None:
        await trio.aclose_forcefully(self.stream)


class Site:
    def __init__(self, port: int, scheme: str = "http") -> None:
        self.port = port
        self.scheme = scheme
        self.peers: list[Peer] = []
        self.requests: list[tuple[int, h11.Request, bytes]] = []  # (connection index, request, body)

    def url(self, path: str = "/v1/x", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"


Handler = Callable[[Peer, Site], Awaitable[None]]


@asynccontextmanager
async def serving(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[Site]:
    site: Site | None = None

    async def on_connection(stream: trio.abc.Stream) -> None:
        assert site is not None
        peer = Peer(stream, len(site.peers) + 1)
        site.peers.append(peer)
        try:
            await handler(peer, site)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away: what some tests do on purpose
        finally:
            await trio.aclose_forcefully(stream)

    async with trio.open_nursery() as nursery:
        if ssl_context is None:
            listeners = await nursery.start(partial(trio.serve_tcp, on_connection, 0, host="127.0.0.1"))
        else:
            listeners = await nursery.start(partial(trio.serve_ssl_over_tcp, on_connection, 0, ssl_context,
                                                    host="127.0.0.1", https_compatible=True))
        sock = listeners[0].transport_listener.socket if ssl_context is not None else listeners[0].socket
        site = Site(sock.getsockname()[1], "https" if ssl_context is not None else "http")
        yield site
        nursery.cancel_scope.cancel()


def serve_each(answer: Callable[[Peer, Site, h11.Request, bytes], Awaitable[None]]) -> Handler:
    """A handler answering every request of a connection with ``answer`` (recording each)."""

    async def handler(peer: Peer, site: Site) -> None:
        while (got := await peer.request()) is not None:
            site.requests.append((peer.index, *got))
            await answer(peer, site, *got)

    return handler


def run(body: Callable[[], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        with trio.fail_after(BOUND):
            return await body()

    return trio.run(main)


async def fetch(client: HTTPClient, url: str, idle_s: float = 5.0, **kw: Any) -> tuple[int, dict[str, str], bytes]:
    async with client.request("POST", url, idle_s=idle_s, **kw) as response:
        return response.status, response.headers, await _http.read_bounded(response, 1 << 30)


async def ok(peer: Peer, site: Site, req: h11.Request, body: bytes) -> None:
    await peer.answer(b"answer to " + body)


# --------------------------------------------------------------------------- requests and keep-alive


def test_the_request_as_the_server_sees_it_and_keep_alive_reuse() -> None:
    async def body() -> None:
        async with serving(serve_each(ok)) as site:
            client = HTTPClient()
            first = await fetch(client, site.url("/v1/chat?x=1"), body=b'{"a":1}',
                                headers={"Content-Type": "application/json", "authorization": "Bearer k"})
            second = await fetch(client, site.url(), body=b"two", headers={"user-agent": "mine"})
            await client.aclose()
        assert first[0] == 200 and first[2] == b'answer to {"a":1}' and second[2] == b"answer to two"
        assert len(site.peers) == 1 and client.opened == 1  # one connection for both
        (_, req, sent), (_, req2, _) = site.requests
        assert (req.method, req.target, sent) == (b"POST", b"/v1/chat?x=1", b'{"a":1}')
        headers = dict(req.headers)
        assert headers[b"host"] == f"127.0.0.1:{site.port}".encode()
        assert headers[b"user-agent"] == b"openclaw-gateway-py" and headers[b"accept-encoding"] == b"identity"
        assert headers[b"content-length"] == b"7" and headers[b"authorization"] == b"Bearer k"
        assert headers[b"content-type"] == b"application/json"
        assert dict(req2.headers)[b"user-agent"] == b"mine"
        assert [n for n, _ in req2.headers].count(b"user-agent") == 1

    run(body)


def test_chunked_content_length_and_until_close_bodies() -> None:
    async def answer(peer: Peer, site: Site, req: h11.Request, body: bytes) -> None:
        if body == b"chunked":
            await peer.head(200, [("transfer-encoding", "chunked")])
            for piece in (b"one ", b"two ", b"three"):
                await peer.data(piece)
            await peer.end()
        elif body == b"length":
            await peer.answer(b"x" * 100_000)
        else:  # HTTP/1.0 style: no framing, the body ends with the connection
            await peer.raw(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the close")
            await peer.close()

    async def body() -> None:
        async with serving(serve_each(answer)) as site:
            client = HTTPClient()
            chunked = await fetch(client, site.url(), body=b"chunked")
            length = await fetch(client, site.url(), body=b"length")
            close = await fetch(client, site.url(), body=b"close")
            after = await fetch(client, site.url(), body=b"length")
            await client.aclose()
        assert chunked[2] == b"one two three" and length[2] == b"x" * 100_000 and close[2] == b"until the close"
        assert after[2] == b"x" * 100_000
        # the first three on one connection; the unframed answer could not leave it reusable
        assert [i for i, _, _ in site.requests] == [1, 1, 1, 2]

    run(body)


def test_headers_are_lower_case_and_repeats_are_joined() -> None:
    async def answer(peer: Peer, site: Site, req: h11.Request, body: bytes) -> None:
        await peer.head(429, [("Retry-After", "7"), ("X-Thing", "a"), ("x-thing", "b"), ("content-length", "0")])
        await peer.end()

    async def body() -> Any:
        async with serving(serve_each(answer)) as site:
            client = HTTPClient()
            async with client.request("POST", site.url(), body=b"") as response:
                return response.status, response.reason, response.headers

    status, reason, headers = run(body)
    assert status == 429 and reason == ""
    assert headers["retry-after"] == "7" and headers["x-thing"] == "a, b"


def test_an_interim_100_continue_is_skipped() -> None:
    async def answer(peer: Peer, site: Site, req: h11.Request, body: bytes) -> None:
        await peer.raw(peer.h.send(h11.InformationalResponse(status_code=100, headers=[])))
        await peer.answer(b"final")

    async def body() -> Any:
        async with serving(serve_each(answer)) as site:
            return await fetch(HTTPClient(), site.url(), body=b"x")

    assert run(body)[:1] == (200,) and run(body)[2] == b"final"


def test_redirects_are_not_followed_and_proxy_variables_are_not_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{s.getsockname()[1]}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, nowhere)  # a proxy that would refuse: the request must go direct

    async def answer(peer: Peer, site: Site, req: h11.Request, body: bytes) -> None:
        await peer.head(307, [("location", site.url("/elsewhere")), ("content-length", "0")])
        await peer.end()

    async def body() -> tuple[int, dict[str, str], int]:
        async with serving(serve_each(answer)) as site:
            status, headers, _ = await fetch(HTTPClient(), site.url(), body=b"x")
            return status, headers, len(site.requests)

    status, headers, seen = run(body)
    assert status == 307 and headers["location"].endswith("/elsewhere") and seen == 1


# --------------------------------------------------------------------------- stale connections


def test_a_pooled_connection_the_server_closed_is_not_used() -> None:
    closed = trio.Event()

    async def handler(peer: Peer, site: Site) -> None:
        got = await peer.request()
        assert got is not None
        site.requests.append((peer.index, *got))
        await peer.answer(b"first" if peer.index == 1 else b"again")
        if peer.index == 1:
            await peer.close()  # idle close, as servers do after their keep-alive timeout
            closed.set()
        else:
            await peer.request()

    async def body() -> None:
        async with serving(handler) as site:
            client = HTTPClient()
            assert (await fetch(client, site.url(), body=b"1"))[2] == b"first"
            await closed.wait()
            key = ("http", "127.0.0.1", site.port)
            with trio.fail_after(5):  # the FIN has reached our socket
                while not client._idle[key][0].sock.is_readable():
                    await trio.sleep(0.01)
            assert client._checkout(key) is None and client.idle_connections() == 0  # dropped at checkout
            assert (await fetch(client, site.url(), body=b"2"))[2] == b"again"
            await client.aclose()
        assert [(i, b) for i, _, b in site.requests] == [(1, b"1"), (2, b"2")]

    run(body)


def test_a_stale_connection_found_after_sending_is_retried_once_on_a_fresh_one() -> None:
    async def handler(peer: Peer, site: Site) -> None:
        while (got := await peer.request()) is not None:
            site.requests.append((peer.index, *got))
            if peer.index == 1 and len(site.requests) == 2:
                await peer.close()  # the race: the server closed just as our request went out
                return
            await peer.answer(b"answer %d" % len(site.requests))

    async def body() -> None:
        async with serving(handler) as site:
            client = HTTPClient()
            assert (await fetch(client, site.url(), body=b"a"))[2] == b"answer 1"
            assert (await fetch(client, site.url(), body=b"b"))[2] == b"answer 3"
            await client.aclose()
        assert [(i, b) for i, _, b in site.requests] == [(1, b"a"), (1, b"b"), (2, b"b")]

    run(body)


def test_no_retry_on_a_fresh_connection_nor_once_an_answer_byte_came() -> None:
    async def handler(peer: Peer, site: Site) -> None:
        while (got := await peer.request()) is not None:
            site.requests.append((peer.index, *got))
            if got[1] == b"fresh":
                await peer.close()
                return
            if got[1] == b"partial":
                await peer.raw(b"HTTP/1.1 200 OK\r\n")
                await peer.close()
                return
            await peer.answer()

    async def body() -> list[Any]:
        async with serving(handler) as site:
            client = HTTPClient()
            errors = []
            for what in (b"fresh", b"warm-up", b"partial"):
                try:
                    await fetch(client, site.url(), body=what)
                except http.HTTPError as exc:
                    errors.append(exc)
            return [errors, [b for _, _, b in site.requests]]

    errors, seen = run(body)
    assert seen == [b"fresh", b"warm-up", b"partial"]  # each sent once
    assert [type(e) for e in errors] == [http.Dropped, http.Dropped]
    assert str(errors[0]) == "server disconnected without sending a response"
    assert "peer" in str(errors[1]) or "closed" in str(errors[1])


# --------------------------------------------------------------------------- leaving early


@pytest.mark.parametrize("how", ["break", "exception", "cancel"])
def test_leaving_early_closes_the_socket_at_once(how: str) -> None:
    saw_eof: list[bool] = []

    async def answer(peer: Peer, site: Site, req: h11.Request, body: bytes) -> None:
        await peer.head(200, [("content-type", "text/event-stream"), ("transfer-encoding", "chunked")])
        await peer.data(b"data: 1\n\n")
        saw_eof.append(await peer.eof(within=5.0))  # no more data: the only way out is the client's close

    async def body() -> HTTPClient:
        async with serving(serve_each(answer)) as site:
            client = HTTPClient()
            with trio.CancelScope() as scope:
                try:
                    async with client.request("POST", site.url(), body=b"x", idle_s=30) as response:
                        async for _ in response:
                            if how == "break":
                                break
                            if how == "exception":
                                raise KeyError("consumer")
                            scope.cancel()
                            await trio.sleep(1)
                except KeyError:
                    pass
            with trio.fail_after(5):
                while not saw_eof:
                    await trio.sleep(0.01)
            return client

    client = run(body)
    assert saw_eof == [True] and client.idle_connections() == 0


def test_a_finished_answer_returns_the_connection_before_the_async_with_ends() -> None:
    async def body() -> int:
        async with serving(serve_each(ok)) as site:
            client = HTTPClient()
            async with client.request("POST", site.url(), body=b"x") as response:
                while await response.receive():
                    pass
                assert response.complete
                return client.idle_connections()

    assert run(body) == 1


# --------------------------------------------------------------------------- timeouts and failures


def test_idle_timeout_waiting_for_the_head_and_mid_body() -> None:
    async def answer(peer: Peer, site: Site, req: h11.Request, body: bytes) -> None:
        if body == b"mid":
            await peer.head(200, [("transfer-encoding", "chunked")])
            await peer.data(b"first")
        await peer.eof(within=10)

    async def body() -> list[Any]:
        async with serving(serve_each(answer)) as site:
            client = HTTPClient()
            out: list[Any] = []
            t0 = trio.current_time()
            with pytest.raises(http.IdleTimeout):
                await fetch(client, site.url(), body=b"head", idle_s=0.3)
            out.append(trio.current_time() - t0)
            async with client.request("POST", site.url(), body=b"mid", idle_s=0.3) as response:
                out.append(await response.receive())
                with pytest.raises(http.IdleTimeout):
                    await response.receive()
            return out

    waited, first = run(body)
    assert waited >= 0.3 and first == b"first"


def test_connect_refused_and_invalid_urls() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def body() -> None:
        client = HTTPClient()
        with pytest.raises(http.ConnectFailed) as err:
            await fetch(client, f"http://127.0.0.1:{port}/v1")
        assert str(err.value) == f"all attempts to connect to 127.0.0.1:{port} failed"
        for bad, text in (("ftp://host/x", "unsupported protocol 'ftp://'"), ("http:///x", "no host"),
                          ("http://h:99999/x", "Invalid URL"), ("127.0.0.1:80/x", "protocol")):
            with pytest.raises(http.InvalidURL) as err:
                await fetch(client, bad)
            assert text in str(err.value)
        with pytest.raises(http.InvalidRequest):
            await fetch(client, f"http://127.0.0.1:{port}/v1", headers={"x-bad": "a\r\nb"})

    run(body)


def test_the_connect_is_bounded_tls_handshake_included() -> None:
    async def silent(peer: Peer, site: Site) -> None:
        await peer.eof(within=10)  # accepts, never speaks TLS

    async def body() -> float:
        async with serving(silent) as site:
            t0 = trio.current_time()
            with pytest.raises(http.ConnectTimeout):
                await fetch(HTTPClient(), f"https://127.0.0.1:{site.port}/v1", idle_s=0.3)
            return trio.current_time() - t0

    assert run(body) >= 0.3


def test_garbage_instead_of_http_is_a_dropped_connection() -> None:
    async def answer(peer: Peer, site: Site, req: h11.Request, body: bytes) -> None:
        await peer.raw(b"SSH-2.0-OpenSSH\r\n\r\n")

    async def body() -> None:
        async with serving(serve_each(answer)) as site:
            with pytest.raises(http.Dropped):
                await fetch(HTTPClient(), site.url(), body=b"x")

    run(body)


def test_a_reset_mid_body_is_a_network_failure() -> None:
    async def answer(peer: Peer, site: Site, req: h11.Request, body: bytes) -> None:
        await peer.head(200, [("content-length", "100")])
        await peer.data(b"partial")
        sock = peer.stream.socket  # type: ignore[attr-defined]
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        await peer.close()  # RST

    async def body() -> None:
        async with (
            serving(serve_each(answer)) as site,
            HTTPClient().request("POST", site.url(), body=b"x") as response,
        ):
                with pytest.raises((http.NetworkFailure, http.Dropped)):
                    while await response.receive():
                        pass

    run(body)


# --------------------------------------------------------------------------- compression


def _gzip(data: bytes) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    return z.compress(data) + z.flush()


def _raw_deflate(data: bytes) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return z.compress(data) + z.flush()


@pytest.mark.parametrize(("encoding", "encode"), [("gzip", _gzip), ("deflate", zlib.compress),
                                                  ("deflate", _raw_deflate), ("identity", bytes)])
def test_compressed_bodies_are_inflated_in_bounded_pieces(encoding: str, encode: Callable[[bytes], bytes]) -> None:
    plain = b"data: " + b"z" * 2_000_000 + b"\n\n"

    async def answer(peer: Peer, site: Site, req: h11.Request, body: bytes) -> None:
        packed = encode(plain)
        await peer.head(200, [("content-encoding", encoding), ("transfer-encoding", "chunked")])
        for i in range(0, len(packed), 1000):
            await peer.data(packed[i:i + 1000])
        await peer.end()

    async def body() -> list[bytes]:
        async with (
            serving(serve_each(answer)) as site,
            HTTPClient().request("POST", site.url(), body=b"x") as response,
        ):
                return [piece async for piece in response]

    pieces = run(body)
    assert b"".join(pieces) == plain
    if encoding != "identity":
        assert max(map(len, pieces)) <= http.MAX_INFLATE


@pytest.mark.parametrize(("encoding", "data"), [("br", b"\x0b\x02\x80hi\x03"), ("gzip", b"not gzip at all")])
def test_unsupported_or_corrupt_encodings_fail(encoding: str, data: bytes) -> None:
    async def answer(peer: Peer, site: Site, req: h11.Request, body: bytes) -> None:
        await peer.head(200, [("content-encoding", encoding), ("content-length", str(len(data)))])
        await peer.data(data)
        await peer.end()

    async def body() -> None:
        async with serving(serve_each(answer)) as site:
            with pytest.raises(http.DecodingFailed):
                await fetch(HTTPClient(), site.url(), body=b"x")

    run(body)


# --------------------------------------------------------------------------- bounded reads, errors, SSE


def test_error_bodies_are_read_bounded_and_the_connection_not_kept() -> None:
    huge = b"<html>" + b"e" * 500_000

    async def answer(peer: Peer, site: Site, req: h11.Request, body: bytes) -> None:
        await peer.head(503, [("content-type", "text/html"), ("content-length", str(len(huge)))])
        await peer.data(huge)  # blocks once the client stops reading; ends when it closes
        await peer.end()

    async def body() -> tuple[ProviderError, HTTPClient]:
        async with serving(serve_each(answer)) as site:
            client = HTTPClient()
            async with client.request("POST", site.url(), body=b"x") as response:
                with pytest.raises(ProviderError) as err:
                    await _http.raise_for_status(response)
            return err.value, client

    err, client = run(body)
    assert err.kind == "server_error" and err.status == 503 and err.message.startswith("<html>eee")
    assert len(err.message) <= 1000 and client.idle_connections() == 0
    assert len(huge) > _http.MAX_ERROR_BODY


def test_read_bounded_stops_at_the_limit() -> None:
    async def body() -> bytes:
        async def answer(peer: Peer, site: Site, req: h11.Request, body: bytes) -> None:
            await peer.answer(b"y" * 300_000)

        async with (
            serving(serve_each(answer)) as site,
            HTTPClient().request("POST", site.url(), body=b"x") as response,
        ):
                return await _http.read_bounded(response, 1000)

    assert run(body) == b"y" * 1000


def _sse_events(response: http.Response) -> _http.SSEEvents:
    return _http.SSEEvents(response, parse=lambda obj: [obj], finish=lambda: [], is_last=lambda obj: False,
                           idle_s=5.0, url="http://up/v1", label=lambda err: err)


def test_sse_events_over_the_client_and_an_oversized_line() -> None:
    async def answer(peer: Peer, site: Site, req: h11.Request, body: bytes) -> None:
        await peer.head(200, [("content-type", "text/event-stream"), ("transfer-encoding", "chunked")])
        if body == b"big":
            await peer.data(b"data: " + b"x" * (5 * 1024 * 1024))
            await peer.eof(within=10)
            return
        await peer.data(b': hello\r\n\r\ndata: {"n":1}\r\n\r\ndata: {"n":')
        await peer.data(b'2,"t":"\xc3\xa9"}\n\ndata: [DONE]\n\n')
        await peer.end()

    async def body() -> tuple[list[Any], ProviderError, int]:
        async with serving(serve_each(answer)) as site:
            client = HTTPClient()
            async with client.request("POST", site.url(), body=b"ok") as response:
                got = [e async for e in _sse_events(response)]
            idle = client.idle_connections()  # [DONE] drained the end of the body: reused
            async with client.request("POST", site.url(), body=b"big") as response:
                with pytest.raises(ProviderError) as err:
                    async for _ in _sse_events(response):
                        pass
            return got, err.value, idle

    got, err, idle = run(body)
    assert got == [{"n": 1}, {"n": 2, "t": "é"}] and idle == 1
    assert err.kind == "protocol" and err.message.startswith("unreadable answer from http://up/v1: event stream line")


def test_json_bodies_encode_like_the_compact_stdlib_form_and_decode_leniently() -> None:
    import json

    body = {"model": "m", "messages": [{"role": "user", "content": "héllo ✓ \u2028 \"q\" \\"}], "temperature": 0.7,
            "top_p": 1.0, "n": 3, "stop": None, "flag": True}
    assert _http.encode_json(body) == json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    assert json.loads(_http.encode_json({"x": "\ud800"})) == {"x": "\ud800"}  # a lone surrogate: escaped
    assert _http.decode_json(b'{"a":[1,2.5,"\\u00e9"]}') == {"a": [1, 2.5, "é"]}
    assert _http.decode_json('{"a": NaN}')["a"] != _http.decode_json('{"a": NaN}')["a"]  # the stdlib's NaN
    with pytest.raises(ValueError):
        _http.decode_json(b"{nope")


@pytest.mark.parametrize(
    ("exc", "kind", "message"),
    [
        (http.ConnectTimeout("x"), "network", "connect timeout reaching http://up/v1"),
        (http.ConnectFailed("boom"), "network", "cannot connect to http://up/v1: boom"),
        (http.IdleTimeout("x"), "timeout", "LLM idle timeout (2.5s): no response from model"),
        (http.Dropped("cut"), "network", "connection to the model provider dropped: cut"),
        (http.NetworkFailure("reset"), "network", "network error talking to http://up/v1: reset"),
        (http.InvalidURL("no"), "config", "bad provider baseUrl 'http://up/v1': no"),
        (http.InvalidRequest("hdr"), "config", "bad request to http://up/v1: hdr"),
        (http.DecodingFailed("zip"), "protocol", "unreadable answer from http://up/v1: zip"),
        (ValueError("json"), "protocol", "unreadable answer from http://up/v1: json"),
    ],
)
def test_map_exception(exc: Exception, kind: str, message: str) -> None:
    err = _http.map_exception(exc, 2.5, "http://up/v1")
    assert (err.kind, err.message) == (kind, message)


# --------------------------------------------------------------------------- the pool's bounds


def test_idle_connections_are_capped_and_expire() -> None:
    gate = trio.Event()

    async def answer(peer: Peer, site: Site, req: h11.Request, body: bytes) -> None:
        if body == b"hold":
            await gate.wait()
        await peer.answer()

    async def body() -> tuple[int, int, int]:
        async with serving(serve_each(answer)) as site:
            client = HTTPClient(max_idle=2, idle_expiry_s=0.05)
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(partial(fetch, client, site.url(), body=b"hold"))
                with trio.fail_after(5):
                    while len(site.requests) < 3:
                        await trio.sleep(0.01)
                gate.set()
            kept = client.idle_connections()
            await trio.sleep(0.1)  # past the expiry
            await fetch(client, site.url(), body=b"after")
            return kept, client.opened, len(site.peers)

    kept, opened, peers = run(body)
    assert kept == 2 and opened == 4 and peers == 4  # the expired connections were not reused


def test_a_full_pool_waits_for_a_slot_within_the_idle_timeout() -> None:
    gate = trio.Event()

    async def answer(peer: Peer, site: Site, req: h11.Request, body: bytes) -> None:
        if body == b"hold":
            await gate.wait()
        await peer.answer(body)

    async def body() -> list[Any]:
        async with serving(serve_each(answer)) as site:
            client = HTTPClient(max_connections=1)
            out: list[Any] = []
            async with trio.open_nursery() as nursery:
                async def hold() -> None:
                    out.append((await fetch(client, site.url(), body=b"hold"))[2])

                nursery.start_soon(hold)
                with trio.fail_after(5):
                    while not site.requests:
                        await trio.sleep(0.01)
                with pytest.raises(http.IdleTimeout):  # no slot within 0.2 s
                    await fetch(client, site.url(), body=b"late", idle_s=0.2)

                async def wait_then_open() -> None:
                    out.append((await fetch(client, site.url(), body=b"queued"))[2])

                nursery.start_soon(wait_then_open)
                await trio.testing.wait_all_tasks_blocked()
                gate.set()  # the held answer ends: its slot goes to the waiting request
            return out

    assert run(body) == [b"hold", b"queued"]


def test_aclose_closes_idle_connections_and_refuses_new_ones() -> None:
    async def body() -> bool:
        async with serving(serve_each(ok)) as site:
            client = HTTPClient()
            await fetch(client, site.url(), body=b"x")
            await client.aclose()
            closed = await site.peers[0].eof(within=5)
            with pytest.raises(http.NetworkFailure):
                await fetch(client, site.url(), body=b"y")
            return closed

    assert run(body)


# --------------------------------------------------------------------------- TLS


def _certs(tmp_path: Path, names: list[str]) -> tuple[Path, ssl.SSLContext]:
    """A throwaway CA (its PEM path) and a server context whose certificate it signed for ``names``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path = tmp_path / "ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    return ca_path, server


def test_https_with_the_default_context_honouring_ssl_cert_file(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    ca, server = _certs(tmp_path, ["127.0.0.1"])
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    monkeypatch.setattr(http, "_ssl_context", None)  # built afresh, the production way

    async def body() -> tuple[list[bytes], int]:
        async with serving(serve_each(ok), ssl_context=server) as site:
            client = HTTPClient()
            got = [(await fetch(client, site.url(), body=b"tls %d" % i))[2] for i in range(2)]
            await client.aclose()
            return got, client.opened

    got, opened = run(body)
    assert got == [b"answer to tls 0", b"answer to tls 1"] and opened == 1  # keep-alive over TLS


def test_https_refuses_an_untrusted_certificate_and_a_wrong_host_name(tmp_path: Path) -> None:
    ca, server = _certs(tmp_path, ["127.0.0.1"])
    (tmp_path / "other").mkdir()
    ca2, other = _certs(tmp_path / "other", ["wrong.example"])
    trusting = ssl.create_default_context(cafile=str(ca))
    trusting.load_verify_locations(str(ca2))

    async def body() -> list[str]:
        out = []
        async with serving(serve_each(ok), ssl_context=server) as site:
            with pytest.raises(http.ConnectFailed) as err:
                await fetch(HTTPClient(ssl_context=ssl.create_default_context()), site.url(), body=b"x")
            out.append(str(err.value))
        async with serving(serve_each(ok), ssl_context=other) as site:
            with pytest.raises(http.ConnectFailed) as err:
                await fetch(HTTPClient(ssl_context=trusting), site.url(), body=b"x")
            out.append(str(err.value))
        return out

    untrusted, mismatch = run(body)
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted
    assert "CERTIFICATE_VERIFY_FAILED" in mismatch and "mismatch" in mismatch.lower()
