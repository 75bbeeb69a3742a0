"""Client hang-ups seen without a watcher task (gateway_trio/hangups.py), over real socket pairs:
the monitor itself, then an ASGI exchange whose client goes away or pipelines its next request."""

from __future__ import annotations

from typing import Any

import h11
import pytest
import trio

from gateway_trio import asgi, hangups

pytestmark = pytest.mark.skipif(not hasattr(__import__("select"), "epoll"), reason="the hang-up monitor needs epoll (Linux)")


def _run(body: Any) -> None:
    async def main() -> None:
        with trio.fail_after(10):
            await body()

    trio.run(main)


def test_a_close_or_reset_is_reported_once_and_data_is_not() -> None:
    async def body() -> None:
        mon = hangups.monitor()
        assert mon is not None and hangups.monitor() is mon  # one per run
        seen: list[str] = []
        a, b = trio.socket.socketpair()
        c, d = trio.socket.socketpair()
        mon.watch(a, lambda: seen.append("a"))
        mon.watch(c, lambda: seen.append("c"))
        await b.send(b"GET /next HTTP/1.1\r\n\r\n")  # a pipelined request is not a hang-up
        await trio.sleep(0.05)
        assert seen == [] and len(mon) == 2
        assert await a.recv(100) == b"GET /next HTTP/1.1\r\n\r\n"  # still there for the next read
        b.close()
        with trio.fail_after(2):
            while not seen:
                await trio.sleep(0.005)
        assert seen == ["a"] and len(mon) == 1
        mon.unwatch(c.fileno())
        d.close()
        await trio.sleep(0.05)
        assert seen == ["a"] and len(mon) == 0
        mon.unwatch(c.fileno())  # idempotent
        for s in (a, c):
            s.close()

    _run(body)


def test_a_socket_closed_while_watched_leaves_no_live_entry() -> None:
    async def body() -> None:
        mon = hangups.monitor()
        assert mon is not None
        seen: list[int] = []
        a, b = trio.socket.socketpair()
        fd = mon.watch(a, lambda: seen.append(1))
        a.close()  # the kernel drops it from the set; the next socket on that number replaces it
        x, y = trio.socket.socketpair()
        assert fd is not None  # x most likely reuses its number: the stale entry is replaced
        mon.watch(x, lambda: seen.append(2))
        y.close()
        with trio.fail_after(2):
            while not seen:
                await trio.sleep(0.005)
        assert seen == [2]
        for s in (b, x):
            s.close()

    _run(body)


async def _exchange(app: Any, requests: bytes) -> tuple[trio.SocketStream, trio.SocketStream, h11.Connection, h11.Request]:
    s1, s2 = trio.socket.socketpair()
    server, client = trio.SocketStream(s1), trio.SocketStream(s2)
    await client.send_all(requests)
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(await server.receive_some(65536))
    request = conn.next_event()
    assert isinstance(request, h11.Request)
    return server, client, conn, request


def test_a_client_that_goes_away_cancels_the_app_at_once_without_a_watcher_task() -> None:
    async def body() -> None:
        cancelled = trio.Event()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            scope["extensions"]["gateway.watch_disconnect"]()
            try:
                await trio.sleep_forever()
            finally:
                cancelled.set()

        server, client, conn, request = await _exchange(app, b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        async with trio.open_nursery() as watchers:
            mon = hangups.monitor()
            assert mon is not None
            result: list[bool] = []

            async def serve() -> None:
                result.append(await asgi.serve_request(app, conn, server, request, last=False, nursery=watchers))

            watchers.start_soon(serve)
            await trio.sleep(0.05)
            assert len(mon) == 1 and not cancelled.is_set()
            assert len(watchers.child_tasks) == 1  # only serve(): no watcher task
            await client.aclose()
            with trio.fail_after(2):
                await cancelled.wait()
        assert result == [False] and len(mon) == 0
        await server.aclose()

    _run(body)


def test_a_pipelined_next_request_waits_unread_and_is_served_after() -> None:
    async def body() -> None:
        go = trio.Event()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            scope["extensions"]["gateway.watch_disconnect"]()
            await go.wait()
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})

        first = b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
        server, client, conn, request = await _exchange(app, first)
        async with trio.open_nursery() as watchers:
            result: list[bool] = []

            async def serve() -> None:
                result.append(await asgi.serve_request(app, conn, server, request, last=False, nursery=watchers))

            watchers.start_soon(serve)
            await trio.sleep(0.02)
            await client.send_all(b"GET /two HTTP/1.1\r\nHost: x\r\n\r\n")  # pipelined while /one waits
            await trio.sleep(0.05)
            assert not result  # the app is not disturbed by the bytes
            go.set()
        assert result == [True]
        answer = await client.receive_some(65536)
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"ok")
        conn.start_next_cycle()
        conn.receive_data(await server.receive_some(65536))
        nxt = conn.next_event()
        assert isinstance(nxt, h11.Request) and nxt.target == b"/two"
        await client.aclose()
        await server.aclose()

    _run(body)
