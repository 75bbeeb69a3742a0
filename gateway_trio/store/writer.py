"""The session store's writer thread: it owns the SQLite connection and runs the queued
operations, every one pending at that moment as one transaction (group commit), each under its
own savepoint only when one of them fails; the outcomes go back to the event loop.

:class:`~gateway_trio.store.cached.CachedSessionStore` queues :class:`_Op` here (or, when the
thread is idle, runs a batch on the loop with :meth:`_Writer.run_ops`, the same code).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, Final

import trio

from .sessions import SqliteSessionStore, StoreError

#: Operations one transaction takes at most.
MAX_BATCH: Final = 512

Fn = Callable[[SqliteSessionStore], Any]


class _Op:
    """One queued operation and, once the writer has run it, its outcome."""

    __slots__ = ("bare", "done", "epoch", "error", "fn", "key", "landed", "merge", "notify", "result")

    def __init__(
        self, fn: Fn, *, key: str | None, epoch: int | None, wait: bool, notify: str | None = None,
        landed: Callable[[Any], None] | None = None, bare: bool = False,
    ) -> None:
        self.fn = fn
        self.bare = bare  # run outside any transaction (the checkpoint)
        self.landed = landed  # run in the event loop when the result arrives (before the caller resumes)
        self.key = key  # a session row this write was computed from (kept from eviction until done)
        self.epoch = epoch  # the cache epoch a derived write was computed in; None: not derived
        self.notify = notify  # what watchers of ``key`` hear once it committed
        self.done: trio.Event | None = trio.Event() if wait else None
        self.result: Any = None
        self.error: BaseException | None = None
        #: What a later write may fold in while this one still waits to commit (``_absorb``):
        #: ``("session", key, None)`` for a new session's insert, ``("run", run_id, (key, input,
        #: started_at))`` for a run begun.
        self.merge: tuple[str, str, tuple[str, str, int] | None] | None = None


class _Writer(threading.Thread):
    """The thread that owns the connection: batches of queued operations, one transaction each."""

    def __init__(self, store: SqliteSessionStore, deliver: Callable[[list[_Op]], None]) -> None:
        super().__init__(name="session-store-writer", daemon=True)
        self.store = store
        self.queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._token = trio.lowlevel.current_trio_token()
        self._deliver = deliver
        self._bad_epoch = -1  # derived writes of this epoch or older are refused (the cache was stale)

    def run(self) -> None:
        stop = False
        while not stop:
            first = self.queue.get()
            if first is None:
                break
            ops = [first]
            while len(ops) < MAX_BATCH:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                ops.append(nxt)
            self.run_ops(ops)
            try:
                self._token.run_sync_soon(self._deliver, ops)
            except trio.RunFinishedError:
                return

    def run_ops(self, ops: list[_Op]) -> None:
        """The operations as one transaction (bare ones after it, each alone)."""
        bare = [op for op in ops if op.bare]
        if bare:
            ops = [op for op in ops if not op.bare]
        if ops:
            self._run(ops)
        for op in bare:
            try:
                op.result = op.fn(self.store)
            except Exception as exc:  # noqa: BLE001 - a failed checkpoint is retried at the next one
                op.error = exc

    def _whole(self, ops: list[_Op]) -> tuple[int, Exception] | None:
        """The operations as one transaction with no savepoint each (two statements per operation
        less). ``None`` when all of them succeeded and it committed; else nothing of it was kept
        and the failure is returned: ``(index, exception)`` of the operation that failed (``-1``
        for BEGIN or COMMIT), for :meth:`_run` to run the batch again with savepoints."""
        results: list[Any] = []
        try:
            with self.store.batch(alone=True) as run:
                for op in ops:
                    results.append(run(op.fn))
        except Exception as exc:  # noqa: BLE001 - rolled back; retried with a savepoint per operation
            return (len(results) if len(results) < len(ops) else -1), exc
        for op, result in zip(ops, results, strict=True):
            op.result, op.error = result, None
        return None

    def _run(self, ops: list[_Op]) -> None:
        failed: tuple[int, Exception] | None = None
        if len(ops) > 1 and not any(op.epoch is not None and op.epoch <= self._bad_epoch for op in ops):
            failed = self._whole(ops)
            if failed is None:
                return
        try:
            with self.store.batch(alone=len(ops) == 1) as run:
                for n, op in enumerate(ops):
                    if op.epoch is not None and op.epoch <= self._bad_epoch:
                        op.error = StoreError("not written: an earlier write of the session store failed")
                        continue
                    try:
                        if failed is not None and n == failed[0]:  # it failed in the first pass: its outcome stands
                            raise failed[1]
                        op.result = run(op.fn)
                    except Exception as exc:  # noqa: BLE001 - handed to the caller of this operation
                        op.error = exc
                        if op.epoch is not None:
                            self._bad_epoch = max(self._bad_epoch, op.epoch)
        except Exception as exc:  # noqa: BLE001 - BEGIN or COMMIT failed: nothing of the batch is written
            for op in ops:
                if op.error is None:
                    op.error, op.result = exc, None
            self._bad_epoch = max([self._bad_epoch, *(op.epoch for op in ops if op.epoch is not None)])
