"""The session store on SQLite (``<state>/agents/sessions.sqlite``): WAL, one transaction per call.

Implements :class:`gateway_core.agents.store.SessionStore`. Calls are synchronous; the gateway
uses it through :class:`gateway_trio.store.cached.CachedSessionStore` (one writer thread, group
commit, hot sessions served from memory), so the event loop never waits on the disk. WAL with ``synchronous=NORMAL`` keeps every committed transaction across a killed
process (a power cut may lose the newest ones, never corrupt the file). The schema carries a
version and is migrated forward in order at open; a newer file than this code knows is refused.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import trio

from gateway_core.agents.store import (
    PATCHABLE,
    RESET_CLEARS,
    MessageRecord,
    RunRecord,
    SessionPage,
    SessionQuery,
    SessionRecord,
    Usage,
    preview_text,
)

#: Ordered migrations: index + 1 is the schema version each one produces.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE sessions (
        key TEXT PRIMARY KEY,
        session_id TEXT NOT NULL UNIQUE,
        agent_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        label TEXT,
        model_override TEXT,
        thinking TEXT,
        usage_input INTEGER NOT NULL DEFAULT 0,
        usage_output INTEGER NOT NULL DEFAULT 0,
        usage_cache_read INTEGER NOT NULL DEFAULT 0,
        usage_cache_write INTEGER NOT NULL DEFAULT 0,
        usage_total INTEGER NOT NULL DEFAULT 0,
        message_count INTEGER NOT NULL DEFAULT 0,
        last_model TEXT,
        last_provider TEXT,
        last_route TEXT,
        last_text TEXT,
        extra TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX sessions_by_updated ON sessions (updated_at DESC, key);
    CREATE INDEX sessions_by_agent ON sessions (agent_id, updated_at DESC);
    CREATE TABLE messages (
        session_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        ts INTEGER NOT NULL,
        run_id TEXT,
        meta TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (session_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        session_key TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        ended_at INTEGER,
        input TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX runs_running ON runs (status) WHERE status = 'running';
    """,
    # 2: links kept with the sessions: ``previous_response_id`` (kind ``response``,
    # responses.previousResponse.persist) and chat-UI conversation anchors (kind ``conversation``).
    """
    CREATE TABLE response_links (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        session_key TEXT NOT NULL,
        record TEXT NOT NULL,
        ts INTEGER NOT NULL
    );
    CREATE INDEX response_links_by_ts ON response_links (kind, ts);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_COLUMNS = (
    "key, session_id, agent_id, created_at, updated_at, label, model_override, thinking, usage_input, "
    "usage_output, usage_cache_read, usage_cache_write, usage_total, message_count, last_model, last_provider, "
    "last_route, last_text, extra"
)
_SORTS = {
    "updatedAt": "updated_at DESC, key",
    "createdAt": "created_at DESC, key",
    "label": "COALESCE(label, char(0x10FFFF)) COLLATE NOCASE, key",
    "key": "key",
}


class StoreError(Exception):
    """The store file cannot be used (a newer schema, a corrupt file)."""


def _row(r: tuple[Any, ...]) -> SessionRecord:
    return SessionRecord(
        key=r[0],
        session_id=r[1],
        agent_id=r[2],
        created_at=r[3],
        updated_at=r[4],
        label=r[5],
        model_override=r[6],
        thinking=r[7],
        usage=Usage(input=r[8], output=r[9], cache_read=r[10], cache_write=r[11], total=r[12]),
        message_count=r[13],
        last_model=r[14],
        last_provider=r[15],
        last_route=json.loads(r[16]) if r[16] else None,
        last_text=r[17],
        extra=json.loads(r[18]) if r[18] else {},
    )


_encoder = msgspec.json.Encoder()


def _dumps(value: Any) -> str:
    """A column's JSON text: msgspec (compact, UTF-8); the stdlib's escaped form for what msgspec
    refuses (lone surrogates, odd types), which reads back the same."""
    try:
        return _encoder.encode(value).decode()
    except (TypeError, UnicodeEncodeError):
        return json.dumps(value)


def _values(rec: SessionRecord) -> tuple[Any, ...]:
    """A record as the ``sessions`` columns, in :data:`_COLUMNS` order."""
    u = rec.usage
    return (
        rec.key, rec.session_id, rec.agent_id, rec.created_at, rec.updated_at, rec.label, rec.model_override,
        rec.thinking, u.input, u.output, u.cache_read, u.cache_write, u.total, rec.message_count, rec.last_model,
        rec.last_provider, _dumps(rec.last_route) if rec.last_route is not None else None, rec.last_text,
        _dumps(rec.extra),
    )


_INSERT_SESSION = f"INSERT INTO sessions ({_COLUMNS}) VALUES ({', '.join('?' * 19)})"
_UPDATE_SESSION = (
    "UPDATE sessions SET session_id = ?, agent_id = ?, created_at = ?, updated_at = ?, label = ?, model_override = ?, "
    "thinking = ?, usage_input = ?, usage_output = ?, usage_cache_read = ?, usage_cache_write = ?, usage_total = ?, "
    "message_count = ?, last_model = ?, last_provider = ?, last_route = ?, last_text = ?, extra = ? WHERE key = ?"
)
_INSERT_MESSAGE = "INSERT INTO messages (session_id, seq, role, content, ts, run_id, meta) VALUES (?, ?, ?, ?, ?, ?, ?)"


# --------------------------------------------------------------------------- transitions
# What each write makes of a session row, in one place: the SQLite store applies them inside its
# transactions, the cached store (gateway_trio.store.cached) to its copy before queueing the write.


def created(key: str, session_id: str, agent_id: str, now_ms: int, extra: dict[str, Any] | None) -> SessionRecord:
    """A new, empty session row."""
    return SessionRecord(key=key, session_id=session_id, agent_id=agent_id, created_at=now_ms, updated_at=now_ms,
                         extra=dict(extra or {}))


def appended(
    rec: SessionRecord,
    messages: list[MessageRecord],
    usage: Usage,
    now_ms: int,
    *,
    model: str | None,
    provider: str | None,
    route: dict[str, Any] | None,
    extra: dict[str, Any] | None,
) -> tuple[SessionRecord, list[MessageRecord]]:
    """The row after a turn's messages are appended, and those messages numbered (seq 1.. per session)."""
    seq = rec.message_count
    numbered = [msgspec.structs.replace(m, seq=seq + i) for i, m in enumerate(messages, 1)]
    new = msgspec.structs.replace(
        rec,
        updated_at=now_ms,
        usage=rec.usage.add(usage),
        message_count=seq + len(messages),
        last_model=model if model is not None else rec.last_model,
        last_provider=provider if model is not None and provider is not None else rec.last_provider,
        last_route=route if route is not None else rec.last_route,
        last_text=preview_text(messages[-1].content) if messages else rec.last_text,
        extra={**rec.extra, **(extra or {})},
    )
    return new, numbered


