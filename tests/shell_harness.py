"""An in-process :class:`gateway_trio.app.Gateway` with sessions on memory transports.

No sockets and no sleeping: a :class:`MemoryTransport` collects what the session writes (our own
unmasked server frames), :func:`client` runs a session's handshake by feeding it frames directly.
Used for the application's tables, broadcasts and storage errors (tests/test_gateway_app.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
from rawws import connect_frame

from gateway_core import PeerInfo
from gateway_trio.app import Gateway
from gateway_trio.runtime import FileLog, GatewaySettings, Paths
from gateway_trio.session import Session
from gateway_trio.wsserver import text_frame_parts

TOKEN = "T"


class MemoryTransport:
    """A session's transport that keeps every byte written (and takes everything at once)."""

    def __init__(self) -> None:
        self.sent = bytearray()
        self.closed: tuple[int, str] | None = None
        self.aborted = False
        self.busy = False
        self._read = 0
        #: Set on every write (and replaced by the waiter): lets a test wait without polling.
        self.written = trio.Event()

    frame_text = staticmethod(text_frame_parts)

    def ping_frame(self) -> bytes:
        return b"\x89\x00"

    def try_write(self, data: bytes) -> int:
        self.sent += data
        self.written.set()
        return len(data)

    async def send_batch(self, items: list[bytes]) -> None:
        self.sent += b"".join(items)
        self.written.set()

    async def send_close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def abort(self) -> None:
        self.aborted = True

    def frames(self) -> Iterator[dict[str, Any]]:
        """Decode the text frames written since the last call (server frames are unmasked)."""
        buf = bytes(self.sent)
        i = self._read
        while i + 2 <= len(buf):
            opcode, n = buf[i] & 0x0F, buf[i + 1] & 0x7F
            j = i + 2
            if n == 126:
                n, j = int.from_bytes(buf[j : j + 2], "big"), j + 2
            elif n == 127:
                n, j = int.from_bytes(buf[j : j + 8], "big"), j + 8
            if j + n > len(buf):
                break
            if opcode == 1:
                yield json.loads(buf[j : j + n])
            i = j + n
        self._read = i


def make_gateway(root: Path, config: dict[str, Any] | None = None, *, bind: str = "loopback") -> Gateway:
    state = root / "state"
    state.mkdir(parents=True, exist_ok=True)
    paths = Paths(profile=None, state_dir=state, config_path=root / "openclaw.json")
    settings = GatewaySettings(
        paths=paths,
        config=config or {},
        port=18789,
        port_source="default",
        bind=bind,
        hosts=["127.0.0.1"],
        auth_mode="token",
        token=TOKEN,
        password=None,
    )
    gw = Gateway(settings, FileLog(root / "gw.log", console_enabled=False), port=18789)
    gw.services.phase = gw.services.phase.ACCEPTING
    return gw


@asynccontextmanager
async def serving(gw: Gateway) -> AsyncIterator[Gateway]:
    """``gw`` with its own tasks running (scheduler, ticks, spawned runs, the session store)."""
    async with trio.open_nursery() as nursery:
        await nursery.start(gw.serve)
        try:
            yield gw
        finally:
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def asgi_http(gw: Gateway) -> AsyncIterator[Any]:
    """``gw`` serving, and an ``httpx.AsyncClient`` on its HTTP routes in memory (its ASGI app),
    as a client on 127.0.0.1 sees them."""
    import httpx

    from gateway_trio.listener import GatewayRef
    from gateway_trio.web import WebApp

    ref = GatewayRef()
    ref.gateway = gw
    transport = httpx.ASGITransport(app=WebApp(ref), client=("127.0.0.1", 40000))
    async with serving(gw), httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:18789") as http:
        yield http


async def until(predicate: Any, timeout: float = 60.0) -> None:
    """Wait (bounded) until ``predicate()`` holds: work that goes through worker threads (the
    session store) is not finished by ``settle`` alone."""
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


async def next_frame(transport: MemoryTransport, pred: Any, timeout: float = 60.0) -> dict[str, Any]:
    """The first frame written from now on that matches ``pred`` (waits on writes, never polls,
    so it also works on a MockClock)."""
    with trio.fail_after(timeout):
        while True:
            for frame in transport.frames():
                if pred(frame):
                    return frame
            transport.written = trio.Event()
            await transport.written.wait()


def connect(client_id: str = "cli", mode: str = "cli", scopes: list[str] | None = None) -> str:
    return json.dumps(connect_frame(TOKEN, client_id=client_id, mode=mode, scopes=scopes))


@asynccontextmanager
async def client(gw: Gateway, *, client_id: str = "cli", mode: str = "cli", scopes: list[str] | None = None,
                 peer: PeerInfo | None = None) -> AsyncIterator[tuple[Session, MemoryTransport]]:  # fmt: skip
    """An admitted session (hello-ok sent) whose task runs until the block ends."""
    transport = MemoryTransport()
    session = Session(gw, peer or PeerInfo(host="127.0.0.1:18789"), transport)
    stop = trio.Event()

    async def reader(s: Session) -> None:
        s.feed_text(connect(client_id, mode, scopes))
        await stop.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.run, reader)
        hello: list[dict[str, Any]] = []
        for _ in range(100):
            await trio.sleep(0)
            hello = [f for f in transport.frames() if f.get("id") == "c1"]
            if hello:
                break
        assert hello and hello[0]["ok"], hello
        try:
            yield session, transport
        finally:
            stop.set()
            session.feed_closed(1000)


def request(session: Session, rid: str, method: str, params: Any = None) -> None:
    frame: dict[str, Any] = {"type": "req", "id": rid, "method": method}
    if params is not None:
        frame["params"] = params
    session.feed_text(json.dumps(frame))


async def settle(rounds: int = 50) -> None:
    """Let every ready task run (the writer, async handlers) without sleeping on the clock."""
    for _ in range(rounds):
        await trio.sleep(0)
