"""The run table: agent and chat runs, bounded and pruned, with their per-run event ``seq``.

Pure. ``agent`` and ``chat`` events carry a ``seq`` that counts per run from 1, shared by both
streams (protocol.md §13.4–§13.5); :meth:`Run.next_seq` hands them out so no handler writes a seq
by hand. Finished runs stay answerable (``agent.wait``) for ``ttl_ms``; the table never holds more
than ``max_finished`` of them, and active runs are never dropped.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from msgspec import Struct

#: Finished runs stay visible to agent.wait this long (the idempotency window, §13.1).
DEFAULT_RUN_TTL_MS = 5 * 60_000
#: At most this many finished runs are kept.
DEFAULT_MAX_FINISHED_RUNS = 1000

ACTIVE = "running"


class Run(Struct, kw_only=True):
    """One agent/chat run."""

    run_id: str
    session_key: str
    agent_id: str = "main"
    kind: str = "agent"
    started_at: int
    status: str = ACTIVE
    ended_at: int | None = None
    error: str | None = None
    stop_reason: str | None = None
    seq: int = 0
    #: Where the final answer of a two-stage ``agent`` request goes: (conn id, request id).
    origin: tuple[str, str] | None = None
    abort_requested: bool = False
    #: How the turn ended (the agent loop's ``TurnResult``), once it has.
    result: Any = None

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    def next_seq(self) -> int:
        """The next per-run event seq (1, 2, …)."""
        self.seq += 1
        return self.seq


class RunTable:
    """Runs by id; bounded and pruned on every insert."""

    def __init__(self, ttl_ms: int = DEFAULT_RUN_TTL_MS, max_finished: int = DEFAULT_MAX_FINISHED_RUNS) -> None:
        self.ttl_ms = ttl_ms
        self.max_finished = max_finished
        self._runs: dict[str, Run] = {}
        self._finished: OrderedDict[str, int] = OrderedDict()  # run id → ended_at, oldest first

    def __len__(self) -> int:
        return len(self._runs)

    def get(self, run_id: str) -> Run | None:
        return self._runs.get(run_id)

    def add(self, run: Run, now_ms: int) -> Run:
        self.prune(now_ms)
        self._runs[run.run_id] = run
        return run

    def finish(self, run: Run, status: str, now_ms: int, *, error: str | None = None, stop_reason: str | None = None) -> None:
        """Settle ``run`` (ok, error, aborted, timeout); it becomes prunable."""
        if not run.active:
            return
        run.status = status
        run.ended_at = now_ms
        run.error = error
        run.stop_reason = stop_reason
        self._finished[run.run_id] = now_ms
        self.prune(now_ms)

    def active_for(self, session_key: str) -> list[Run]:
        return [r for r in self._runs.values() if r.active and r.session_key == session_key]

    def active_runs(self) -> list[Run]:
        return [r for r in self._runs.values() if r.active]

    def prune(self, now_ms: int) -> None:
        """Forget finished runs past their TTL, and the oldest beyond ``max_finished``."""
        horizon = now_ms - self.ttl_ms
        while self._finished:
            run_id, ended = next(iter(self._finished.items()))
            if ended > horizon and len(self._finished) <= self.max_finished:
                break
            del self._finished[run_id]
            self._runs.pop(run_id, None)


__all__ = ["ACTIVE", "DEFAULT_MAX_FINISHED_RUNS", "DEFAULT_RUN_TTL_MS", "Run", "RunTable"]
