"""Live mode: the same transcripts over real WebSockets against any gateway URL (Trio).

Each transcript connection gets a trio-websocket client and a reader task that files every
message (and the close) into that connection's queue with its arrival time. Waiting is bounded by
each step's ``within_ms``; nothing waits forever.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection, connect_websocket_url

from .runner import Item

MAX_MESSAGE = 64 * 1024 * 1024


class _Conn:
    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.items: deque[Item] = deque()
        self.changed = trio.Event()
        self.closed = False


class LiveDriver:
    """Driver over real sockets; create it with :func:`open_live_driver` (it owns a nursery)."""

    name = "live"

    def __init__(self, url: str, nursery: trio.Nursery) -> None:
        self.url = url
        self.conns: dict[str, _Conn] = {}
        self._t0 = trio.current_time()
        self._nursery = nursery

    def now_ms(self) -> float:
        return (trio.current_time() - self._t0) * 1000

    async def open(self, conn: str, *, peer: dict[str, Any] | None, origin: str | None) -> None:
        headers = [("Origin", origin)] if origin else None
        try:
            with trio.fail_after(10):
                ws = await connect_websocket_url(
                    self._nursery,
                    self.url,
                    extra_headers=headers,
                    max_message_size=MAX_MESSAGE,
                    message_queue_size=4096,
                )
        except (HandshakeError, OSError, trio.TooSlowError) as exc:
            raise ConnectionError(f"cannot open a WebSocket to {self.url}: {exc}") from None
        c = _Conn(ws)
        self.conns[conn] = c
        self._nursery.start_soon(self._reader, c)

    async def _reader(self, c: _Conn) -> None:
        while True:
            try:
                message = await c.ws.get_message()
            except ConnectionClosed as exc:
                reason = exc.reason
                c.items.append(Item("close", self.now_ms(), code=reason.code, reason=reason.reason or ""))
                c.closed = True
                c.changed.set()
                return
            try:
                frame = json.loads(message)
            except (json.JSONDecodeError, UnicodeDecodeError):
                frame = {"$unparsable": message if isinstance(message, str) else repr(message)}
            c.items.append(Item("frame", self.now_ms(), frame=frame))
            c.changed.set()

    async def send(self, conn: str, data: str | bytes) -> None:
        c = self.conns[conn]
        try:
            await c.ws.send_message(data)
        except ConnectionClosed:
            pass  # the close is filed by the reader; the next expectation sees it

    async def send_burst(self, conn: str, items: list[str | bytes]) -> None:
        for data in items:
            await self.send(conn, data)

    async def next_item(self, conn: str, timeout_ms: float) -> Item | None:
        c = self.conns[conn]
        with trio.move_on_after(max(0.0, timeout_ms) / 1000):
            while not c.items:
                c.changed = trio.Event()
                await c.changed.wait()
        return c.items.popleft() if c.items else None

    async def wait(self, ms: float) -> None:
        await trio.sleep(ms / 1000)

    async def close(self, conn: str, code: int, reason: str) -> None:
        c = self.conns[conn]
        with trio.move_on_after(2):
            await c.ws.aclose(code, reason or None)

    async def gateway(self, action: dict[str, Any]) -> None:
        raise RuntimeError("live mode cannot control the gateway (cases needing it are skipped)")

    async def aclose(self) -> None:
        for c in self.conns.values():
            if not c.closed:
                with trio.move_on_after(1):
                    await c.ws.aclose()


@asynccontextmanager
async def open_live_driver(url: str) -> AsyncIterator[LiveDriver]:
    """A :class:`LiveDriver` whose connections all close when the block exits."""
    async with trio.open_nursery() as nursery:
        driver = LiveDriver(url, nursery)
        try:
            yield driver
        finally:
            with trio.CancelScope(shield=True):
                await driver.aclose()
            nursery.cancel_scope.cancel()


__all__ = ["LiveDriver", "open_live_driver"]
