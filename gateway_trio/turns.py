"""Runs started by HTTP routes, watched from the route's own task.

A route (``/v1/chat/completions``, ``/v1/responses``, hooks, A2A) starts a turn through the host
and gets a :class:`RunWatch`: the run's text as it comes, delta by delta (the core's
:data:`~gateway_core.agents.events.ROUTE_TEXT` events, which no connection receives), then its
result. The watch is fed from the host's outbox, so a route never polls.

Back-pressure, end to end: a watch holds at most :data:`BUFFER_CHARS` of text its route has not
taken; past that the host does not pull the run's next upstream event (:meth:`Watches.room`,
awaited by ``AgentHost`` before each one) until the route takes the text, which it does only once
its last write reached the socket. A client that stops reading thus stops the upstream being read
(its request waits in the kernel's buffers), and memory stays bounded; the WebSocket listeners of
the run see it pause, their own connections untouched. A route that only waits for the end
(:meth:`RunWatch.wait`) keeps no text and never holds the run back.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import trio

from gateway_core.agents.events import ROUTE_TEXT

#: Text a watch holds for its route at most (characters) before the run waits for the route.
BUFFER_CHARS = 64 * 1024


class RunWatch:
    """One run as a route sees it: :meth:`take` until ``None``, then :attr:`result`."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.result: Any = None
        self.settled = False
        self.closed = False  # the route went away: nothing is kept, the run is never held
        #: Set the first time the run waited for the route to take its text (back-pressure
        #: applied); characters of text fed in all.
        self.held = trio.Event()
        self.fed = 0
        self._text: deque[str] = deque()
        self._buffered = 0
        self._discard = False
        self._wake = trio.Event()  # the route: text or the end arrived
        self._room = trio.Event()  # the run: the route took the text

    def feed(self, delta: str) -> None:
        """More text of this run (from the outbox)."""
        if self._discard or self.closed:
            return
        self._text.append(delta)
        self._buffered += len(delta)
        self.fed += len(delta)
        self._wake.set()

    def settle(self, result: Any) -> None:
        self.result = result
        self.settled = True
        self._wake.set()
        self._room.set()

    def close(self) -> None:
        """The route is gone: drop the text and let the run go on (it is being aborted)."""
        self.closed = True
        self._text.clear()
        self._buffered = 0
        self._wake.set()
        self._room.set()

    @property
    def buffered(self) -> int:
        """Characters of text fed and not taken yet."""
        return self._buffered

    def full(self) -> bool:
        return self.room_left() <= 0

    def room_left(self) -> float:
        """Characters of text it takes before it is full (unbounded once nothing is kept)."""
        if self._discard or self.closed or self.settled:
            return math.inf
        return max(0, BUFFER_CHARS - self._buffered)

    async def room(self) -> None:
        """Return once the route has room for more text (at once when it has)."""
        while self.full():
            self.held.set()
            self._room = trio.Event()
            await self._room.wait()

    async def take(self) -> list[str] | None:
        """Every delta fed since the last call (at least one), waiting for one; ``None`` once the
        run has settled and everything was taken."""
        while True:
            if self._text:
                out = list(self._text)
                self._text.clear()
                self._buffered = 0
                self._room.set()
                return out
            if self.settled or self.closed:
                return None
            self._wake = trio.Event()
            await self._wake.wait()

    async def wait(self) -> Any:
        """The result (the text is not kept: a non-streaming route needs only the end)."""
        self._discard = True
        self._text.clear()
        self._buffered = 0
        self._room.set()
        while not self.settled:
            self._wake = trio.Event()
            await self._wake.wait()
        return self.result


class Watches:
    """Runs watched by routes, by run id."""

    def __init__(self) -> None:
        self._by_run: dict[str, RunWatch] = {}

    def __len__(self) -> int:
        return len(self._by_run)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._by_run

    def add(self, run_id: str) -> RunWatch:
        watch = self._by_run[run_id] = RunWatch(run_id)
        return watch

    def watching(self) -> list[RunWatch]:
        """The watches of the runs routes are following now."""
        return list(self._by_run.values())

    def drop(self, run_id: str) -> None:
        watch = self._by_run.pop(run_id, None)
        if watch is not None:
            watch.close()

    def wants(self, event: str, payload: Any) -> bool:
        """Whether a route watches this event (text of a run it follows)."""
        return event == ROUTE_TEXT and isinstance(payload, dict) and payload.get("runId") in self._by_run

    def published(self, event: str, payload: Any) -> None:
        """Text of a watched run to its watch (the caller checked :meth:`wants`)."""
        self._by_run[payload["runId"]].feed(payload["delta"])

    def room_chars(self, run_id: str) -> float:
        """How much more text the route watching ``run_id`` (if any) takes now."""
        watch = self._by_run.get(run_id)
        return math.inf if watch is None else watch.room_left()

    async def room(self, run_id: str) -> None:
        """Back-pressure: return once the route watching ``run_id`` (if any) has room for more text."""
        watch = self._by_run.get(run_id)
        if watch is not None:
            await watch.room()

    def settled(self, run_id: str, result: Any) -> None:
        watch = self._by_run.pop(run_id, None)
        if watch is not None:
            watch.settle(result)


__all__ = ["BUFFER_CHARS", "RunWatch", "Watches"]
