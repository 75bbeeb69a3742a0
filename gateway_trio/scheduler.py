"""One task firing every session's core deadlines (handshake timeout, keepalive, close grace),
so an idle connection costs no timer task of its own."""

from __future__ import annotations

import heapq
import math
from typing import TYPE_CHECKING

import trio

from . import _runtime

if TYPE_CHECKING:
    from .session import Session


class DeadlineScheduler:
    """One task firing every session's core deadlines (instead of a timer task per connection)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Session]] = []
        self._seq = 0
        self._wake = trio.Event()

    def schedule(self, at: float, session: Session) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, session))
        if self._heap[0][1] == self._seq:
            self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake = trio.Event()
            at = self._heap[0][0] if self._heap else math.inf
            with trio.move_on_at(at):
                await self._wake.wait()
                continue
            now = _runtime.now()
            while self._heap and self._heap[0][0] <= now:
                _, _, session = heapq.heappop(self._heap)
                session.on_deadline(now)
