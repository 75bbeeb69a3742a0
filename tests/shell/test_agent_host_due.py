"""The host answers ``due`` when a run's held text is due before the next upstream event, and the
read it was waiting for goes on: nothing is lost, nothing read twice (Trio's virtual clock).

The model stream here is an async generator, as a real one may be: a cancelled
``__anext__`` would end it, so a host that cancelled its read at the deadline would lose the rest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import trio
import trio.testing

from gateway_core.agents.effects import ModelNext
from gateway_core.providers.types import TextDelta
from gateway_trio.agent_host import AgentHost, _Open


class PausingStream:
    """``one``, then a 5 s pause, ``two``, end; ``closed`` once the generator has finished."""

    class request:  # noqa: N801 - the attribute the host reads
        ref = "pausing/model"

    attempts: list[Any] = []

    def __init__(self) -> None:
        self.closed = False
        self._gen = self._events()

    async def _events(self) -> AsyncIterator[TextDelta]:
        try:
            yield TextDelta("one")
            await trio.sleep(5)
            yield TextDelta("two")
        finally:
            self.closed = True

    async def aclose(self) -> None:
        """What the host calls when it is done with the stream."""

    async def __anext__(self) -> TextDelta:
        return await self._gen.__anext__()


def _host(tmp_path: Path, stream: PausingStream) -> AgentHost:
    host = AgentHost(tmp_path)
    host._streams[1] = _Open(stream, owner=7, run_id=None)
    return host


def test_due_before_the_next_event_then_the_event(tmp_path: Path) -> None:
    async def main() -> None:
        stream = PausingStream()
        host = _host(tmp_path, stream)
        first = await host.perform(ModelNext(1), owner=7)
        assert first.event == TextDelta("one") and not first.due
        t0 = trio.current_time()
        due = await host.perform(ModelNext(1, flush_at=t0 + 0.075), owner=7)
        assert due.due and due.event is None and due.ref == "pausing/model"
        assert trio.current_time() - t0 < 0.1  # at the deadline, not after the pause
        again = await host.perform(ModelNext(1, flush_at=trio.current_time()), owner=7)
        assert again.due  # already due: answered at once, the read still going
        second = await host.perform(ModelNext(1), owner=7)
        assert second.event == TextDelta("two") and not second.due  # the read went on
        assert trio.current_time() - t0 >= 5
        end = await host.perform(ModelNext(1, flush_at=trio.current_time() + 0.075), owner=7)
        assert end.event is None and not end.due  # the end, once
        assert stream.closed

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_closing_a_stream_stops_the_read_a_due_flush_left_running(tmp_path: Path) -> None:
    async def main() -> None:
        stream = PausingStream()
        host = _host(tmp_path, stream)
        await host.perform(ModelNext(1), owner=7)
        t0 = trio.current_time()
        assert (await host.perform(ModelNext(1, flush_at=t0 + 0.075), owner=7)).due
        await host.close_owned(7)  # the run ended (aborted): the pending read is cancelled, at once
        assert stream.closed and trio.current_time() - t0 < 1
        assert (await host.perform(ModelNext(1), owner=7)).event is None

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_text_comes_due_while_the_route_holds_the_run(tmp_path: Path) -> None:
    """Back-pressure (the route watching the run is full) does not hold the WebSocket text back:
    the gate's wait ends at the deadline too, and the upstream is read only once the gate opens."""

    async def main() -> None:
        stream = PausingStream()
        host = AgentHost(tmp_path)
        host._streams[1] = _Open(stream, owner=7, run_id="run-1")
        room = trio.Event()
        gated: list[str] = []

        async def gate(run_id: str) -> None:
            gated.append(run_id)
            await room.wait()

        host.gate = gate
        t0 = trio.current_time()
        due = await host.perform(ModelNext(1, flush_at=t0 + 0.075), owner=7)
        assert due.due and trio.current_time() - t0 < 0.1 and gated == ["run-1"]
        room.set()
        first = await host.perform(ModelNext(1), owner=7)
        assert first.event == TextDelta("one") and gated == ["run-1", "run-1"]

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
