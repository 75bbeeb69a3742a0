"""Broadcast fan-out in the shell (issue 10 item 10): frames built once per broadcast and written
straight to each socket must be what wsproto would send, each client keeps its own ``seq``, a
short write or a busy socket keeps the byte stream whole, and a slow client is still dropped or
closed while the others get everything. In process, on memory transports; nothing sleeps.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
from shell_harness import MemoryTransport, connect, make_gateway, serving, settle
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

from gateway_core import PeerInfo
from gateway_core.broadcast import EncodedEvent
from gateway_trio import app as gateway_app
from gateway_trio.app import Gateway
from gateway_trio.session import Session
from gateway_trio.wsserver import WsTransport, text_frame, text_frame_parts


def _open_ws_pair() -> tuple[WSConnection, WSConnection]:
    """A wsproto client and server, upgraded in memory."""
    client, server = WSConnection(ConnectionType.CLIENT), WSConnection(ConnectionType.SERVER)
    server.receive_data(client.send(Request(host="127.0.0.1", target="/")))
    assert any(isinstance(e, Request) for e in server.events())
    client.receive_data(server.send(AcceptConnection()))
    assert any(isinstance(e, AcceptConnection) for e in client.events())
    return client, server


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 100_000])
def test_text_frames_are_byte_identical_to_wsproto(size: int) -> None:
    text = ("é" * size)[: size // 2] + "x" * (size - 2 * (size // 2))  # UTF-8 length == size
    data = text.encode()
    assert len(data) == size
    _, server = _open_ws_pair()
    expected = server.send(TextMessage(data=text))
    assert b"".join(text_frame_parts(data)) == expected
    assert text_frame(data) == expected


def test_an_encoded_event_frame_reads_back_through_wsproto() -> None:
    client, _ = _open_ws_pair()
    ev = EncodedEvent("presence", {"presence": [{"text": "ü" * 40_000}]})
    for seq in (1, 2, 99_999):
        client.receive_data(text_frame(ev.frame(seq)))
        (msg,) = list(client.events())
        assert isinstance(msg, TextMessage) and msg.message_finished
        assert json.loads(msg.data)["seq"] == seq


def test_ws_transport_writes_directly_only_while_open_and_idle() -> None:
    """The direct write's two guards are plain attributes now: check they follow the truth."""

    async def main() -> None:
        ours, peer = trio.socket.socketpair()
        client, server = _open_ws_pair()
        transport = WsTransport(trio.SocketStream(ours), server)
        transport.sync_state()
        frame = text_frame(b'{"x":1}')
        assert transport.open and not transport.busy
        assert transport.try_write(frame) == len(frame)
        assert await peer.recv(100) == frame

        big = [b"z" * 65536] * 64  # more than the socket pair buffers: the send must wait
        async with trio.open_nursery() as nursery:
            nursery.start_soon(transport.send_batch, big)
            for _ in range(50):  # a few scheduler passes (Trio may run a new task later)
                await trio.sleep(0)
            assert transport.busy  # blocked on the full socket: a direct write now would cut into it
            got = 0
            with trio.fail_after(30):
                while got < 64 * 65536:
                    got += len(await peer.recv(1 << 20))
        assert not transport.busy

        server.receive_data(client.send(CloseConnection(code=1000)))
        assert any(isinstance(e, CloseConnection) for e in server.events())
        transport.sync_state()  # as the reader does on a received close
        assert not transport.open and transport.try_write(frame) == 0
        ours.close()
        peer.close()

    trio.run(main)


# --------------------------------------------------------------------------- in-process gateway


class ShortWrites(MemoryTransport):
    """A socket that takes at most ``take`` bytes per non-blocking write."""

    def __init__(self, take: int) -> None:
        super().__init__()
        self.take = take
        self.short = 0

    def try_write(self, data: bytes) -> int:
        n = min(self.take, len(data))
        self.short += n < len(data)
        self.sent += data[:n]
        self.written.set()
        return n


@asynccontextmanager
async def session_on(gw: Gateway, transport: Any) -> AsyncIterator[Session]:
    """An admitted operator.admin session on ``transport`` (its tasks run until the block ends)."""
    session = Session(gw, PeerInfo(host="127.0.0.1:18789"), transport)
    stop = trio.Event()

    async def reader(s: Session) -> None:
        s.feed_text(connect())
        await stop.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.run, reader)
        await settle()
        assert session.admitted
        try:
            yield session
        finally:
            stop.set()
            session.feed_closed(1000)


def _ticks(transport: MemoryTransport) -> list[dict[str, Any]]:
    return [f for f in transport.frames() if f.get("event") == "tick" and f.get("type") == "event"]


def test_each_client_gets_its_own_increasing_seq(tmp_path: Path) -> None:
    async def main() -> None:
        gw = make_gateway(tmp_path)
        async with serving(gw):
            ta, tb, tc = MemoryTransport(), MemoryTransport(), MemoryTransport()
            async with session_on(gw, ta), session_on(gw, tb) as b, session_on(gw, tc):
                await settle()
                for t in (ta, tb, tc):
                    list(t.frames())  # skip the handshake and start-up frames
                gw.app.publish("tick", {"ts": 0}, to=frozenset({b.conn_id}))  # b is one ahead
                gw.flush()
                for n in range(1, 6):
                    gw.broadcast("tick", {"ts": n})
                per_client = [_ticks(t) for t in (ta, tb, tc)]
        a_seqs, b_seqs, c_seqs = ([f["seq"] for f in ticks] for ticks in per_client)
        assert [f["payload"]["ts"] for f in per_client[1]] == [0, 1, 2, 3, 4, 5]
        assert b_seqs == list(range(b_seqs[0], b_seqs[0] + 6))
        assert a_seqs == c_seqs == list(range(a_seqs[0], a_seqs[0] + 5))
        assert b_seqs[1:] == [s + (b_seqs[0] - a_seqs[0] + 1) for s in a_seqs]
        assert per_client[0] == per_client[2]  # same seqs, same frames

    trio.run(main)


