"""Runs started by HTTP routes, watched from the route's own task.

A route (``/v1/chat/completions``, ``/v1/responses``, hooks, A2A) starts a turn through the host
and gets a :class:`RunWatch`: the run's ``agent`` events as the app publishes them, then its
result. The watch is fed from the host's outbox (the same events every operator connection gets),
so a route never polls.

Bounded memory whatever the client does: assistant events carry the whole text so far, so
consecutive ones are coalesced into the latest (a stream whose client stopped reading holds one
pending event, not the run's history); other events are few per run.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import trio


class RunWatch:
    """One run as a route sees it: :meth:`next_event` until ``None``, then :attr:`result`."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.result: Any = None
        self.settled = False
        self._events: deque[dict[str, Any]] = deque()
        self._wake = trio.Event()

    def feed(self, payload: dict[str, Any]) -> None:
        """An ``agent`` event of this run (from the outbox)."""
        events = self._events
        if (
            payload.get("stream") == "assistant"
            and events
            and events[-1].get("stream") == "assistant"
            and isinstance(payload.get("data"), dict)
            and isinstance(payload["data"].get("text"), str)
        ):
            events[-1] = payload  # the text so far supersedes the last one
        else:
            events.append(payload)
        self._wake.set()

    def settle(self, result: Any) -> None:
        self.result = result
        self.settled = True
        self._wake.set()

    async def next_event(self) -> dict[str, Any] | None:
        """The next event, or ``None`` once the run has settled and every event was taken."""
        while True:
            if self._events:
                return self._events.popleft()
            if self.settled:
                return None
            self._wake = trio.Event()
            await self._wake.wait()

    async def wait(self) -> Any:
        """The result (events are dropped: a non-streaming route needs only the end)."""
        while not self.settled:
            self._events.clear()
            self._wake = trio.Event()
            await self._wake.wait()
        self._events.clear()
        return self.result


class Watches:
    """Runs watched by routes, by run id."""

    def __init__(self) -> None:
        self._by_run: dict[str, RunWatch] = {}

    def __len__(self) -> int:
        return len(self._by_run)

    def add(self, run_id: str) -> RunWatch:
        watch = self._by_run[run_id] = RunWatch(run_id)
        return watch

    def drop(self, run_id: str) -> None:
        self._by_run.pop(run_id, None)

    def published(self, event: str, payload: Any) -> None:
        if event != "agent" or not self._by_run or not isinstance(payload, dict):
            return
        watch = self._by_run.get(payload.get("runId"))  # type: ignore[arg-type]
        if watch is not None:
            watch.feed(payload)

    def settled(self, run_id: str, result: Any) -> None:
        watch = self._by_run.pop(run_id, None)
        if watch is not None:
            watch.settle(result)


__all__ = ["RunWatch", "Watches"]
