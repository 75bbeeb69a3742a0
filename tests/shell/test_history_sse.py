"""``GET /sessions/<key>/history`` live mode (``Accept: text/event-stream``), in process: the listener's
own connection handling on Trio memory streams (no sockets), an in-process gateway on the offline
provider. Frames as the published gateway sends them (tests/test_history_sse_live.py checks both
gateways over real sockets): ``retry: 1000``, ``event: history`` with the JSON page, then
``event: message`` per appended message (or a fresh ``event: history`` when ``limit``/``cursor``
was given), ``: keepalive`` every 15 s; a reset/deleted session ends the stream, the client leaving
ends it, a client that stops reading is dropped and costs no queue."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import h11
import httpx
import trio
import trio.testing
from shell_harness import TOKEN, make_gateway, serving

from gateway_core import sessions_http as S
from gateway_core.agents.store import MessageRecord, Usage
from gateway_trio.listener import GatewayRef, SocketTracker, handle_stream
from gateway_trio.store.cached import CachedSessionStore
from gateway_trio.web import WebApp
from gateway_trio.web import sessions as route

AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONFIG = {"gateway": {"http": {"endpoints": {"chatCompletions": {"enabled": True}}}}}
KEY = "agent:main:live"


class Stream:
    """One HTTP exchange on a memory stream, read frame by frame with h11 as the client."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.conn = h11.Connection(h11.CLIENT)
        self.response: h11.Response | None = None
        self.buffer = b""
        self.ended = False

    async def send(self, path: str, headers: dict[str, str]) -> None:
        hdrs = [("host", "127.0.0.1"), *headers.items()]
        await self.client.send_all(self.conn.send(h11.Request(method="GET", target=path, headers=hdrs))
                                   + self.conn.send(h11.EndOfMessage()))

    async def _pump(self) -> None:
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                data = await self.client.receive_some(65536)
                self.conn.receive_data(data)
                if not data and self.conn.their_state is not h11.DONE:
                    self.ended = True
                    return
                continue
            if isinstance(event, h11.Response):
                self.response = event
            elif isinstance(event, h11.Data):
                self.buffer += bytes(event.data)
                return
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                self.ended = True
                return

    async def block(self) -> bytes | None:
        """The next SSE block (without its blank line), or None at the end of the stream."""
        while b"\n\n" not in self.buffer:
            if self.ended:
                return None
            await self._pump()
        block, _, self.buffer = self.buffer.partition(b"\n\n")
        return block

    async def frame(self) -> tuple[str | None, Any]:
        """The next ``(event, data)``, ``(None, comment)`` for comments / ``retry``."""
        block = await self.block()
        assert block is not None, "the stream ended"
        text = block.decode()
        if not text.startswith("event:"):
            return None, text
        name, _, data = text.partition("\n")
        assert data.startswith("data: "), text
        return name[len("event: "):], json.loads(data[len("data: "):])


def _run(tmp_path: Path, body: Callable[..., Awaitable[None]], *, clock: Any = None, lockstep: bool = False) -> None:
    async def main() -> None:
        gw = make_gateway(tmp_path, CONFIG)
        ref = GatewayRef()
        ref.gateway = gw
        web = WebApp(ref)
        tracker = SocketTracker(fd_limit=1024)
        transport = httpx.ASGITransport(app=web, client=("127.0.0.1", 40000))
        async with serving(gw), httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:18789") as http:

            async def open_stream(path: str, headers: dict[str, str] | None = None) -> Stream:
                client, server = trio.testing.lockstep_stream_pair() if lockstep else trio.testing.memory_stream_pair()
                slot = tracker.accept("127.0.0.1", trio.current_time())
                assert slot is not None
                nursery.start_soon(handle_stream, ref, server, slot, web)
                stream = Stream(client)
                await stream.send(path, {**AUTH, "accept": "text/event-stream", **(headers or {})})
                return stream

            with trio.fail_after(120 if clock is None else 10**7):  # virtual time jumps while threads work
                async with trio.open_nursery() as nursery:
                    await body(http, gw, open_stream)
                    nursery.cancel_scope.cancel()

    trio.run(main, clock=clock)


async def _chat(http: httpx.AsyncClient, text: str) -> None:
    done = await http.post("/v1/chat/completions", headers={**AUTH, "x-openclaw-session-key": "live"},
                           json={"model": "openclaw", "messages": [{"role": "user", "content": text}]})
    assert done.status_code == 200, done.text


async def _no_watchers(store: CachedSessionStore) -> None:
    """Wait (bounded: past the stall limit, virtual time) for the stream's task to have let go of its watch."""
    for _ in range(int((route.STALL_S + 10) / 0.01)):
        if not store._watches:
            return
        await trio.sleep(0.01)
    raise AssertionError(f"watchers left: {store._watches}")