def patched(rec: SessionRecord, fields: dict[str, Any], now_ms: int) -> SessionRecord:
    """The row with its patchable fields set."""
    sets = {name: value for name, value in fields.items() if name in PATCHABLE}
    return msgspec.structs.replace(rec, **sets, updated_at=now_ms)


def was_reset(rec: SessionRecord, now_ms: int, marker: MessageRecord | None) -> tuple[SessionRecord, list[MessageRecord]]:
    """The row after a reset (transcript emptied, or only ``marker`` as seq 1) and its messages."""
    messages = [msgspec.structs.replace(marker, seq=1)] if marker is not None else []
    new = msgspec.structs.replace(
        rec, **RESET_CLEARS, usage=Usage(), message_count=len(messages), last_text=None, updated_at=now_ms,
        extra={k: v for k, v in rec.extra.items() if k in ("createdVia", "chatType")},
    )
    return new, messages


# --------------------------------------------------------------------------- the store


class SqliteSessionStore:
    """:class:`SessionStore` on one SQLite connection (a re-entrant lock serializes threads).

    Each public call is one transaction; called inside one already open (the cached store's
    writer runs a batch of calls as one transaction, each under a savepoint), it joins it.
    """

    def __init__(self, path: Path | str, new_id: Callable[[], str]) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.new_id = new_id
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def manual_checkpoints(self) -> None:
        """Commits stop checkpointing the WAL themselves (a checkpoint writes the database file and
        syncs it): the owner calls :meth:`checkpoint` instead, off the event loop."""
        with self._lock:
            self._db.execute("PRAGMA wal_autocheckpoint=0")

    def checkpoint(self) -> None:
        """Copy the WAL back into the database file (PASSIVE: never waits for readers)."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    # ------------------------------------------------------------------ schema

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"session store schema {version} is newer than this gateway understands ({SCHEMA_VERSION})")
        for number in range(version, SCHEMA_VERSION):
            with self._tx():
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {number + 1}")

    def _tx(self) -> _Tx:
        """One transaction holding the lock, or nothing new inside the one already open."""
        return _Tx(self._db, self._lock, join=True)

    @contextmanager
    def batch(self, *, alone: bool = False) -> Iterator[Callable[[Callable[[SqliteSessionStore], Any]], Any]]:
        """One transaction for many calls: yields ``run(fn)``, which applies ``fn(self)`` under a
        savepoint (a failing call is undone alone and its exception re-raised to the caller of
        ``run``); the whole commits when the block ends. Used by the cached store's writer.
        ``alone``: no savepoints (two statements less per call): a failing call rolls the whole
        transaction back. For one call that is the same outcome; the cached store's writer also
        runs a batch this way first and, only when a call failed, again with savepoints."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")

            failed = False

            def run_alone(fn: Callable[[SqliteSessionStore], Any]) -> Any:
                nonlocal failed
                try:
                    return fn(self)
                except BaseException:
                    failed = True
                    raise

            def run(fn: Callable[[SqliteSessionStore], Any]) -> Any:
                self._db.execute("SAVEPOINT op")
                try:
                    out = fn(self)
                except BaseException:
                    self._db.execute("ROLLBACK TO op")
                    self._db.execute("RELEASE op")
                    raise
                self._db.execute("RELEASE op")
                return out

            try:
                yield run_alone if alone else run
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            if failed:  # the one call failed (its caller was told): nothing of it is kept
                self._db.execute("ROLLBACK")
                return
            try:
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    # ------------------------------------------------------------------ row writes (inside a transaction)

    def insert_session(self, rec: SessionRecord) -> None:
        with self._tx():
            self._db.execute(_INSERT_SESSION, _values(rec))

    def put_session(self, rec: SessionRecord) -> None:
        """Write the whole row of an existing session (refused if it is not there)."""
        with self._tx():
            values = _values(rec)
            if self._db.execute(_UPDATE_SESSION, (*values[1:], values[0])).rowcount != 1:
                raise StoreError(f"session {rec.key!r} is not in the store")

    def insert_messages(self, session_id: str, messages: list[MessageRecord]) -> None:
        with self._tx():
            self._db.executemany(
                _INSERT_MESSAGE,
                [(session_id, m.seq, m.role, _dumps(m.content), m.ts, m.run_id, _dumps(m.meta)) for m in messages],
            )

    def clear_messages(self, session_id: str) -> None:
        with self._tx():
            self._db.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))

    def remove_session(self, rec: SessionRecord) -> None:
        with self._tx():
            self._db.execute("DELETE FROM messages WHERE session_id = ?", (rec.session_id,))
            self._db.execute("DELETE FROM sessions WHERE key = ?", (rec.key,))
            self._db.execute("DELETE FROM response_links WHERE session_key = ?", (rec.key,))

    def settle_run(self, run_id: str, status: str, now_ms: int, *, only_running: bool) -> None:
        with self._tx():
            guard = " AND status = 'running'" if only_running else ""
            self._db.execute(f"UPDATE runs SET status = ?, ended_at = ? WHERE run_id = ?{guard}", (status, now_ms, run_id))

    def write_turn(
        self, new: SessionRecord, numbered: list[MessageRecord], run_id: str | None, status: str, now_ms: int,
        *, insert_row: bool = False, begun: tuple[str, str, int] | None = None,
    ) -> None:
        """A computed turn (:func:`appended`): its messages, the row, the run settled.

        ``insert_row``: the session's row is not on disk yet (its insert was still waiting to
        commit and is folded in here): inserted as it ends, not inserted and then updated.
        ``begun``: likewise the run's own row, ``(session key, input, started_at)``: written
        settled at once. Same rows in the end, two statements and their index changes less."""
        with self._tx():
            self.insert_messages(new.session_id, numbered)
            if insert_row:
                self.insert_session(new)
            else:
                self.put_session(new)
            if run_id is not None and begun is not None:
                self.begin_run(run_id, *begun, status=status, ended_ms=now_ms)
            elif run_id is not None:
                self.settle_run(run_id, status, now_ms, only_running=False)

    def write_reset(self, new: SessionRecord, messages: list[MessageRecord]) -> None:
        """A computed reset (:func:`was_reset`)."""
        with self._tx():
            self.clear_messages(new.session_id)
            self.insert_messages(new.session_id, messages)
            self.put_session(new)

    # ------------------------------------------------------------------ sessions

    def _get(self, key: str) -> SessionRecord | None:
        r = self._db.execute(f"SELECT {_COLUMNS} FROM sessions WHERE key = ?", (key,)).fetchone()
        return _row(r) if r else None

    def get(self, key: str) -> SessionRecord | None:
        with self._lock:
            return self._get(key)

    def ensure(
        self, key: str, agent_id: str, now_ms: int, extra: dict[str, Any] | None = None, *, new: bool = False
    ) -> SessionRecord:
        with self._tx():
            found = self._get(key)
            if found is not None:
                return found
            rec = created(key, self.new_id(), agent_id, now_ms, extra)
            self.insert_session(rec)
            return rec

    def messages(self, session_id: str, *, limit: int, before_seq: int | None = None) -> list[MessageRecord]:
        if limit <= 0:
            return []
        bound = before_seq if before_seq is not None else 2**62
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, role, content, ts, run_id, meta FROM messages WHERE session_id = ? AND seq < ? "
                "ORDER BY seq DESC LIMIT ?",
                (session_id, bound, limit),
            ).fetchall()
        return [
            MessageRecord(seq=s, role=role, content=json.loads(c), ts=ts, run_id=run, meta=json.loads(meta))
            for s, role, c, ts, run, meta in reversed(rows)
        ]

    def begin_run(
        self, run_id: str, key: str, input_text: str, now_ms: int, *, status: str = "running", ended_ms: int | None = None
    ) -> None:
        """The run's row (``status``/``ended_ms``: one that is already over, written settled)."""
        with self._tx():
            self._db.execute(
                "INSERT OR REPLACE INTO runs (run_id, session_key, status, started_at, ended_at, input) VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, key, status, now_ms, ended_ms, input_text),
            )

    def append_turn(
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
        with self._tx():
            rec = self._get(key)
            if rec is None:
                raise KeyError(key)
            new, numbered = appended(rec, messages, usage, now_ms, model=model, provider=provider, route=route, extra=extra)
            self.write_turn(new, numbered, run_id, status, now_ms)
            return new

    def end_run(self, run_id: str, status: str, now_ms: int) -> None:
        self.settle_run(run_id, status, now_ms, only_running=True)

    def interrupted_runs(self) -> list[RunRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT run_id, session_key, status, started_at, input FROM runs WHERE status = 'running' ORDER BY started_at"
            ).fetchall()
        return [RunRecord(run_id=a, session_key=b, status=c, started_at=d, input=e) for a, b, c, d, e in rows]

    def list(self, query: SessionQuery) -> SessionPage:
        where, args = [], []  # type: ignore[var-annotated]
        if query.agent_id is not None:
            where.append("agent_id = ?")
            args.append(query.agent_id)
        if query.label is not None:
            where.append("label = ?")
            args.append(query.label)
        if query.active_since_ms is not None:
            where.append("updated_at >= ?")
            args.append(query.active_since_ms)
        if query.search:
            where.append("(instr(lower(key), ?) > 0 OR instr(lower(COALESCE(label, '')), ?) > 0)")
            args += [query.search.lower(), query.search.lower()]
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        order = _SORTS.get(query.sort_by, _SORTS["updatedAt"])
        with self._lock:
            total = self._db.execute(f"SELECT count(*) FROM sessions {clause}", args).fetchone()[0]
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM sessions {clause} ORDER BY {order} LIMIT ? OFFSET ?",
                [*args, query.limit, query.offset],
            ).fetchall()
        return SessionPage(rows=[_row(r) for r in rows], total=total)

    def patch(self, key: str, fields: dict[str, Any], now_ms: int) -> SessionRecord | None:
        with self._tx():
            rec = self._get(key)
            if rec is None:
                return None
            new = patched(rec, fields, now_ms)
            self.put_session(new)
            return new

    def reset(self, key: str, now_ms: int, marker: MessageRecord | None = None) -> SessionRecord | None:
        with self._tx():
            rec = self._get(key)
            if rec is None:
                return None
            new, messages = was_reset(rec, now_ms, marker)
            self.write_reset(new, messages)
            return new

    def delete(self, key: str) -> bool:
        with self._tx():
            rec = self._get(key)
            if rec is None:
                return False
            self.remove_session(rec)
            return True

    # ------------------------------------------------------------------ response links

    def save_link(self, kind: str, record: dict[str, Any], *, max_entries: int, oldest_ms: int) -> None:
        """Keep one link of ``kind``; drop that kind's expired ones and the oldest past ``max_entries``."""
        with self._tx():
            self._db.execute(
                "INSERT OR REPLACE INTO response_links (id, kind, session_key, record, ts) VALUES (?, ?, ?, ?, ?)",
                (record["id"], kind, record["sessionKey"], json.dumps(record, separators=(",", ":")), record["ts"]),
            )
            self._db.execute("DELETE FROM response_links WHERE kind = ? AND ts < ?", (kind, oldest_ms))
            self._db.execute(
                "DELETE FROM response_links WHERE kind = ? AND id NOT IN "
                "(SELECT id FROM response_links WHERE kind = ? ORDER BY ts DESC LIMIT ?)",
                (kind, kind, max_entries),
            )

    def load_links(self, kind: str, oldest_ms: int) -> list[dict[str, Any]]:
        """The live links of ``kind``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT record FROM response_links WHERE kind = ? AND ts >= ? ORDER BY ts", (kind, oldest_ms)
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM sessions").fetchone()[0]

    def recent(self, limit: int) -> list[SessionRecord]:
        return self.list(SessionQuery(limit=limit)).rows


class _Tx:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (rollback on error, and after a failed commit), holding
    the store's lock. ``join``: inside a transaction already open (the session store's writer
    batch), only the lock; without it an open transaction is an error, as ``BEGIN`` says. A
    class, not a generator: every row write goes through one."""

    __slots__ = ("began", "db", "join", "lock")

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock | threading.RLock, *, join: bool = False) -> None:
        self.db, self.lock, self.join = db, lock, join
        self.began = False

    def __enter__(self) -> None:
        self.lock.acquire()
        if self.join and self.db.in_transaction:
            return
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise
        self.began = True

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if self.began:
                try:
                    self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
                except BaseException:
                    if self.db.in_transaction:  # a failed COMMIT leaves it open: nothing later may join it
                        self.db.execute("ROLLBACK")
                    raise
        finally:
            self.lock.release()


class AsyncSessionStore:
    """A synchronous store for the event loop: every call runs in a worker thread, one at a time
    (the channel store's runner; the session store has its own, :mod:`gateway_trio.store.cached`)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._limiter = trio.CapacityLimiter(1)

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        fn = getattr(self.store, method)
        return await trio.to_thread.run_sync(lambda: fn(*args, **kwargs), limiter=self._limiter)


__all__ = ["SCHEMA_VERSION", "AsyncSessionStore", "SqliteSessionStore", "StoreError", "appended", "created", "patched", "was_reset"]
