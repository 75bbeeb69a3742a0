"""The port's bounds in memory, on Trio's virtual clock (no sockets, no sleeping): head and body
deadlines, the per-IP pre-auth cap, and the file-descriptor budget's eviction order (issue 10
item 3). The process-level versions are in tests/test_reliability.py."""

from __future__ import annotations

import trio
import trio.testing

from gateway_trio import listener as wsserver
from gateway_trio.listener import GatewayRef, SocketTracker, handle_stream


async def _body_reader(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
    """An ASGI app that reads the whole body before answering (as the POST routes do)."""
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def _serve_one(head: bytes, tracker: SocketTracker, ip: str = "127.0.0.9", web=None) -> tuple[float, bytes]:  # type: ignore[no-untyped-def]
    """Serve one connection that sends ``head`` and then nothing; (when it was closed, what came back)."""
    client, server = trio.testing.memory_stream_pair()
    slot = tracker.accept(ip, trio.current_time())
    assert slot is not None
    got = b""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(handle_stream, GatewayRef(), server, slot, web)
        if head:
            await client.send_all(head)
        with trio.fail_after(600):
            while True:
                data = await client.receive_some()
                if not data:
                    break
                got += data
        closed_at = trio.current_time()
    assert slot not in tracker.open  # released on the way out
    return closed_at, got


def _run(fn) -> None:  # type: ignore[no-untyped-def]
    trio.run(fn, clock=trio.testing.MockClock(autojump_threshold=0))


def test_silent_socket_is_closed_at_the_head_deadline() -> None:
    async def main() -> None:
        closed_at, got = await _serve_one(b"", SocketTracker(fd_limit=1024))
        assert closed_at == wsserver.HEAD_TIMEOUT_S and got == b""

    _run(main)


def test_dribbling_head_is_closed_at_the_head_deadline() -> None:
    async def main() -> None:
        closed_at, _ = await _serve_one(b"GET /readyz HTTP/1.1\r\nHost: x\r\n", SocketTracker(fd_limit=1024))
        assert closed_at == wsserver.HEAD_TIMEOUT_S

    _run(main)


def test_stalled_body_is_answered_408_at_the_body_deadline() -> None:
    async def main() -> None:
        head = b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc"
        closed_at, got = await _serve_one(head, SocketTracker(fd_limit=1024), web=_body_reader)
        assert closed_at == wsserver.BODY_TIMEOUT_S
        assert got.startswith(b"HTTP/1.1 408 ") and got.endswith(b'{"error":{"message":"Request body timeout","type":"invalid_request_error"}}')

    _run(main)


def test_oversized_body_is_refused_413() -> None:
    async def main() -> None:
        client, server = trio.testing.memory_stream_pair()
        tracker = SocketTracker(fd_limit=1024)
        slot = tracker.accept("127.0.0.9", trio.current_time())
        assert slot is not None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(handle_stream, GatewayRef(), server, slot, _body_reader)
            size = wsserver.MAX_BODY_BYTES + 10
            await client.send_all(f"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode())
            chunk = b"x" * 65536
            got = b""
            with trio.move_on_after(60):
                for _ in range(size // len(chunk) + 1):
                    await client.send_all(chunk)
            while not got.endswith(b"Payload Too Large"):
                data = await client.receive_some()
                assert data, got
                got += data
        assert got.startswith(b"HTTP/1.1 413 ")

    _run(main)


def test_over_the_per_ip_cap_answers_503_but_liveness() -> None:
    async def main() -> None:
        tracker = SocketTracker(per_ip=1, fd_limit=1024)
        first = tracker.accept("127.0.0.9", 0.0)
        assert first is not None and not first.over_cap
        _, got = await _serve_one(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", tracker)
        assert got.startswith(b"HTTP/1.1 503 ") and got.endswith(b"Too many unauthenticated sockets")
        _, got = await _serve_one(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", tracker)
        assert got.startswith(b"HTTP/1.1 200 ")
        closed_at, got = await _serve_one(b"", tracker)  # over the cap and silent: a short head deadline
        assert got == b"" and closed_at - trio.current_time() <= 0
        tracker.release(first)
        _, got = await _serve_one(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", tracker)
        assert got.startswith(b"HTTP/1.1 503 ")  # no gateway here: draining, but not the cap any more
        assert b"Too many" not in got

    _run(main)


def test_over_cap_head_deadline_is_short() -> None:
    async def main() -> None:
        tracker = SocketTracker(per_ip=1, fd_limit=1024)
        assert tracker.accept("127.0.0.9", 0.0) is not None
        start = trio.current_time()
        closed_at, _ = await _serve_one(b"", tracker)
        assert closed_at - start == wsserver.OVER_CAP_HEAD_TIMEOUT_S

    _run(main)


def test_budget_evicts_the_oldest_preauth_socket_else_refuses() -> None:
    lines: list[str] = []
    tracker = SocketTracker(fd_limit=20, reserve=4, per_ip=100, log=lines.append)
    assert tracker.budget == 16
    slots = [tracker.accept(f"10.0.0.{i}", 0.0) for i in range(16)]
    assert all(s is not None for s in slots)
    slots[0].admitted()  # type: ignore[union-attr]  # an admitted client is never dropped
    assert tracker.accept("10.0.1.1", 0.1) is None  # the oldest pre-auth ones are too young
    got = tracker.accept("10.0.1.2", 1.0)
    assert got is not None
    assert slots[1].evicted and not slots[0].evicted  # type: ignore[union-attr]
    assert tracker.preauth_by_ip.get("10.0.0.1") is None
    assert len(lines) == 1 and "file descriptor budget reached" in lines[0]
    for s in slots:
        tracker.release(s)  # type: ignore[arg-type]
    assert tracker.accept("10.0.1.3", 2.0) is not None
    assert len(lines) == 2 and "available again" in lines[1]