def test_snapshot_then_each_appended_message_then_the_client_leaves(tmp_path: Path) -> None:
    async def body(http: httpx.AsyncClient, gw: Any, open_stream: Any) -> None:
        await _chat(http, "first")
        plain = (await http.get(f"/sessions/{KEY}/history", headers=AUTH)).json()
        stream = await open_stream(f"/sessions/{KEY}/history")
        assert await stream.frame() == (None, "retry: 1000")
        assert stream.response is not None and stream.response.status_code == 200
        head = dict(stream.response.headers)
        assert head[b"content-type"] == b"text/event-stream; charset=utf-8"
        assert head[b"cache-control"] == b"no-cache" and head[b"connection"] == b"keep-alive"
        assert await stream.frame() == ("history", plain)
        await _chat(http, "second")
        frames = [await stream.frame(), await stream.frame()]
        assert [name for name, _ in frames] == ["message", "message"]
        for (_, data), seq, role in zip(frames, (3, 4), ("user", "assistant"), strict=True):
            assert list(data) == ["sessionKey", "message", "messageId", "messageSeq"]
            assert data["sessionKey"] == KEY and data["messageSeq"] == seq and data["message"]["role"] == role
            assert data["message"]["__openclaw"]["seq"] == seq and data["messageId"] == data["message"]["__openclaw"]["id"]
        again = (await http.get(f"/sessions/{KEY}/history", headers=AUTH)).json()
        assert [f[1]["message"] for f in frames] == again["items"][2:]
        store = await gw.agents.ready_store()
        assert len(store._watches[KEY]) == 1
        await stream.client.aclose()  # the client leaves: the stream's task ends, its watch goes
        await _no_watchers(store)

    _run(tmp_path, body)


def test_with_limit_each_change_sends_a_fresh_page(tmp_path: Path) -> None:
    async def body(http: httpx.AsyncClient, gw: Any, open_stream: Any) -> None:
        await _chat(http, "first")
        stream = await open_stream(f"/sessions/{KEY}/history?limit=1")
        await stream.frame()
        name, page = await stream.frame()
        assert name == "history" and [m["__openclaw"]["seq"] for m in page["items"]] == [2]
        await _chat(http, "second")
        name, page = await stream.frame()
        assert name == "history" and page["hasMore"] is True and page["nextCursor"] == "4"
        assert [m["__openclaw"]["seq"] for m in page["items"]] == [4]

    _run(tmp_path, body)


def test_unknown_session_and_plain_accept_answer_json(tmp_path: Path) -> None:
    async def body(http: httpx.AsyncClient, gw: Any, open_stream: Any) -> None:
        unknown = await http.get("/sessions/agent:main:nothere/history", headers={**AUTH, "accept": "text/event-stream"})
        assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found"
        await _chat(http, "first")
        for accept in ("*/*", "text/*", "text/event-stream;q=0", "application/json"):
            got = await http.get(f"/sessions/{KEY}/history", headers={**AUTH, "accept": accept})
            assert got.headers["content-type"].startswith("application/json"), accept

    _run(tmp_path, body)


def test_accept_rules() -> None:
    for accept in ("text/event-stream", "TEXT/EVENT-STREAM", "application/json, text/event-stream",
                   "text/event-stream;charset=utf-8", "text/event-stream; q=0.5"):
        assert S.wants_event_stream(accept), accept
    for accept in (None, "", "*/*", "text/*", "text/event-stream;q=0", "application/json", "text/event-streams"):
        assert not S.wants_event_stream(accept), accept


def _turn(store: CachedSessionStore, text: str) -> Awaitable[Any]:
    return store.append_turn(KEY, None, [MessageRecord(role="user", content=text, ts=1)], Usage(), 2)


async def _following(gw: Any, open_stream: Any) -> tuple[CachedSessionStore, Stream]:
    """A session with one message, and a live stream of it past its opening frames."""
    store = await gw.agents.ready_store()
    await store.ensure(KEY, "main", 1)
    await _turn(store, "one")
    stream = await open_stream(f"/sessions/{KEY}/history")
    assert await stream.frame() == (None, "retry: 1000")
    assert (await stream.frame())[0] == "history"
    return store, stream


def test_keepalive_every_15_seconds_and_a_deleted_session_ends_the_stream(tmp_path: Path) -> None:
    async def body(http: httpx.AsyncClient, gw: Any, open_stream: Any) -> None:
        store, stream = await _following(gw, open_stream)
        opened = trio.current_time()
        assert await stream.frame() == (None, ": keepalive")
        assert trio.current_time() - opened >= S.KEEPALIVE_S
        await _turn(store, "two")
        name, data = await stream.frame()
        while name is None:  # virtual time runs on while the store's thread writes: more keep-alives
            assert data == ": keepalive"
            name, data = await stream.frame()
        assert name == "message" and data["messageSeq"] == 2
        assert await store.delete(KEY) is True
        while (block := await stream.block()) is not None:
            assert block == b": keepalive"
        assert stream.ended and stream.conn.their_state is h11.DONE  # the chunked body ended cleanly
        await _no_watchers(store)

    _run(tmp_path, body, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_reset_session_ends_the_stream(tmp_path: Path) -> None:
    async def body(http: httpx.AsyncClient, gw: Any, open_stream: Any) -> None:
        store, stream = await _following(gw, open_stream)
        await store.reset(KEY, 5)
        assert await stream.block() is None
        await _no_watchers(store)

    _run(tmp_path, body)


def test_a_client_that_stops_reading_is_dropped_and_queues_nothing(tmp_path: Path) -> None:
    async def body(http: httpx.AsyncClient, gw: Any, open_stream: Any) -> None:
        store, stream = await _following(gw, open_stream)  # lockstep: a write waits for the reader
        started = trio.current_time()
        for i in range(200):  # the reader reads nothing more
            await _turn(store, f"more {i}")
            for watch in store._watches.get(KEY, ()):
                assert watch.kinds <= {"message"}  # a flag, not a queue of messages
        await _no_watchers(store)  # dropped once a write could not go out for STALL_S
        assert trio.current_time() - started >= route.STALL_S

    _run(tmp_path, body, clock=trio.testing.MockClock(autojump_threshold=0), lockstep=True)
