"""The session store as the gateway uses it (gateway_trio.store.cached): one writer thread, group
commit, hot sessions in memory. What must hold: every write of many concurrent callers lands, in
order per session; a write that returned is on disk (another connection sees it, a reopened store
has it); what memory answers equals what the disk holds; a failed write drops the cache and the
writes computed from it; a chat request waits for the thread at most twice (counted, not timed)."""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from shell_harness import TOKEN, asgi_http, make_gateway

from gateway_core.agents.store import MessageRecord, SessionQuery, Usage
from gateway_trio.store.cached import (
    CHECKPOINT_EVERY,
    DEFER_S,
    SLOW_BACKOFF_MIN_S,
    SLOW_BACKOFF_S,
    CachedSessionStore,
    _Op,
)
from gateway_trio.store.sessions import SqliteSessionStore, StoreError


def _ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"sid-{next(counter)}"


def _run(tmp_path: Path, body: Callable[[CachedSessionStore, Path], Awaitable[None]], **kw: Any) -> None:
    path = tmp_path / "sessions.sqlite"

    async def main() -> None:
        store = CachedSessionStore(SqliteSessionStore(path, _ids()), **kw)
        try:
            with trio.fail_after(60):
                await body(store, path)
        finally:
            await store.aclose()

    trio.run(main)


def _msg(text: str, role: str = "user") -> MessageRecord:
    return MessageRecord(role=role, content=[{"type": "text", "text": text}], ts=1, meta={"n": text})