@pytest.mark.parametrize("staged", [False, True], ids=["one-by-one", "staged"])
def test_short_writes_and_a_busy_socket_keep_the_stream_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, staged: bool
) -> None:
    """Also through the large fan-out's path (frames staged for all, written at once, then the
    short writes queued), forced here for three clients."""
    if staged:
        monkeypatch.setattr(gateway_app, "PARALLEL_MIN", 2)

    async def main() -> None:
        gw = make_gateway(tmp_path)
        async with serving(gw):
            short, busy, fast = ShortWrites(take=37), MemoryTransport(), MemoryTransport()
            async with session_on(gw, short) as s_short, session_on(gw, busy) as s_busy, session_on(gw, fast):
                await settle()
                busy.busy = True  # another write is in progress: frames must wait in the queue
                for n in range(1, 21):
                    gw.broadcast("tick", {"ts": n, "pad": "p" * n * 10})
                assert s_busy.out and s_busy.out_bytes > 0 and not _ticks(busy)
                busy.busy = False
                s_busy._wake()
                await settle()
                assert short.short > 0  # the direct write really was cut short
                assert not s_short.out and not s_busy.out and s_short.out_bytes == s_busy.out_bytes == 0
                got = {name: _ticks(t) for name, t in (("short", short), ("busy", busy), ("fast", fast))}
        for ticks in got.values():
            assert [f["payload"]["ts"] for f in ticks] == list(range(1, 21))
            seqs = [f["seq"] for f in ticks]
            assert seqs == list(range(seqs[0], seqs[0] + 20))

    trio.run(main)


class Stuck(MemoryTransport):
    """Once ``stall(take)`` is called, a client that reads ``take`` more bytes and then stops: a
    blocking send never returns. (Before that it reads everything, so the handshake completes.)"""

    def __init__(self) -> None:
        super().__init__()
        self.take: int | None = None

    def stall(self, take: int = 0) -> None:
        self.take = take

    def try_write(self, data: bytes) -> int:
        if self.take is None:
            return super().try_write(data)
        n = min(self.take, len(data))
        self.take -= n
        self.sent += data[:n]
        return n

    async def send_batch(self, items: list[bytes]) -> None:
        if self.take is None:
            return await super().send_batch(items)
        await trio.sleep_forever()


@asynccontextmanager
async def stuck_and_fine(tmp_path: Path) -> AsyncIterator[tuple[Gateway, Session, Stuck, MemoryTransport]]:
    """A gateway with a 4 KiB ``maxBufferedBytes``, a client about to stall and one that reads."""
    gw = make_gateway(tmp_path)
    gw.app.policy = msgspec.structs.replace(gw.app.policy, max_buffered_bytes=4096)
    async with serving(gw):
        stuck, fine = Stuck(), MemoryTransport()
        async with session_on(gw, stuck) as s_stuck, session_on(gw, fine):
            await settle()
            yield gw, s_stuck, stuck, fine


def test_a_stalled_client_is_closed_and_the_others_get_everything(tmp_path: Path) -> None:
    async def main() -> None:
        async with stuck_and_fine(tmp_path) as (gw, s_stuck, stuck, fine):
            stuck.stall()
            for n in range(1, 41):
                gw.broadcast("tick", {"ts": n, "pad": "p" * 200})
                await settle(3)  # its writer runs (and gets stuck)
            ticks = _ticks(fine)
            assert s_stuck.closed
            assert (s_stuck.core._close_code, s_stuck.core._close_reason) == (1008, "slow consumer")
            assert stuck.aborted  # its writer is stuck: dropped without a close handshake
            assert not s_stuck.out and s_stuck.out_bytes == 0
        assert [f["payload"]["ts"] for f in ticks] == list(range(1, 41))
        seqs = [f["seq"] for f in ticks]
        assert seqs == list(range(seqs[0], seqs[0] + 40))

    trio.run(main)


def test_over_the_buffer_droppable_events_leave_gaps_and_others_close(tmp_path: Path) -> None:
    async def main() -> None:
        async with stuck_and_fine(tmp_path) as (gw, s_stuck, stuck, fine):
            stuck.stall(take=10)
            gw.broadcast("tick", {"ts": 0, "pad": "p" * 5000}, drop_if_slow=True)  # 10 bytes taken
            queued = s_stuck.out_bytes
            assert queued > 4096 and not s_stuck.closed
            seq0 = s_stuck.core.seq
            for n in range(1, 11):
                gw.broadcast("tick", {"ts": n}, drop_if_slow=True)
            assert s_stuck.core.seq == seq0 + 10 and s_stuck.out_bytes == queued  # dropped: gaps
            assert not s_stuck.closed
            gw.broadcast("tick", {"ts": 11})  # may not be dropped
            await settle()
            assert s_stuck.closed
            assert (s_stuck.core._close_code, s_stuck.core._close_reason) == (1008, "slow consumer")
            ticks = _ticks(fine)
        assert [f["payload"]["ts"] for f in ticks] == list(range(12))
        seqs = [f["seq"] for f in ticks]
        assert seqs == list(range(seqs[0], seqs[0] + 12))

    trio.run(main)
