"""Run lanes: one run at a time per session, at most ``max_concurrent`` at once; queue, never refuse.

Pure. A run asks for its lane with :meth:`Lanes.request`; if it is not granted at once it waits
(the host parks it on ``AwaitLane``) until :meth:`Lanes.release` of an earlier run grants it. Grants
go in arrival order, except that a run never waits behind another session's busy lane.
"""

from __future__ import annotations

from collections import deque


class Lanes:
    def __init__(self, max_concurrent: int) -> None:
        self.max_concurrent = max(1, max_concurrent)
        self._active: dict[str, str] = {}  # run id → session key
        self._busy: set[str] = set()
        self._queue: deque[tuple[str, str]] = deque()

    @property
    def active(self) -> int:
        return len(self._active)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def holds(self, run_id: str) -> bool:
        return run_id in self._active

    def request(self, run_id: str, key: str) -> bool:
        """Ask for ``key``'s lane; True when granted now, else queued."""
        if run_id in self._active:
            return True
        if key not in self._busy and len(self._active) < self.max_concurrent and not self._queue:
            self._grant(run_id, key)
            return True
        self._queue.append((run_id, key))
        return False

    def release(self, run_id: str) -> list[str]:
        """``run_id`` is done (or gave up waiting); returns the runs granted as a result."""
        key = self._active.pop(run_id, None)
        if key is None:
            self._queue = deque((r, k) for r, k in self._queue if r != run_id)
            return []
        self._busy.discard(key)
        granted: list[str] = []
        waiting: deque[tuple[str, str]] = deque()
        while self._queue:
            rid, k = self._queue.popleft()
            if k not in self._busy and len(self._active) < self.max_concurrent:
                self._grant(rid, k)
                granted.append(rid)
            else:
                waiting.append((rid, k))
        self._queue = waiting
        return granted

    def _grant(self, run_id: str, key: str) -> None:
        self._active[run_id] = key
        self._busy.add(key)


__all__ = ["Lanes"]
