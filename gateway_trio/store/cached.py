"""The session store for the event loop: one writer thread with group commit (or, when it is idle, a
write at once on the loop), hot sessions in memory.

Why: every store call used to be its own ``trio.to_thread`` hand-off and transaction, four or more
per chat request (load the session, open the run, read the history, write the turn), a fifth of
the gateway's CPU on ``/v1/chat/completions``. Here:

* **One writer thread** (:mod:`gateway_trio.store.writer`) owns the SQLite connection. Calls become operations on one FIFO queue;
  the thread takes every operation pending at that moment and runs them as one transaction, each
  under its own savepoint (group commit; a failing operation is undone alone). The order of the
  queue is the order of the writes, so a session's writes land in the order they were made, and a
  read that goes to the disk sees every write queued before it.
* **Hot sessions in memory.** The gateway is the only writer of its store, so a copy of the rows
  (and of the newest :data:`TAIL` messages of each) it has read or written stays exact: ``get``,
  ``ensure`` of a known key and ``messages`` within the tail are answered without leaving the
  event loop. A write is applied to the copy first (the transitions of
  :mod:`gateway_trio.store.sessions`, the same ones the SQLite store runs) and then queued as the
  row it produced. Misses (also remembered: "no such session") go to the disk through the queue.
* **An await only where durability is promised.** ``append_turn``, ``patch``, ``reset``,
  ``delete`` and every other call return once their transaction has committed (what a client is
  told is on disk; WAL keeps it across a killed process). ``begin_run`` and the insert of a new
  session are queued without waiting: nothing is acknowledged on them, and the turn's own
  ``append_turn`` commits after them (FIFO) before its answer goes out.
* **Writes on the loop when the writer is idle.** A write whose turn comes while nothing handed to
  the thread is undelivered runs at once on the event loop, as a transaction of one (nothing
  queued can come before it, so the order holds): two thread hand-offs less, ~0.4 ms of a chat
  request's latency. On WAL with ``synchronous=NORMAL`` a commit writes into the page cache; the
  checkpoints, which write and sync the database file, run in the writer thread every
  :data:`CHECKPOINT_EVERY` commits (commits never checkpoint). Writes nobody waits for (a new
  session's row, a run begun) commit at the loop's next turn, while their run waits for its
  model (off the request's path). A route that drives a quick turn itself (a non-streaming
  answer) puts its task in :attr:`CachedSessionStore.fold_tasks`: the writes it makes then wait
  for the turn's own write and commit in its transaction, or for :data:`DEFER_S` at most (a
  system task commits them then), or until a client is about to see an event (the gateway commits
  them first: nothing seen implies a write not on disk). Such a turn is one commit, not two.
  Under load the writer is busy and writes queue and
  group-commit there. A commit on the loop that took over :data:`SLOW_COMMIT_S` (a slow disk)
  sends the writes to the thread for a while: :data:`SLOW_BACKOFF_MIN_S` after one slow commit,
  twice as long after each slow one that follows it, up to :data:`SLOW_BACKOFF_S`, and half as
  long again after each fast one. A slow disk holds the loop for at most one commit per backoff
  (30 s once it stays slow); a one-off stall (the machine paused, a write waited behind a
  checkpoint's sync) costs half a second of hand-offs, not thirty.

So a chat turn waits for the thread only to read the disk: a known or minted session not at all,
a new named one once (the miss that finds it absent). :attr:`CachedSessionStore.handoffs` counts
the waits (the tests' seam).

A write that fails in the thread means the copy in memory went further than the disk: the cache is
dropped whole, and the writes already queued from the stale copy are refused rather than applied
(each operation carries the cache epoch it was computed in). A row with writes still in the queue
is never evicted, so a miss read can never install a row older than one the loop has seen.

:meth:`CachedSessionStore.watch` lets a reader follow one session (the history SSE route): a flag
per watcher, set when a committed write touched the session, so a slow reader costs no memory.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

import msgspec
import trio

from gateway_core.agents.store import MessageRecord, SessionRecord, Usage

from .._runtime import LATER, now
from .sessions import SqliteSessionStore, StoreError, appended, created, patched, was_reset
from .writer import Fn, _Op, _Writer

#: Hot sessions kept in memory (rows, absent keys included), least recently used dropped first.
MAX_SESSIONS: Final = 4096
#: Newest messages kept per hot session: a turn's history (200) and the history route's page + 1.
TAIL: Final = 256
#: Messages kept in memory in all (the tails used least recently are dropped first; a dropped tail
#: only means the next read of that history goes to the disk).
MAX_MESSAGES: Final = 32768
#: Commits between two WAL checkpoints (run by the writer thread; commits never checkpoint).
CHECKPOINT_EVERY: Final = 256
#: A commit on the loop that took longer than this (seconds) sends the writes to the writer thread
#: for :data:`SLOW_BACKOFF_S`: a slow disk (a saturated device, a network filesystem, the page
#: cache throttled) must not stall the event loop, which the thread was there to protect.
SLOW_COMMIT_S: Final = 0.005
SLOW_BACKOFF_MIN_S: Final = 0.5
SLOW_BACKOFF_S: Final = 30.0
#: How long a write nobody waits for waits for the next write to share its commit (seconds).
DEFER_S: Final = 0.02

class SessionWatch:
    """A reader following one session: :meth:`wait` returns once a committed write touched it."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.kinds: set[str] = set()  # "message", "reset", "delete", "patch": bounded by the kinds
        self._event = trio.Event()

    def _hear(self, kind: str) -> None:
        self.kinds.add(kind)
        self._event.set()

    async def wait(self) -> set[str]:
        """The kinds of change since the last call (waits for the first)."""
        await self._event.wait()
        kinds, self.kinds, self._event = self.kinds, set(), trio.Event()
        return kinds


