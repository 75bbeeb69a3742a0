"""A run pulling a fast upstream lets the other tasks run: the host yields every few events.

Events of a fast upstream often arrive many to a socket read, so pulling them awaits nothing and a
long answer would hold the event loop to itself. Here the stream answers without awaiting at all;
another task counts how often it is scheduled while the run pulls its events.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from gateway_core.agents.effects import ModelNext
from gateway_core.providers.types import TextDelta
from gateway_trio.agent_host import YIELD_EVERY, AgentHost, _Open

EVENTS = 20 * YIELD_EVERY


class EagerStream:
    """A model stream whose events are all there already: ``__anext__`` never awaits."""

    class request:  # noqa: N801 - the attribute the host reads
        ref = "eager/model"

    attempts: list[Any] = []

    def __init__(self) -> None:
        self.left = EVENTS

    async def aclose(self) -> None:
        """What the host calls when it is done with the stream."""

    async def __anext__(self) -> TextDelta:
        if not self.left:
            raise StopAsyncIteration
        self.left -= 1
        return TextDelta("x")


def test_pulling_a_fast_stream_yields_to_other_tasks(tmp_path: Path) -> None:
    async def main() -> None:
        host = AgentHost(tmp_path)
        host._streams[1] = _Open(EagerStream(), owner=7, run_id=None)
        ran = [0]
        pulled = [0]

        async def other() -> None:
            while True:
                ran[0] += 1
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(other)
            await trio.lowlevel.checkpoint()  # let it start
            before = ran[0]
            while (await host.perform(ModelNext(1), owner=7)).event is not None:
                pulled[0] += 1
            during = ran[0] - before
            nursery.cancel_scope.cancel()
        assert pulled[0] == EVENTS
        assert during >= EVENTS // YIELD_EVERY - 1, during  # without the yields: 0

    trio.run(main)