def _disk(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """What another connection to the file sees (committed data only)."""
    db = sqlite3.connect(path)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def test_concurrent_writes_all_land_in_order_per_session(tmp_path: Path) -> None:
    sessions, turns = 12, 15

    async def body(store: CachedSessionStore, path: Path) -> None:
        async def writer(i: int) -> None:
            key = f"agent:main:s{i}"
            await store.ensure(key, "main", 1)
            for t in range(turns):
                await store.begin_run(f"r{i}-{t}", key, "x", 1)
                saved = await store.append_turn(key, f"r{i}-{t}", [_msg(f"{i}:{t}:q"), _msg(f"{i}:{t}:a", "assistant")],
                                                Usage(input=1, total=1), 10 + t)
                assert saved.message_count == 2 * (t + 1)

        async with trio.open_nursery() as nursery:
            for i in range(sessions):
                nursery.start_soon(writer, i)
        for i in range(sessions):
            rows = _disk(path, "SELECT m.seq, m.meta FROM messages m JOIN sessions s ON s.session_id = m.session_id "
                               "WHERE s.key = ? ORDER BY m.seq", f"agent:main:s{i}")
            want = [f"{i}:{t}:{part}" for t in range(turns) for part in ("q", "a")]
            assert [json.loads(meta)["n"] for _, meta in rows] == want
            assert [seq for seq, _ in rows] == list(range(1, 2 * turns + 1))
            (count, total), = _disk(path, "SELECT message_count, usage_total FROM sessions WHERE key = ?", f"agent:main:s{i}")
            assert (count, total) == (2 * turns, turns)
        assert _disk(path, "SELECT count(*) FROM runs WHERE status = 'ok'") == [(sessions * turns,)]

    _run(tmp_path, body)


def test_an_acknowledged_write_is_on_disk_and_survives_reopening(tmp_path: Path) -> None:
    async def body(store: CachedSessionStore, path: Path) -> None:
        await store.ensure("agent:main:k", "main", 1)
        await store.append_turn("agent:main:k", None, [_msg("kept")], Usage(), 5)
        # Returned: committed, so a second connection sees it now (WAL: it survives a killed process).
        assert _disk(path, "SELECT count(*) FROM messages") == [(1,)]
        patched = await store.patch("agent:main:k", {"label": "L"}, 6)
        assert patched is not None and patched.label == "L"
        assert _disk(path, "SELECT label FROM sessions") == [("L",)]

    _run(tmp_path, body)
    again = SqliteSessionStore(tmp_path / "sessions.sqlite", _ids())
    try:
        rec = again.get("agent:main:k")
        assert rec is not None and rec.label == "L" and rec.message_count == 1
        assert [m.content[0]["text"] for m in again.messages(rec.session_id, limit=10)] == ["kept"]
    finally:
        again.close()


def test_queued_writes_are_written_at_close(tmp_path: Path) -> None:
    async def body(store: CachedSessionStore, path: Path) -> None:
        for i in range(50):  # queued, not waited for
            await store.ensure(f"agent:main:q{i}", "main", i)
            await store.begin_run(f"run{i}", f"agent:main:q{i}", "in", i)

    _run(tmp_path, body)
    assert _disk(tmp_path / "sessions.sqlite", "SELECT count(*) FROM sessions") == [(50,)]
    assert _disk(tmp_path / "sessions.sqlite", "SELECT count(*) FROM runs WHERE status = 'running'") == [(50,)]


def test_memory_answers_what_the_disk_holds(tmp_path: Path) -> None:
    async def body(store: CachedSessionStore, path: Path) -> None:
        disk = SqliteSessionStore(path, _ids())  # a second connection: committed state only
        try:
            async def same(key: str) -> None:
                mine = await store.get(key)
                assert mine == disk.get(key)
                if mine is not None:
                    for limit, before in ((1, None), (3, None), (500, None), (2, 4), (3, 2), (10, 1), (4, 99)):
                        assert await store.messages(mine.session_id, limit=limit, before_seq=before) == \
                            disk.messages(mine.session_id, limit=limit, before_seq=before), (limit, before)

            key = "agent:main:same"
            assert await store.get(key) is None
            await store.ensure(key, "main", 1, {"createdVia": "run"})
            for t in range(6):
                await store.append_turn(key, None, [_msg(f"q{t}"), _msg(f"a{t}", "assistant")], Usage(output=2, total=2),
                                        10 + t, model="m", provider="p", route={"channel": "x"}, extra={"t": t})
                await same(key)
            await store.patch(key, {"label": "lab", "thinking": "low", "nope": 1}, 30)
            await same(key)
            await store.reset(key, 40, _msg("marker", "system"))
            await same(key)
            await store.append_turn(key, None, [_msg("after")], Usage(), 41)
            await same(key)
            page = await store.call("list", SessionQuery(search="same"))
            assert [r.key for r in page.rows] == [key] and page.rows[0] == disk.get(key)
            assert await store.delete(key) is True
            await same(key)
            assert await store.delete(key) is False
        finally:
            disk.close()

    _run(tmp_path, body)


def test_a_long_session_is_read_from_disk_past_the_tail(tmp_path: Path) -> None:
    async def body(store: CachedSessionStore, path: Path) -> None:
        await store.ensure("agent:main:long", "main", 1)
        for t in range(20):
            await store.append_turn("agent:main:long", None, [_msg(f"m{t}")], Usage(), t)
        rec = await store.get("agent:main:long")
        assert rec is not None
        before = store.handoffs
        newest = await store.messages(rec.session_id, limit=4)
        assert [m.seq for m in newest] == [17, 18, 19, 20] and store.handoffs == before  # in the tail
        older = await store.messages(rec.session_id, limit=10)
        assert [m.seq for m in older] == list(range(11, 21)) and store.handoffs == before + 1  # past it: disk

    _run(tmp_path, body, tail=5)


def test_rows_are_forgotten_past_the_bound_and_read_again(tmp_path: Path) -> None:
    async def body(store: CachedSessionStore, path: Path) -> None:
        for i in range(40):
            await store.ensure(f"agent:main:e{i}", "main", i)
            await store.append_turn(f"agent:main:e{i}", None, [_msg(f"only{i}")], Usage(), i)
        assert len(store._rows) <= 8 + 64
        for i in range(40):
            rec = await store.get(f"agent:main:e{i}")
            assert rec is not None and rec.message_count == 1
            assert [m.meta["n"] for m in await store.messages(rec.session_id, limit=5)] == [f"only{i}"]

    _run(tmp_path, body, max_sessions=8)


def test_messages_in_memory_are_bounded_in_all(tmp_path: Path) -> None:
    async def body(store: CachedSessionStore, path: Path) -> None:
        for i in range(10):
            await store.ensure(f"agent:main:b{i}", "main", i)
            await store.append_turn(f"agent:main:b{i}", None, [_msg(f"{i}:{n}") for n in range(4)], Usage(), i)
            assert sum(len(box) for box in store._tails.values()) <= 9
        for i in range(10):
            rec = await store.get(f"agent:main:b{i}")
            assert rec is not None
            assert [m.meta["n"] for m in await store.messages(rec.session_id, limit=10)] == [f"{i}:{n}" for n in range(4)]

    _run(tmp_path, body, max_messages=9)


def test_a_failed_write_drops_the_cache_and_the_writes_made_from_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def body(store: CachedSessionStore, path: Path) -> None:
        await store.ensure("agent:main:f", "main", 1)
        await store.append_turn("agent:main:f", None, [_msg("one")], Usage(), 2)
        real = SqliteSessionStore.write_turn
        calls = {"n": 0}

        def failing(self: SqliteSessionStore, *args: Any, **kwargs: Any) -> None:
            calls["n"] += 1
            if calls["n"] == 1:
                raise sqlite3.OperationalError("disk I/O error")
            real(self, *args, **kwargs)

        monkeypatch.setattr(SqliteSessionStore, "write_turn", failing)
        with pytest.raises(sqlite3.OperationalError):
            await store.append_turn("agent:main:f", None, [_msg("lost")], Usage(), 3)
        # The copy in memory had gone ahead; it was dropped, and the row comes from the disk again.
        rec = await store.get("agent:main:f")
        assert rec is not None and rec.message_count == 1
        saved = await store.append_turn("agent:main:f", None, [_msg("two")], Usage(), 4)
        assert saved.message_count == 2
        texts = [json.loads(meta)["n"] for (meta,) in _disk(path, "SELECT meta FROM messages ORDER BY seq")]
        assert texts == ["one", "two"]

    _run(tmp_path, body)


def _fail_put_session_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next row write fails as a full or broken disk makes it fail; the ones after succeed."""
    real = SqliteSessionStore.put_session
    failed = {"done": False}

    def failing(self: SqliteSessionStore, rec: Any) -> None:
        if not failed["done"]:
            failed["done"] = True
            raise sqlite3.OperationalError("disk I/O error")
        real(self, rec)

    monkeypatch.setattr(SqliteSessionStore, "put_session", failing)


def test_the_stale_writes_queued_behind_a_failed_one_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def body(store: CachedSessionStore, path: Path) -> None:
        await store.ensure("agent:main:g", "main", 1)
        await store.append_turn("agent:main:g", None, [_msg("one")], Usage(), 2)
        _fail_put_session_once(monkeypatch)
        outcomes: list[Any] = []

        async def patch(label: str) -> None:
            try:
                outcomes.append(await store.patch("agent:main:g", {"label": label}, 5))
            except (sqlite3.OperationalError, StoreError) as exc:
                outcomes.append(type(exc).__name__)

        busy = threading.Event()  # the writer is busy: writes queue behind it (none runs inline)
        store._submit(_Op(lambda s: busy.wait(10), key=None, epoch=None, wait=False))
        async with trio.open_nursery() as nursery:  # both computed from the copy before either lands
            nursery.start_soon(patch, "a")
            nursery.start_soon(patch, "b")
            await trio.testing.wait_all_tasks_blocked()
            busy.set()
        assert sorted(outcomes) == ["OperationalError", "StoreError"]
        assert _disk(path, "SELECT label FROM sessions") == [(None,)]
        assert (await store.patch("agent:main:g", {"label": "c"}, 6)).label == "c"  # type: ignore[union-attr]
        assert _disk(path, "SELECT label FROM sessions") == [("c",)]

    _run(tmp_path, body)


def test_a_failed_inline_write_drops_the_cache_and_the_next_starts_from_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the writer idle a write runs on the loop at once; its failure is the caller's, and
    the copy in memory (which went further than the disk) is dropped."""

    async def body(store: CachedSessionStore, path: Path) -> None:
        await store.ensure("agent:main:g", "main", 1)
        _fail_put_session_once(monkeypatch)
        before = store.inline_writes
        with pytest.raises(sqlite3.OperationalError):
            await store.patch("agent:main:g", {"label": "a"}, 5)
        assert store.inline_writes == before + 1 and "agent:main:g" not in store._rows
        assert (await store.patch("agent:main:g", {"label": "b"}, 6)).label == "b"  # type: ignore[union-attr]
        assert _disk(path, "SELECT label FROM sessions") == [("b",)]

    _run(tmp_path, body)


def test_a_slow_commit_on_the_loop_sends_the_writes_to_the_thread_for_a_while(tmp_path: Path) -> None:
    """A slow disk must not stall the event loop: once a commit on the loop took longer than
    SLOW_COMMIT_S, the writes go through the writer thread until SLOW_BACKOFF_S has passed."""
    slow = {"on": True}
    t = {"now": 0.0}

    def clock() -> float:  # every reading moves 1 s while the disk is "slow", 1 µs after
        t["now"] += 1.0 if slow["on"] else 1e-6
        return t["now"]

    async def body(store: CachedSessionStore, path: Path) -> None:
        await store.ensure("agent:main:s", "main", 1)
        rec = await store.patch("agent:main:s", {"label": "a"}, 2)  # on the loop, measured slow
        assert rec is not None and store.slow_commits == 1
        slow["on"] = False
        inline, handoffs = store.inline_writes, store.handoffs
        await store.patch("agent:main:s", {"label": "b"}, 3)
        assert store.inline_writes == inline and store.handoffs == handoffs + 1  # through the thread
        t["now"] += SLOW_BACKOFF_S  # the backoff has passed: back on the loop
        await store.patch("agent:main:s", {"label": "c"}, 4)
        assert store.inline_writes == inline + 1 and store.handoffs == handoffs + 1
        assert _disk(path, "SELECT label FROM sessions") == [("c",)]

    _run(tmp_path, body, clock=clock)


def test_the_backoff_doubles_while_commits_stay_slow_and_halves_after_fast_ones(tmp_path: Path) -> None:
    """One slow commit sends the writes to the thread for SLOW_BACKOFF_MIN_S only (a one-off stall
    must not cost thirty seconds of hand-offs); each slow commit after it doubles that, up to
    SLOW_BACKOFF_S, and each fast one halves it again."""
    slow = {"on": True}
    t = {"now": 0.0}

    def clock() -> float:  # a commit on the loop reads the clock twice: 1 s apart while "slow"
        t["now"] += 1.0 if slow["on"] else 1e-6
        return t["now"]

    async def body(store: CachedSessionStore, path: Path) -> None:
        await store.ensure("agent:main:b", "main", 1)
        waits = []
        for n in range(10):  # the disk stays slow: every commit on the loop is slow
            await store.patch("agent:main:b", {"label": f"s{n}"}, 2 + n)
            waits.append(store._inline_after - t["now"])
            t["now"] = store._inline_after  # the backoff passes: the next write is on the loop
        assert store.slow_commits == 10
        assert waits[:3] == [SLOW_BACKOFF_MIN_S, 2 * SLOW_BACKOFF_MIN_S, 4 * SLOW_BACKOFF_MIN_S]
        assert max(waits) == SLOW_BACKOFF_S == waits[-1]
        slow["on"] = False
        for n in range(12):  # fast again: each commit on the loop halves the next backoff
            await store.patch("agent:main:b", {"label": f"f{n}"}, 20 + n)
        slow["on"] = True
        await store.patch("agent:main:b", {"label": "blip"}, 40)  # a one-off stall
        assert store._inline_after - t["now"] == SLOW_BACKOFF_MIN_S
        assert _disk(path, "SELECT label FROM sessions") == [("blip",)]

    _run(tmp_path, body, clock=clock)


def test_writes_nobody_waits_for_commit_together_after_the_caller_went_on(tmp_path: Path) -> None:
    """By default a new session's row and its run begun are one transaction, committed once the
    task that made them has gone on (off its request's path)."""

    async def body(store: CachedSessionStore, path: Path) -> None:
        rec = store.call_now("ensure", ("agent:main:openai:w", "main", 1), {"new": True})
        store.call_now("begin_run", ("run-w", rec.key, "hi", 1), {})
        assert _disk(path, "SELECT key FROM sessions") == []  # not yet: the caller goes on first
        commits = store._commits
        await trio.testing.wait_all_tasks_blocked()
        assert _disk(path, "SELECT key FROM sessions") == [("agent:main:openai:w",)]
        assert _disk(path, "SELECT status FROM runs") == [("running",)] and store._commits == commits + 1

    _run(tmp_path, body)


def test_folded_writes_ride_with_the_next_write_or_commit_within_defer_s(tmp_path: Path) -> None:
    """For a task in ``fold_tasks`` (a route driving a quick turn) a new session's row and its run begun
    wait for the turn's own write and commit in its transaction (a quick turn is one commit); with
    no write coming they commit by themselves within DEFER_S. A read queued before then still sees
    them."""

    async def body(store: CachedSessionStore, path: Path) -> None:
        store.fold_tasks.add(trio.lowlevel.current_task())
        rec = store.call_now("ensure", ("agent:main:openai:x", "main", 1), {"new": True})
        store.call_now("begin_run", ("run-x", rec.key, "hi", 1), {})
        commits = store._commits
        await trio.testing.wait_all_tasks_blocked()
        assert _disk(path, "SELECT key FROM sessions") == []  # not yet: waiting for the turn's write
        await store.append_turn(rec.key, "run-x", [_msg("q"), _msg("a", "assistant")], Usage(), 2)
        assert store._commits == commits + 1  # row, run and turn: one transaction
        assert _disk(path, "SELECT key, message_count FROM sessions") == [("agent:main:openai:x", 2)]
        assert _disk(path, "SELECT status FROM runs") == [("ok",)]

        lone = store.call_now("ensure", ("agent:main:openai:z", "main", 1), {"new": True})
        store.call_now("begin_run", ("run-z", lone.key, "hi", 1), {})
        with trio.fail_after(5):
            while _disk(path, "SELECT count(*) FROM sessions WHERE key = ?", lone.key) != [(1,)]:
                await trio.sleep(DEFER_S / 4)
        assert store._commits == commits + 2 and _disk(path, "SELECT status FROM runs WHERE run_id = 'run-z'") == [("running",)]

        rec2 = store.call_now("ensure", ("agent:main:openai:y", "main", 1), {"new": True})
        got = await store.get("agent:main:openai:unknown")  # a read through the thread, queued behind the insert
        assert got is None and _disk(path, "SELECT count(*) FROM sessions WHERE key = ?", rec2.key) == [(1,)]

    _run(tmp_path, body)


def test_the_writer_checkpoints_the_wal_commits_do_not(tmp_path: Path) -> None:
    """Commits (inline ones too) leave the WAL alone; every CHECKPOINT_EVERY commits the writer
    thread copies it back into the database file."""

    async def body(store: CachedSessionStore, path: Path) -> None:
        await store.ensure("agent:main:w", "main", 1)
        assert store.store._db.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        ran: list[int] = []
        real = SqliteSessionStore.checkpoint

        def counted(self: SqliteSessionStore) -> None:
            ran.append(1)
            real(self)

        SqliteSessionStore.checkpoint = counted  # type: ignore[method-assign]
        try:
            for t in range(CHECKPOINT_EVERY + 2):
                await store.append_turn("agent:main:w", None, [_msg(f"m{t}")], Usage(), t)
            with trio.fail_after(10):
                while not ran:
                    await trio.sleep(0.01)
        finally:
            SqliteSessionStore.checkpoint = real  # type: ignore[method-assign]
        assert len(ran) == 1
        assert _disk(path, "SELECT message_count FROM sessions") == [(CHECKPOINT_EVERY + 2,)]

    _run(tmp_path, body)


def test_existing_files_open_and_read_through_the_cache(tmp_path: Path) -> None:
    path = tmp_path / "sessions.sqlite"
    old = SqliteSessionStore(path, _ids())
    old.ensure("agent:main:old", "main", 1)
    old.append_turn("agent:main:old", None, [_msg("from before")], Usage(total=3), 2, model="m", provider="p")
    old.close()

    async def body(store: CachedSessionStore, path: Path) -> None:
        rec = await store.get("agent:main:old")
        assert rec is not None and rec.usage.total == 3 and rec.last_model == "m"
        assert [m.meta["n"] for m in await store.messages(rec.session_id, limit=10)] == ["from before"]

    _run(tmp_path, body)


def test_call_now_answers_from_memory_or_says_later(tmp_path: Path) -> None:
    """The turn's effects answered without waiting (``call_now``) equal what the awaited calls
    give, and whatever needs the disk is ``LATER``: an unknown key, a page past the hot tail."""
    from gateway_trio._runtime import LATER

    async def body(store: CachedSessionStore, path: Path) -> None:
        assert store.call_now("ensure", ("agent:main:cold", "main", 1), {}) is LATER  # not in memory: ask the disk
        minted = store.call_now("ensure", ("agent:main:openai:fresh", "main", 1, {"a": 1}), {"new": True})
        assert minted.key == "agent:main:openai:fresh" and minted.extra == {"a": 1}
        assert store.call_now("begin_run", ("run-1", minted.key, "hi", 1), {}) is None
        for t in range(6):
            await store.append_turn(minted.key, "run-1" if t == 0 else None, [_msg(f"m{t}")], Usage(), 2 + t)
        hot = store.call_now("ensure", (minted.key, "main", 9), {})
        assert hot == await store.ensure(minted.key, "main", 9)
        page = store.call_now("messages", (hot.session_id,), {"limit": 3})
        assert page == await store.messages(hot.session_id, limit=3) and [m.seq for m in page] == [4, 5, 6]
        assert store.call_now("messages", (hot.session_id,), {"limit": 6}) is LATER  # past the tail of 5
        assert _disk(path, "SELECT status FROM runs WHERE run_id = 'run-1'") == [("ok",)]  # begin_run landed, then settled

    _run(tmp_path, body, tail=5)


def test_a_quick_turn_folds_its_new_row_and_run_into_its_own_write(tmp_path: Path) -> None:
    """A task in ``fold_tasks`` (a route driving a quick turn): the new session's insert and the
    run begun wait for the turn's write, which makes both rows as they end (one commit, the same
    rows as the unfolded path writes, checked against a turn outside ``fold_tasks``). A minted key
    that is on disk after all fails the turn's write: nothing of the turn is kept."""

    async def turn(store: CachedSessionStore, key: str, run_id: str) -> None:
        store.call_now("ensure", (key, "main", 5, {"a": 1}), {"new": True})
        store.call_now("begin_run", (run_id, key, "hi", 5), {})
        await store.append_turn(key, run_id, [_msg("q"), _msg("a", "assistant")], Usage(input=2, output=3, total=5), 7)

    def rows(path: Path, key: str, run_id: str) -> tuple[Any, ...]:
        session = _disk(path, "SELECT agent_id, created_at, updated_at, message_count, usage_total, extra FROM sessions "
                              "WHERE key = ?", key)  # fmt: skip
        run = _disk(path, "SELECT session_key, status, started_at, ended_at, input FROM runs WHERE run_id = ?", run_id)
        (sid,) = _disk(path, "SELECT session_id FROM sessions WHERE key = ?", key)[0]
        messages = _disk(path, "SELECT seq, role, content, run_id, meta FROM messages WHERE session_id = ? ORDER BY seq", sid)
        return session, run, messages

    async def body(store: CachedSessionStore, path: Path) -> None:
        await turn(store, "agent:main:openai:plain", "run-plain")
        await trio.testing.wait_all_tasks_blocked()
        store.fold_tasks.add(trio.lowlevel.current_task())
        before = store.inline_writes
        statements: list[str] = []
        store.store._db.set_trace_callback(statements.append)
        await turn(store, "agent:main:openai:fold", "run-fold")
        store.store._db.set_trace_callback(None)
        assert store.inline_writes - before == 1 and not store.deferred  # one commit: the turn's
        # each row written once, as it ends: no insert then update
        assert [q.split()[0] for q in statements] == ["BEGIN", "INSERT", "INSERT", "INSERT", "INSERT", "COMMIT"], statements
        plain = rows(path, "agent:main:openai:plain", "run-plain")
        folded = rows(path, "agent:main:openai:fold", "run-fold")
        assert folded[0] == plain[0] and folded[2] == plain[2]
        assert folded[1] == [("agent:main:openai:fold", "ok", 5, 7, "hi")] and plain[1] == [("agent:main:openai:plain", "ok", 5, 7, "hi")]
        # A "minted" key that is on disk after all (written behind the cache's back): the turn's
        # write fails, nothing of it lands.
        other = sqlite3.connect(path)
        with other:
            other.execute("INSERT INTO sessions (key, session_id, agent_id, created_at, updated_at) "
                          "VALUES ('agent:main:openai:clash', 'sid-clash', 'main', 1, 1)")  # fmt: skip
        other.close()
        with pytest.raises(Exception, match="UNIQUE"):
            await turn(store, "agent:main:openai:clash", "run-clash")
        assert _disk(path, "SELECT message_count FROM sessions WHERE key = 'agent:main:openai:clash'") == [(0,)]
        assert _disk(path, "SELECT count(*) FROM runs WHERE run_id = 'run-clash'") == [(0,)]

    _run(tmp_path, body)


# --------------------------------------------------------------------------- hand-offs per request


def test_a_chat_request_waits_for_the_store_thread_only_to_read_the_disk(tmp_path: Path) -> None:
    """Counted through the store's seam: with the writer idle, writes commit on the loop at once;
    a stateless request's key is minted from a fresh uuid, so nothing is read either. A named
    session waits once, for the miss that finds it absent the first time."""
    config = {"gateway": {"http": {"endpoints": {"chatCompletions": {"enabled": True}}}}}
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def main() -> None:
        gw = make_gateway(tmp_path, config)
        async with asgi_http(gw) as http:
            with trio.fail_after(60):
                store = await gw.agents.ready_store()  # a fresh state dir opens it at the first need
                assert isinstance(store, CachedSessionStore)
                store.clock = lambda: 0.0  # commits never look slow here (a loaded machine's would)

                async def ask(headers: dict[str, str], text: str) -> int:
                    before = store.handoffs
                    done = await http.post("/v1/chat/completions", headers={**auth, **headers},
                                           json={"model": "openclaw", "messages": [{"role": "user", "content": text}]})
                    assert done.status_code == 200, done.text
                    return store.handoffs - before

                stateless = [await ask({}, f"hello {i}") for i in range(5)]
                assert stateless == [0] * 5, stateless
                hot = [await ask({"x-openclaw-session-key": "hot"}, f"again {i}") for i in range(5)]
                assert hot == [1, 0, 0, 0, 0], hot
                streamed_before = store.handoffs
                done = await http.post("/v1/chat/completions", headers={**auth, "x-openclaw-session-key": "hot"},
                                       json={"model": "openclaw", "stream": True,
                                             "messages": [{"role": "user", "content": "streamed"}]})
                assert done.status_code == 200 and "[DONE]" in done.text
                assert store.handoffs - streamed_before == 0
                page = (await http.get("/sessions/agent:main:hot/history", headers=auth)).json()
                assert [m["role"] for m in page["items"]] == ["user", "assistant"] * 6

    trio.run(main)


def test_a_batch_commits_without_savepoints_unless_one_of_its_writes_fails(tmp_path: Path) -> None:
    """The writer runs a batch as one plain transaction; only when one write in it fails is the
    batch run again with a savepoint per write, so that the failing one is undone alone and the
    others land (with their results, each told its own outcome)."""
    from gateway_trio.store.cached import _Writer

    path = tmp_path / "sessions.sqlite"

    async def main() -> None:
        store = SqliteSessionStore(path, _ids())
        statements: list[str] = []
        store._db.set_trace_callback(statements.append)
        writer = _Writer(store, lambda ops: None)  # not started: run_ops is called here

        def op(fn: Any) -> _Op:
            return _Op(fn, key=None, epoch=None, wait=True)

        good = [op(lambda s, k=k: s.ensure(k, "main", 1).key) for k in ("agent:main:a", "agent:main:b")]
        writer.run_ops(good)
        assert [o.result for o in good] == ["agent:main:a", "agent:main:b"] and all(o.error is None for o in good)
        assert not any("SAVEPOINT" in q for q in statements) and statements.count("COMMIT") == 1

        def boom(s: SqliteSessionStore) -> None:
            s.ensure("agent:main:half", "main", 1)
            raise StoreError("refused")

        statements.clear()
        mixed = [op(lambda s: s.ensure("agent:main:c", "main", 1).key), op(boom), op(lambda s: s.ensure("agent:main:d", "main", 1).key)]
        writer.run_ops(mixed)
        assert [o.result for o in mixed] == ["agent:main:c", None, "agent:main:d"]
        assert isinstance(mixed[1].error, StoreError) and mixed[0].error is None and mixed[2].error is None
        assert any("SAVEPOINT" in q for q in statements)  # the second pass
        keys = {k for (k,) in _disk(path, "SELECT key FROM sessions")}
        assert keys == {"agent:main:a", "agent:main:b", "agent:main:c", "agent:main:d"}  # not the failed one's half
        store.close()

    trio.run(main)
