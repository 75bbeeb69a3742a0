"""One ``ModelNext`` answer carries every event the host already has in hand (decoded, or handed
over by the stream's pump), and says when the stream ended after them: a fast upstream's whole
answer is one effect, not one per event. Order is kept, nothing is lost or read twice, and a
failure after events in hand is raised after them (Trio's virtual clock)."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from gateway_core.agents.effects import ModelNext
from gateway_core.providers.errors import NETWORK, ProviderError
from gateway_core.providers.types import TextDelta
from gateway_trio.agent_host import MAX_IN_HAND, AgentHost, _Open


class ChunkedStream:
    """Events arrive in chunks (one "socket read" each, after ``pause`` s); a chunk's events are
    decoded at once, so all but the first are in hand (``ready``) once it arrived."""

    class request:  # noqa: N801 - the attribute the host reads
        ref = "chunked/model"

    attempts: list[Any] = []

    def __init__(self, chunks: list[list[Any]], pause: float = 0.0, fail_after: bool = False, released: bool = True) -> None:
        self.released = released  # its connection is back in the pool once it ended
        self._chunks = deque(chunks)
        self._pending: deque[Any] = deque()
        self._pause = pause
        self._fail_after = fail_after
        self.reads = 0

    def ready(self, limit: int) -> list[Any]:
        out = []
        while self._pending and len(out) < limit:
            out.append(self._pending.popleft())
        return out

    @property
    def exhausted(self) -> bool:
        return not self._pending and not self._chunks and not self._fail_after

    async def aclose(self) -> None:
        """What the host calls when it is done with the stream."""

    async def __anext__(self) -> Any:
        while not self._pending:
            if not self._chunks:
                if self._fail_after:
                    self._fail_after = False
                    raise ProviderError(NETWORK, "connection dropped")
                raise StopAsyncIteration
            await trio.sleep(self._pause)
            self.reads += 1
            self._pending.extend(self._chunks.popleft())
        return self._pending.popleft()


def _host(tmp_path: Path, stream: Any) -> AgentHost:
    host = AgentHost(tmp_path)
    host._streams[1] = _Open(stream, owner=7, run_id=None)
    return host


def _deltas(*texts: str) -> list[TextDelta]:
    return [TextDelta(t) for t in texts]


@pytest.mark.parametrize("released", [True, False])
def test_a_whole_answer_in_one_read_is_one_answer_that_ends_the_stream(tmp_path: Path, released: bool) -> None:
    """Ended with its connection back in the pool, the stream is closed with its job (after the
    route's answer); one that still holds its socket is closed at once."""

    async def main() -> None:
        stream = ChunkedStream([_deltas("a", "b", "c", "d")], released=released)
        host = _host(tmp_path, stream)
        got = await host.perform(ModelNext(1), owner=7)
        assert (got.event, got.more, got.ended) == (TextDelta("a"), tuple(_deltas("b", "c", "d")), True)
        assert (1 in host._streams) is released
        await host.close_owned(7)
        assert 1 not in host._streams
        assert (await host.perform(ModelNext(1), owner=7)).event is None

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_chunks_come_as_they_arrive_and_the_end_comes_once(tmp_path: Path) -> None:
    async def main() -> None:
        stream = ChunkedStream([_deltas("a", "b"), _deltas("c"), _deltas("d", "e")], pause=1.0, fail_after=False)
        stream._chunks.append([])  # a read that brings nothing decodable: the end is learnt by reading
        host = _host(tmp_path, stream)
        seen: list[str] = []
        answers = 0
        for _ in range(10):
            got = await host.perform(ModelNext(1), owner=7)
            if got.event is None:
                break
            answers += 1
            seen += [e.text for e in (got.event, *got.more)]
            if got.ended:
                break
        assert seen == ["a", "b", "c", "d", "e"] and answers == 3 and stream.reads == 4

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_an_answer_carries_at_most_max_in_hand_events(tmp_path: Path) -> None:
    async def main() -> None:
        texts = [str(i) for i in range(MAX_IN_HAND * 2 + 5)]
        host = _host(tmp_path, ChunkedStream([_deltas(*texts)]))
        seen: list[str] = []
        for _ in range(10):
            got = await host.perform(ModelNext(1), owner=7)
            if got.event is None:
                break
            assert 1 + len(got.more) <= MAX_IN_HAND
            seen += [e.text for e in (got.event, *got.more)]
            if got.ended:
                break
        assert seen == texts

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_events_the_pump_handed_over_come_together_and_a_failure_after_them_comes_last(tmp_path: Path) -> None:
    """Once a deadline had to be waited for, the stream is read by its pump; what the pump has
    already handed over is in hand too. The failure behind them is raised by the next read."""

    async def main() -> None:
        stream = ChunkedStream([_deltas("a"), _deltas("b", "c", "d")], pause=5.0, fail_after=True)
        host = _host(tmp_path, stream)
        first = await host.perform(ModelNext(1), owner=7)  # a (after the first pause)
        assert first.event == TextDelta("a") and not first.more
        due = await host.perform(ModelNext(1, flush_at=trio.current_time() + 0.075), owner=7)
        assert due.due  # the pump now reads the second chunk
        await trio.sleep(10)  # it has: b, c, d and the failure are waiting in its channel
        got = await host.perform(ModelNext(1), owner=7)
        assert (got.event, got.more, got.ended) == (TextDelta("b"), tuple(_deltas("c", "d")), False)
        try:
            await host.perform(ModelNext(1), owner=7)
        except Exception as exc:  # noqa: BLE001 - the failure, as ModelFailed
            assert "connection dropped" in str(getattr(exc, "error", exc))
        else:
            raise AssertionError("the failure was lost")

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_events_in_hand_stop_at_the_watching_routes_room(tmp_path: Path) -> None:
    """A route streaming the run takes so much text more (back-pressure): an answer carries the
    events in hand up to that, the rest comes with the next answers, in order."""

    async def main() -> None:
        stream = ChunkedStream([_deltas("aa", "bb", "cc", "dd", "ee")])
        host = AgentHost(tmp_path)
        host._streams[1] = _Open(stream, owner=7, run_id="run-1")
        host.room_chars = lambda run_id: 5 if run_id == "run-1" else 0

        async def gate(run_id: str) -> None:
            raise AssertionError("the route has room: the gate is not awaited")

        host.gate = gate
        got = await host.perform(ModelNext(1), owner=7)
        assert (got.event, got.more, got.ended) == (TextDelta("aa"), tuple(_deltas("bb", "cc")), False)
        rest = await host.perform(ModelNext(1), owner=7)
        assert (rest.event, rest.more, rest.ended) == (TextDelta("dd"), tuple(_deltas("ee")), True)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