class CachedSessionStore:
    """:class:`~gateway_core.agents.store.SessionStore`, async, for the event loop (see the module)."""

    def __init__(
        self, store: SqliteSessionStore, *, max_sessions: int = MAX_SESSIONS, tail: int = TAIL,
        max_messages: int = MAX_MESSAGES, clock: Callable[[], float] = now,
    ) -> None:
        self.store = store
        #: What commits on the loop are timed with (seconds; tests pass their own).
        self.clock = clock
        self._inline_after = -math.inf  # no commits on the loop before then (one was slow)
        self._backoff = SLOW_BACKOFF_MIN_S  # how long the next slow commit sends the writes away
        #: Commits on the loop that were slow (each sent the writes to the thread for a while).
        self.slow_commits = 0
        self.max_sessions = max_sessions
        self.tail = tail
        self.max_messages = max_messages
        #: Waits for the writer thread (the seam the tests count); writes run on the loop at once.
        self.handoffs = 0
        self.inline_writes = 0
        self._inflight = 0  # operations handed to the writer and not delivered yet (0: it is idle)
        self._deferred: list[_Op] = []  # inline writes nobody waits for: committed together, soon
        self._deferred_at: float | None = None  # trio time the oldest of them was made
        self._later_wake: trio.Event | None = None  # the committer task waits for deferred writes
        self._later_started = False
        #: Tasks whose own next write comes soon on their path (a route driving a quick turn
        #: itself): the writes nobody waits for that they make wait for it (at most DEFER_S) and
        #: share its commit. Other tasks' commit at the loop's next turn, while they wait for I/O.
        self.fold_tasks: set[trio.lowlevel.Task] = set()
        self._token = trio.lowlevel.current_trio_token()
        self._commits = 0  # since the last checkpoint
        self._rows: OrderedDict[str, SessionRecord | None] = OrderedDict()
        self._tails: OrderedDict[str, list[MessageRecord]] = OrderedDict()  # session id -> newest messages
        self._tail_total = 0
        self._key_of: dict[str, str] = {}  # session id -> key, for the rows in memory
        self._pending: dict[str, int] = {}  # key -> derived writes still queued
        self._epoch = 0
        self._watches: dict[str, set[SessionWatch]] = {}
        self._closed = False
        store.manual_checkpoints()
        self._writer = _Writer(store, self._from_writer)
        self._writer.start()

    # ------------------------------------------------------------------ queue

    def _submit(self, op: _Op, *, inline: bool = False) -> _Op:
        """Queue ``op`` for the writer; an ``inline`` write (a write, not a read) runs here and now
        instead when the writer is idle (nothing handed to it is undelivered, so nothing queued can
        come before it: the order of writes holds), saving two thread hand-offs. A commit on WAL
        with ``synchronous=NORMAL`` is a write into the page cache; checkpoints (which sync the
        file) run in the writer, never here. Under load the writer is busy and writes group-commit
        there as before."""
        if self._closed:
            raise StoreError("the session store is closed")
        if op.key is not None and op.epoch is not None:
            self._pending[op.key] = self._pending.get(op.key, 0) + 1
        if inline and self._inflight == 0 and self.clock() >= self._inline_after:
            if op.done is None:  # nobody waits for it: with the next write, or DEFER_S from now
                self._deferred.append(op)
                if len(self._deferred) == 1:
                    self._deferred_at = trio.current_time()
                    if self.fold_tasks and trio.lowlevel.current_task() in self.fold_tasks:
                        self._commit_later()
                    else:
                        self._token.run_sync_soon(self.commit_deferred)
                return op
            self._run_inline([*self._take_deferred(), op])
            return op
        self._enqueue([*self._take_deferred(), op])  # the deferred were decided first, so they go first
        return op

    def _enqueue(self, ops: list[_Op]) -> None:
        """Hand ``ops`` to the writer thread, in order (counted until delivered)."""
        self._inflight += len(ops)
        for op in ops:
            self._writer.queue.put(op)

    def _take_deferred(self) -> list[_Op]:
        ops, self._deferred = self._deferred, []
        self._deferred_at = None
        return ops

    def _commit_later(self) -> None:
        """Make sure the deferred writes commit within :data:`DEFER_S` (one system task per store,
        started on first need, woken only when it was idle)."""
        if not self._later_started:
            self._later_started = True
            trio.lowlevel.spawn_system_task(self._committer, name="session store: deferred commits")
        elif self._later_wake is not None:
            self._later_wake.set()

    async def _committer(self) -> None:
        while not self._closed:
            if self._deferred_at is None:
                self._later_wake = trio.Event()
                await self._later_wake.wait()
                self._later_wake = None
                continue
            due = self._deferred_at + DEFER_S
            if trio.current_time() < due:
                await trio.sleep_until(due)
                continue
            try:
                self.commit_deferred()
            except Exception:  # noqa: BLE001 - outcomes are on the ops; a bug here must not end the run
                self._deferred_at = None

    def _run_inline(self, ops: list[_Op]) -> None:
        self.inline_writes += 1
        started = self.clock()
        self._writer.run_ops(ops)
        ended = self.clock()
        if ended - started > SLOW_COMMIT_S:  # the disk is slow now: the thread takes the writes for a while
            self.slow_commits += 1
            self._inline_after = ended + self._backoff
            self._backoff = min(SLOW_BACKOFF_S, self._backoff * 2)
        elif self._backoff > SLOW_BACKOFF_MIN_S:
            self._backoff = max(SLOW_BACKOFF_MIN_S, self._backoff / 2)
        self._delivered(ops)

    @property
    def inline_now(self) -> bool:
        """A write made now commits on the loop at once (the writer is idle, no slow-disk backoff)."""
        return self._inflight == 0 and self.clock() >= self._inline_after

    @property
    def deferred(self) -> bool:
        """Writes nobody waited for are still waiting to commit."""
        return bool(self._deferred)

    def commit_deferred(self) -> None:
        """The writes nobody waited for (a new session's row, a run begun) that no write took along,
        as one transaction now: at the loop's next turn, after DEFER_S, or before a client sees
        an event."""
        if self._deferred:
            if self._inflight == 0 and self.clock() >= self._inline_after:
                self._run_inline(self._take_deferred())
            else:
                self._enqueue(self._take_deferred())

    def _from_writer(self, ops: list[_Op]) -> None:
        self._inflight -= len(ops)
        self._delivered(ops)

    async def _wait(self, op: _Op) -> Any:
        """The operation's result once its transaction committed (not cancellable: like a thread
        call, the write happens anyway, and the caller learns that it did)."""
        assert op.done is not None
        if not op.done.is_set():
            self.handoffs += 1
            with trio.CancelScope(shield=True):
                await op.done.wait()
        if op.error is not None:
            raise op.error
        return op.result

    def _delivered(self, ops: list[_Op]) -> None:
        """In the event loop: a batch's outcomes."""
        self._commits += 1
        if self._commits >= CHECKPOINT_EVERY and not self._closed:
            self._commits = 0
            self._enqueue([_Op(lambda s: s.checkpoint(), key=None, epoch=None, wait=False, bare=True)])
        for op in ops:
            self._settled_pending(op)
            if op.error is not None and op.epoch is not None and op.epoch >= self._epoch:
                self._invalidate()
            elif op.error is None:
                if op.landed is not None:
                    op.landed(op.result)
                for watch in self._watches.get(op.key, ()) if op.notify is not None and op.key is not None else ():
                    watch._hear(op.notify)
            if op.done is not None:
                op.done.set()

    def _settled_pending(self, op: _Op) -> None:
        """``op`` no longer waits in the queue (committed, or folded into a later write)."""
        if op.key is not None and op.epoch is not None:
            left = self._pending.get(op.key, 1) - 1
            if left > 0:
                self._pending[op.key] = left
            else:
                self._pending.pop(op.key, None)

    def _invalidate(self) -> None:
        """A write failed: what is in memory may be ahead of the disk; start again from the disk."""
        self._epoch += 1
        self._rows.clear()
        self._tails.clear()
        self._tail_total = 0
        self._key_of.clear()

    async def _call(self, fn: Fn, landed: Callable[[Any], None] | None = None) -> Any:
        return await self._wait(self._submit(_Op(fn, key=None, epoch=None, wait=True, landed=landed)))

    def _write(self, key: str, fn: Fn, *, wait: bool, notify: str | None = None) -> _Op:
        return self._submit(_Op(fn, key=key, epoch=self._epoch, wait=wait, notify=notify), inline=True)

    # ------------------------------------------------------------------ the copy in memory

    def _keep(self, rec: SessionRecord | None, key: str) -> None:
        old = self._rows.get(key)
        if old is not None and (rec is None or old.session_id != rec.session_id):
            self._drop_tail(old.session_id)
            self._key_of.pop(old.session_id, None)
        self._rows[key] = rec
        self._rows.move_to_end(key)
        if rec is not None:
            self._key_of[rec.session_id] = key
        if len(self._rows) > self.max_sessions:
            self._evict()

    def _evict(self) -> None:
        for key in list(self._rows)[: len(self._rows) - self.max_sessions + 64]:
            if key in self._pending:
                continue
            rec = self._rows.pop(key)
            if rec is not None:
                self._drop_tail(rec.session_id)
                self._key_of.pop(rec.session_id, None)

    async def _row(self, key: str) -> SessionRecord | None:
        """The row of ``key`` (None: no such session), from memory or from the disk."""
        found: SessionRecord | None = None
        for _attempt in range(8):
            if key in self._rows:
                self._rows.move_to_end(key)
                return self._rows[key]
            epoch = self._epoch

            def landed(found: SessionRecord | None, epoch: int = epoch) -> None:
                # At delivery, in queue order: a write queued after this read has its row in memory
                # (pinned while queued), so an absent key means the disk's answer is current.
                if key not in self._rows and epoch == self._epoch:
                    self._keep(found, key)

            found = await self._call(lambda s: s.get(key), landed)
            if key in self._rows:
                return self._rows[key]
            if epoch != self._epoch:
                return found
            # kept, then evicted before this task resumed: read again
        return found

    def _extend_tail(self, rec: SessionRecord, numbered: list[MessageRecord], *, fresh: bool = False) -> None:
        box = [] if fresh else self._tails.get(rec.session_id)
        if box is None:
            box = []
        self._set_tail(rec.session_id, [*box, *numbered][-self.tail :])

    def _set_tail(self, session_id: str, box: list[MessageRecord]) -> None:
        self._drop_tail(session_id)
        self._tails[session_id] = box
        self._tail_total += len(box)
        while self._tail_total > self.max_messages and len(self._tails) > 1:
            oldest = next(iter(self._tails))
            self._drop_tail(oldest)

    def _drop_tail(self, session_id: str) -> None:
        box = self._tails.pop(session_id, None)
        if box is not None:
            self._tail_total -= len(box)

    @staticmethod
    def _copy(rec: SessionRecord | None) -> SessionRecord | None:
        return msgspec.structs.replace(rec, extra=dict(rec.extra)) if rec is not None else None

    # ------------------------------------------------------------------ SessionStore, async

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``method`` of the store by name (the agent runtime's ``StoreCall``)."""
        own = _OWN.get(method)
        if own is not None:
            return await own(self, *args, **kwargs)
        return await self._call(lambda s: getattr(s, method)(*args, **kwargs))

    def call_now(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``method`` answered from memory when it can be (``ensure`` of a hot or minted key,
        ``messages`` within a hot tail, ``begin_run``), else ``_runtime.LATER`` (use :meth:`call`)."""
        if self._closed:
            raise StoreError("the session store is closed")
        if method == "ensure" and args:
            key = args[0]
            if key in self._rows:
                self._rows.move_to_end(key)
            elif not kwargs.get("new"):
                return LATER
            return self._ensured(self._rows.get(key), *args, **{k: v for k, v in kwargs.items() if k != "new"})
        if method == "messages" and len(args) == 1 and "limit" in kwargs:
            hit = self._tail_hit(args[0], limit=kwargs["limit"], before_seq=kwargs.get("before_seq"))
            return LATER if hit is None else hit
        if method == "begin_run":
            self._begin_run(*args, **kwargs)
            return None
        return LATER

    async def get(self, key: str) -> SessionRecord | None:
        return self._copy(await self._row(key))

    async def ensure(
        self, key: str, agent_id: str, now_ms: int, extra: dict[str, Any] | None = None, *, new: bool = False
    ) -> SessionRecord:
        """``new``: the key was minted for this run (a fresh uuid4), so no row can hold it and the
        disk is not asked (one hand-off less per stateless request). Were one there all the same,
        the insert fails, the cache is dropped and the turn's write is refused: nothing is overwritten."""
        rec = self._rows.get(key) if new else await self._row(key)
        return self._ensured(rec, key, agent_id, now_ms, extra)

    def _ensured(
        self, rec: SessionRecord | None, key: str, agent_id: str, now_ms: int, extra: dict[str, Any] | None = None
    ) -> SessionRecord:
        """The row found (or ``None``: created now, its insert queued)."""
        if rec is None:
            rec = created(key, self.store.new_id(), agent_id, now_ms, extra)
            self._keep(rec, key)
            self._set_tail(rec.session_id, [])
            new = rec
            self._write(key, lambda s: s.insert_session(new), wait=False).merge = ("session", key, None)
        out = self._copy(rec)
        assert out is not None
        return out

    def _tail_hit(self, session_id: str, *, limit: int, before_seq: int | None) -> list[MessageRecord] | None:
        """The page from the hot tail in memory, or ``None`` when it must come from the disk."""
        if limit <= 0:
            return []
        key = self._key_of.get(session_id)
        rec = self._rows.get(key) if key is not None else None
        box = self._tails.get(session_id)
        if rec is not None and box is not None:
            top = rec.message_count if before_seq is None else min(rec.message_count, before_seq - 1)
            low = max(1, top - limit + 1)
            first = rec.message_count - len(box) + 1
            if top < 1:
                return []
            if low >= first:
                self._tails.move_to_end(session_id)
                return [msgspec.structs.replace(m) for m in box[low - first : top - first + 1]]
        return None

    async def messages(self, session_id: str, *, limit: int, before_seq: int | None = None) -> list[MessageRecord]:
        hit = self._tail_hit(session_id, limit=limit, before_seq=before_seq)
        if hit is not None:
            return hit
        epoch = self._epoch

        def landed(rows: list[MessageRecord]) -> None:
            # The newest messages of a row in memory with no write queued: a valid tail.
            key = self._key_of.get(session_id)
            rec = self._rows.get(key) if key is not None else None
            if (
                before_seq is None and rec is not None and epoch == self._epoch and key not in self._pending
                and (rows[-1].seq if rows else 0) == rec.message_count
                and len(rows) > len(self._tails.get(session_id) or ())
            ):
                self._set_tail(session_id, [msgspec.structs.replace(m) for m in rows[-self.tail :]])

        return await self._call(lambda s: s.messages(session_id, limit=limit, before_seq=before_seq), landed)

    async def begin_run(self, run_id: str, key: str, input_text: str, now_ms: int) -> None:
        self._begin_run(run_id, key, input_text, now_ms)

    def _begin_run(self, run_id: str, key: str, input_text: str, now_ms: int) -> None:
        op = _Op(lambda s: s.begin_run(run_id, key, input_text, now_ms), key=None, epoch=None, wait=False)
        op.merge = ("run", run_id, (key, input_text, now_ms))
        self._submit(op, inline=True)

    def _absorb(self, key: str, run_id: str | None) -> tuple[bool, tuple[str, str, int] | None]:
        """Take this session's insert and this run's begin out of the writes still waiting to
        commit (a quick turn's own, ``fold_tasks``): the turn's write makes those rows as they end
        instead, in the same transaction. (Whether the row was inserted, the run's (key, input,
        started_at)) for :meth:`SqliteSessionStore.write_turn`."""
        insert_row, begun = False, None
        if not self._deferred:
            return insert_row, begun
        keep: list[_Op] = []
        for op in self._deferred:
            kind, which, row = op.merge or ("", "", None)
            if kind == "session" and which == key and op.epoch == self._epoch and not insert_row:
                insert_row = True
                self._settled_pending(op)
            elif kind == "run" and which == run_id and begun is None:
                begun = row
            else:
                keep.append(op)
        self._deferred = keep
        if not keep:
            self._deferred_at = None
        return insert_row, begun

    async def append_turn(
        self,
        key: str,
        run_id: str | None,
        messages: list[MessageRecord],
        usage: Usage,
        now_ms: int,
        *,
        model: str | None = None,
        provider: str | None = None,
        status: str = "ok",
        route: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> SessionRecord:
        rec = await self._row(key)
        if rec is None:
            raise KeyError(key)
        new, numbered = appended(rec, messages, usage, now_ms, model=model, provider=provider, route=route, extra=extra)
        self._keep(new, key)
        self._extend_tail(new, numbered)
        insert_row, begun = self._absorb(key, run_id)

        def write(s: SqliteSessionStore) -> None:
            s.write_turn(new, numbered, run_id, status, now_ms, insert_row=insert_row, begun=begun)

        await self._wait(self._write(key, write, wait=True, notify="message"))
        out = self._copy(new)
        assert out is not None
        return out

    async def patch(self, key: str, fields: dict[str, Any], now_ms: int) -> SessionRecord | None:
        rec = await self._row(key)
        if rec is None:
            return None
        new = patched(rec, fields, now_ms)
        self._keep(new, key)
        await self._wait(self._write(key, lambda s: s.put_session(new), wait=True, notify="patch"))
        return self._copy(new)

    async def reset(self, key: str, now_ms: int, marker: MessageRecord | None = None) -> SessionRecord | None:
        rec = await self._row(key)
        if rec is None:
            return None
        new, messages = was_reset(rec, now_ms, marker)
        self._keep(new, key)
        self._extend_tail(new, messages, fresh=True)
        await self._wait(self._write(key, lambda s: s.write_reset(new, messages), wait=True, notify="reset"))
        return self._copy(new)

    async def delete(self, key: str) -> bool:
        rec = await self._row(key)
        if rec is None:
            return False
        self._keep(None, key)
        await self._wait(self._write(key, lambda s: s.remove_session(rec), wait=True, notify="delete"))
        return True

    # ------------------------------------------------------------------ watchers

    def watch(self, key: str) -> SessionWatch:
        """Follow ``key``'s committed writes (call :meth:`unwatch` when done)."""
        w = SessionWatch(key)
        self._watches.setdefault(key, set()).add(w)
        return w

    def unwatch(self, w: SessionWatch) -> None:
        group = self._watches.get(w.key)
        if group is not None:
            group.discard(w)
            if not group:
                del self._watches[w.key]

    # ------------------------------------------------------------------ life

    async def aclose(self) -> None:
        """Write what is queued, stop the thread, close the file."""
        if self._closed:
            return
        self.commit_deferred()
        self._closed = True
        if self._later_wake is not None:
            self._later_wake.set()  # the committer task ends
        self._writer.queue.put(None)
        await trio.to_thread.run_sync(self._writer.join)
        await trio.to_thread.run_sync(self.store.close)


_OWN: Final[dict[str, Callable[..., Any]]] = {
    name: getattr(CachedSessionStore, name)
    for name in ("get", "ensure", "messages", "begin_run", "append_turn", "patch", "reset", "delete")
}

__all__ = ["DEFER_S", "MAX_SESSIONS", "TAIL", "CachedSessionStore", "SessionWatch"]
