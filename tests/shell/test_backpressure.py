"""Back-pressure from an SSE client to the upstream: a reader that stops holds the run, not memory.

An in-process gateway (tests/shell_harness.py) with tests/upstream.py's scripted upstream over
real TCP, called as an ASGI application whose ``send`` hands each message to the test through an
unbuffered Trio channel: the route's write waits until the test reads, as it waits for a socket
that is not drained. The client reads the stream's head, then stops: the run must stop pulling the
upstream (the watch's buffer is full and the host waits for it), what the gateway took from the
upstream stays within the watch's bound, and the upstream's own writes block. Then the client reads
on and gets the whole answer, in order; or it goes away and the upstream request is closed at once.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
from agent_gateways import observed_config
from shell_harness import TOKEN, make_gateway, serving
from upstream import ScriptedUpstream, Text, last_user_text

from gateway_trio.asgi import ClientDisconnected
from gateway_trio.listener import GatewayRef
from gateway_trio.turns import BUFFER_CHARS, RunWatch
from gateway_trio.web import WebApp

#: 3,000 deltas of 2,000 characters: 6 MB of text, about 6.4 MB of upstream SSE.
DELTAS, PIECE = 3000, 2000
#: The upstream's socket send buffer: with it the kernel holds little of what the gateway does not read.
SNDBUF = 64 * 1024


class Client:
    """One streamed request to the ASGI app; the test reads its messages when it wants to."""

    def __init__(self, app: WebApp, body: bytes) -> None:
        self.app = app
        self.body = body
        self.out_send, self.out = trio.open_memory_channel[dict[str, Any]](0)
        self.gone = trio.Event()
        self.received = b""

    async def receive(self) -> dict[str, Any]:
        if self.body:
            body, self.body = self.body, b""
            return {"type": "http.request", "body": body, "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        try:
            await self.out_send.send(message)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ClientDisconnected("client went away") from None

    async def run(self) -> None:
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
            "query_string": b"", "root_path": "", "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 18789),
            "headers": [(b"host", b"127.0.0.1:18789"), (b"authorization", f"Bearer {TOKEN}".encode()),
                        (b"content-type", b"application/json"), (b"content-length", str(len(self.body)).encode())],
            "extensions": {},
        }
        try:
            await self.app(scope, self.receive, self.send)
        except ClientDisconnected:  # as the listener does: a client that left is no failure
            assert self.gone.is_set()
        finally:
            self.out_send.close()

    async def read(self, until: bytes | None = None) -> None:
        """Read body messages until ``until`` was received (``None``: to the end)."""
        async for message in self.out:
            if message["type"] == "http.response.start":
                assert message["status"] == 200
                continue
            self.received += message.get("body", b"")
            if until is not None and until in self.received:
                return
            if not message.get("more_body", False):
                return

    def leave(self) -> None:
        self.gone.set()
        self.out.close()

    def text(self) -> str:
        frames = [f for f in self.received.decode().split("\n\n") if f]
        assert frames[-1] == "data: [DONE]"
        chunks = [json.loads(f.removeprefix("data: ")) for f in frames[:-1]]
        return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])


def answer(marker: str) -> str:
    return "".join(f"{marker}{i:06d}".ljust(PIECE - 1, ".") + " " for i in range(DELTAS))


@asynccontextmanager
async def gateway(tmp_path: Path, up: ScriptedUpstream) -> AsyncIterator[tuple[Any, WebApp]]:
    gw = make_gateway(tmp_path, observed_config(18789, up.base_url))
    ref = GatewayRef()
    ref.gateway = gw
    async with serving(gw):
        yield gw, WebApp(ref)


def body(said: str) -> bytes:
    return json.dumps({"model": "openclaw", "stream": True, "messages": [{"role": "user", "content": said}]}).encode()


async def held_watch(gw: Any) -> RunWatch:
    """The one watched run, once the host waited for its route (bounded)."""
    with trio.fail_after(30):
        while not gw.watches.watching():
            await trio.sleep(0.01)
        (watch,) = gw.watches.watching()
        await watch.held.wait()
    return watch


async def upstream_settled(up: ScriptedUpstream, n: int) -> tuple[int, int]:
    """The upstream's progress once it stopped moving (its writes block), bounded."""
    last = (-1, -1)
    with trio.fail_after(20):
        while (now := up.progress(n)) != last:
            last = now
            await trio.sleep(0.2)
    return last


def request_n(up: ScriptedUpstream, marker: str) -> int:
    (rec,) = [r for r in up.chat_requests() if isinstance(r.body, dict) and marker in last_user_text(r.body)]
    return rec.n


def test_a_stalled_reader_holds_the_upstream_and_then_gets_everything(tmp_path: Path) -> None:
    marker = "STALLREAD"
    text = answer(marker)
    with ScriptedUpstream() as up:
        up.script_for(marker, Text(text=text, deltas=DELTAS, sndbuf=SNDBUF))

        async def main() -> None:
            async with gateway(tmp_path, up) as (gw, app), trio.open_nursery() as nursery:
                client = Client(app, body(f"{marker} please"))
                nursery.start_soon(client.run)
                with trio.fail_after(60):
                    await client.read(until=f"{marker}000002".encode())  # the head, then the client stops
                watch = await held_watch(gw)
                deltas, written = await upstream_settled(up, request_n(up, marker))
                # What the gateway took from the upstream: what the client got, what the route is
                # writing (one batch) and what the watch holds — each bounded — nothing else.
                assert watch.buffered <= BUFFER_CHARS + PIECE
                assert watch.fed <= len(client.received) + 2 * (BUFFER_CHARS + PIECE), (watch.fed, len(client.received))
                assert written < len(text) // 2 and deltas < DELTAS // 2, (deltas, written)  # its writes block (measured: ~10 %)
                assert up.outcome(request_n(up, marker)) is None  # the upstream is still sending
                with trio.fail_after(120):
                    await client.read()  # the client reads on
                nursery.cancel_scope.cancel()
            assert client.text() == text.strip()  # the whole answer, in order, nothing lost
            out = up.outcome(request_n(up, marker))
            assert out is not None and out.mode == "normal" and out.chunks_sent == DELTAS

        trio.run(main)


def test_a_stalled_reader_that_goes_away_closes_the_upstream_request(tmp_path: Path) -> None:
    marker = "STALLGONE"
    with ScriptedUpstream() as up:
        up.script_for(marker, Text(text=answer(marker), deltas=DELTAS, sndbuf=SNDBUF))

        async def main() -> None:
            async with gateway(tmp_path, up) as (gw, app), trio.open_nursery() as nursery:
                client = Client(app, body(f"{marker} please"))
                nursery.start_soon(client.run)
                with trio.fail_after(60):
                    await client.read(until=f"{marker}000002".encode())
                await held_watch(gw)
                client.leave()
                n = request_n(up, marker)
                with trio.fail_after(20):
                    while up.outcome(n) is None:
                        await trio.sleep(0.05)
                out = up.outcome(n)
                assert out is not None and out.client_disconnected and out.chunks_sent < DELTAS, out
                with trio.fail_after(20):
                    while gw.watches.watching() or gw.app.runs.active_runs():
                        await trio.sleep(0.05)
                nursery.cancel_scope.cancel()

        trio.run(main)
