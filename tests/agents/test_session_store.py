"""The session store contract, run against both implementations (SQLite and in memory)."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway_core.agents.store import MemorySessionStore, MessageRecord, SessionQuery, SessionStore, Usage
from gateway_trio.store.sessions import SqliteSessionStore, StoreError


def _ids() -> Iterator[str]:
    return (f"s{n}" for n in itertools.count(1))


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> SessionStore:
    ids = _ids()
    if request.param == "memory":
        return MemorySessionStore(lambda: next(ids))
    return SqliteSessionStore(tmp_path / "sessions.sqlite", lambda: next(ids))


def _turn(text: str, reply: str, ts: int) -> list[MessageRecord]:
    return [
        MessageRecord(role="user", content=text, ts=ts),
        MessageRecord(role="assistant", content=[{"type": "text", "text": reply}], ts=ts + 1, meta={"stopReason": "stop"}),
    ]


def test_ensure_creates_once(store: SessionStore) -> None:
    a = store.ensure("agent:main:main", "main", 10)
    b = store.ensure("agent:main:main", "main", 20)
    assert a.session_id == b.session_id and b.created_at == 10
    assert store.get("agent:main:x") is None and store.count() == 1


def test_a_turn_is_written_whole(store: SessionStore) -> None:
    rec = store.ensure("agent:main:main", "main", 10)
    store.begin_run("r1", rec.key, "hello", 10)
    out = store.append_turn(
        rec.key, "r1", _turn("hello", "hi there", 11), Usage(input=5, output=2, total=7), 20, model="echo", provider="offline"
    )
    assert out.message_count == 2 and out.usage.total == 7 and out.updated_at == 20
    assert out.last_model == "echo" and out.last_text == "hi there"
    msgs = store.messages(rec.session_id, limit=10)
    assert [m.seq for m in msgs] == [1, 2] and msgs[1].content[0]["text"] == "hi there"
    assert msgs[1].meta == {"stopReason": "stop"}
    assert store.interrupted_runs() == []


def test_history_pages_from_the_end(store: SessionStore) -> None:
    rec = store.ensure("k", "main", 0)
    for i in range(5):
        store.append_turn("k", None, _turn(f"q{i}", f"a{i}", i * 10), Usage(), i * 10 + 5)
    last = store.messages(rec.session_id, limit=3)
    assert [m.seq for m in last] == [8, 9, 10]
    before = store.messages(rec.session_id, limit=3, before_seq=8)
    assert [m.seq for m in before] == [5, 6, 7]


def test_a_run_that_never_ended_is_found(store: SessionStore) -> None:
    store.ensure("k", "main", 0)
    store.begin_run("r1", "k", "lost input", 1)
    store.begin_run("r2", "k", "done", 2)
    store.end_run("r2", "aborted", 3)
    runs = store.interrupted_runs()
    assert [(r.run_id, r.input) for r in runs] == [("r1", "lost input")]


def test_list_filters_sorts_and_pages(store: SessionStore) -> None:
    for i in range(30):
        store.ensure(f"agent:{'ops' if i % 3 == 0 else 'main'}:s{i:02d}", "ops" if i % 3 == 0 else "main", 1000 + i)
    store.patch("agent:main:s05", {"label": "Budget"}, 5000)
    page = store.list(SessionQuery(limit=5))
    assert page.total == 30 and page.rows[0].key == "agent:main:s05"
    assert [r.key for r in store.list(SessionQuery(search="budg")).rows] == ["agent:main:s05"]
    assert store.list(SessionQuery(agent_id="ops")).total == 10
    second = store.list(SessionQuery(limit=5, offset=5, sort_by="createdAt"))
    assert [r.key for r in second.rows] == [f"agent:{'ops' if i % 3 == 0 else 'main'}:s{i:02d}" for i in range(24, 19, -1)]
    assert store.list(SessionQuery(active_since_ms=1025)).total == 6  # 25..29, plus s05 touched at 5000


def test_patch_reset_delete(store: SessionStore) -> None:
    rec = store.ensure("k", "main", 0)
    store.append_turn("k", None, _turn("q", "a", 1), Usage(total=3), 2)
    patched = store.patch("k", {"label": "L", "model_override": "p/m", "thinking": "high", "key": "evil"}, 3)
    assert patched is not None and (patched.label, patched.model_override, patched.thinking) == ("L", "p/m", "high")
    assert patched.key == "k"
    marker = MessageRecord(role="system", content=[{"type": "text", "text": "Reset"}], ts=4)
    reset = store.reset("k", 4, marker)
    assert reset is not None and reset.session_id == rec.session_id and reset.message_count == 1  # kept, as published
    assert reset.usage.total == 0 and reset.label is None and reset.model_override is None
    assert [m.role for m in store.messages(rec.session_id, limit=10)] == ["system"]
    assert store.delete("k") is True and store.delete("k") is False and store.get("k") is None
    assert store.patch("k", {"label": "x"}, 5) is None and store.reset("k", 5) is None


def test_sqlite_survives_reopen(tmp_path: Path) -> None:
    ids = _ids()
    path = tmp_path / "s.sqlite"
    first = SqliteSessionStore(path, lambda: next(ids))
    first.ensure("k", "main", 0)
    first.append_turn("k", None, _turn("q", "a", 1), Usage(total=3), 2)
    first.close()
    again = SqliteSessionStore(path, lambda: next(ids))
    rec = again.get("k")
    assert rec is not None and rec.message_count == 2
    assert [m.role for m in again.messages(rec.session_id, limit=5)] == ["user", "assistant"]


def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    SqliteSessionStore(path, lambda: "x").close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(StoreError, match="newer"):
        SqliteSessionStore(path, lambda: "x")


def test_sqlite_failed_turn_leaves_nothing_behind(tmp_path: Path) -> None:
    store = SqliteSessionStore(tmp_path / "s.sqlite", lambda: "sid")
    store.ensure("k", "main", 0)
    bad = [MessageRecord(role="user", content="q", ts=1), MessageRecord(role="assistant", content=object(), ts=2)]
    with pytest.raises(TypeError):
        store.append_turn("k", None, bad, Usage(total=1), 3)
    rec = store.get("k")
    assert rec is not None and rec.message_count == 0 and rec.usage.total == 0
    assert store.messages("sid", limit=5) == []
