"""The channels' durable state on SQLite: the ingress queue, the outbox, poll offsets, pairing rows.

Two files, both WAL with ``synchronous=NORMAL`` (a committed transaction survives a killed process):

* ``<state>/channels/queues.sqlite`` — ours: ``ingress`` (every accepted inbound message, written
  before policy and dispatch; idempotent by ``channel:account:event id``), ``outbox`` (every message
  to send; idempotent by key), ``offsets`` (Telegram's ``getUpdates`` offset, committed in the same
  transaction as the updates it confirms) and a schema version migrated forward at open.
* ``<state>/state/openclaw.sqlite`` — the published gateway's shared state file; only its tables
  ``channel_pairing_requests`` and ``channel_pairing_allow_entries`` are used, with the published
  layout (created if missing), so the published ``openclaw pairing`` CLI and ours see the same
  requests and approvals.

Calls are synchronous and run in a worker thread, one at a time (:class:`AsyncChannelStore`).
Pairing operations read the channel's rows, apply the pure function from
``gateway_core.channels.pairing`` and write the rows back, in one ``BEGIN IMMEDIATE`` transaction.
Done ingress rows stay as tombstones (payload scrubbed) for de-duplication: 30 days, at most 1,000
per account, as published; settled outbox rows are kept 24 hours for ``send`` idempotency.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gateway_core.channels import pairing as P
from gateway_core.channels.delivery import Decision
from gateway_core.channels.inbound import Inbound, OutboundItem, decode_inbound, encode_inbound
from gateway_core.channels.pipeline import IngressRow, conversation_key

from .. import _runtime
from ..runtime.paths import channel_pairing_path as pairing_path
from ..runtime.paths import channel_queue_path as queue_path
from ..store.sessions import AsyncSessionStore, _Tx

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE ingress (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        channel TEXT NOT NULL,
        account_id TEXT NOT NULL,
        conversation TEXT NOT NULL,
        payload BLOB,
        status TEXT NOT NULL,
        outcome TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        received_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        error TEXT
    );
    CREATE INDEX ingress_pending ON ingress (status, seq);
    CREATE INDEX ingress_account ON ingress (channel, account_id, status, updated_at);
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        channel TEXT NOT NULL,
        account_id TEXT NOT NULL,
        target TEXT NOT NULL,
        text TEXT NOT NULL,
        kind TEXT NOT NULL,
        grp TEXT NOT NULL DEFAULT '',
        idx INTEGER NOT NULL DEFAULT 0,
        cnt INTEGER NOT NULL DEFAULT 1,
        reply_to TEXT,
        thread_id TEXT,
        parse_mode TEXT,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        message_id TEXT,
        error TEXT
    );
    CREATE INDEX outbox_due ON outbox (channel, account_id, state, seq);
    CREATE TABLE offsets (
        channel TEXT NOT NULL,
        account_id TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (channel, account_id, name)
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

#: The published shared-state tables for DM pairing (layout as published, STRICT).
PAIRING_DDL = """
CREATE TABLE IF NOT EXISTS channel_pairing_requests (
  channel_key TEXT NOT NULL,
  account_id TEXT NOT NULL,
  request_id TEXT NOT NULL,
  code TEXT NOT NULL,
  created_at TEXT NOT NULL,
  last_seen_at TEXT NOT NULL,
  meta_json TEXT,
  PRIMARY KEY (channel_key, account_id, request_id)
) STRICT;
CREATE INDEX IF NOT EXISTS idx_channel_pairing_requests_code ON channel_pairing_requests(channel_key, code);
CREATE INDEX IF NOT EXISTS idx_channel_pairing_requests_created ON channel_pairing_requests(channel_key, created_at, request_id);
CREATE TABLE IF NOT EXISTS channel_pairing_allow_entries (
  channel_key TEXT NOT NULL,
  account_id TEXT NOT NULL,
  entry TEXT NOT NULL,
  sort_order INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (channel_key, account_id, entry)
) STRICT;
CREATE INDEX IF NOT EXISTS idx_channel_pairing_allow_account ON channel_pairing_allow_entries(channel_key, account_id, sort_order, entry);
"""

TOMBSTONE_DAYS_MS = 30 * 86_400_000
TOMBSTONES_PER_ACCOUNT = 1000
SETTLED_KEEP_MS = 86_400_000
SETTLED_STATES = ("sent", "failed", "unknown")


class StoreError(Exception):
    """The store file cannot be used (a newer schema, a corrupt file)."""


def random_codes() -> Iterator[str]:
    """Pairing code candidates from a CSPRNG, endlessly."""
    while True:
        yield _runtime.new_code(P.ALPHABET, P.CODE_LENGTH)


def _open(path: Path) -> sqlite3.Connection:
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10.0)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=10000")
    return db


def _item(r: sqlite3.Row | tuple[Any, ...]) -> dict[str, Any]:
    keys = ("seq", "key", "channel", "account_id", "target", "text", "kind", "grp", "idx", "cnt", "reply_to", "thread_id",
            "parse_mode", "state", "attempts", "next_at", "created_at", "updated_at", "message_id", "error")
    return dict(zip(keys, r, strict=True))


_OUTBOX_COLUMNS = (
    "seq, key, channel, account_id, target, text, kind, grp, idx, cnt, reply_to, thread_id, parse_mode, state, attempts, "
    "next_at, created_at, updated_at, message_id, error"
)


class ChannelStore:
    """Both files, one connection each (callers serialize access through :class:`AsyncChannelStore`)."""

    def __init__(self, state_dir: Path, *, now_ms: Callable[[], int], codes: Iterator[str] | None = None) -> None:
        self.state_dir = state_dir
        self._now = now_ms
        self._codes = codes or random_codes()
        self._lock = threading.Lock()
        self._q = _open(queue_path(state_dir))
        self._migrate()
        self._p = _open(pairing_path(state_dir))
        self._p.executescript(PAIRING_DDL)

    def close(self) -> None:
        with self._lock:
            self._q.close()
            self._p.close()

    def _migrate(self) -> None:
        version = self._q.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"channel queue schema {version} is newer than this gateway understands ({SCHEMA_VERSION})")
        for number in range(version, SCHEMA_VERSION):
            db = self._q
            with _Tx(db, self._lock):
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number + 1}")

    # ------------------------------------------------------------------ ingress

    def ingress_put(self, msgs: list[Inbound], offset: tuple[str, str, str, str] | None = None) -> list[IngressRow]:
        """Queue ``msgs`` (duplicates by key are ignored) and, in the same transaction, store
        ``offset`` = ``(channel, account, name, value)``; returns the rows that are new."""
        now = self._now()
        fresh: list[IngressRow] = []
        db = self._q
        with _Tx(db, self._lock):
            for msg in msgs:
                cur = db.execute(
                    "INSERT OR IGNORE INTO ingress (key, channel, account_id, conversation, payload, status, received_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
                    (msg.key, msg.channel, msg.account_id, conversation_key(msg), encode_inbound(msg), now, now),
                )
                if cur.rowcount:
                    fresh.append(IngressRow(seq=cur.lastrowid or 0, msg=msg))
            if offset is not None:
                db.execute("INSERT OR REPLACE INTO offsets (channel, account_id, name, value) VALUES (?, ?, ?, ?)", offset)
        return fresh

    def pending_ingress(self) -> list[IngressRow]:
        """Rows accepted but not finished (a crash or a stop came first), oldest first; their attempt
        counter goes up (a replay)."""
        db = self._q
        with _Tx(db, self._lock):
            rows = db.execute("SELECT seq, payload, attempts FROM ingress WHERE status = 'pending' ORDER BY seq").fetchall()
            db.execute("UPDATE ingress SET attempts = attempts + 1 WHERE status = 'pending'")
        return [IngressRow(seq=seq, msg=decode_inbound(payload), attempts=attempts + 1) for seq, payload, attempts in rows]

    def ingress_done(self, key: str, items: list[OutboundItem] | None = None, outcome: str = "done") -> int:
        """Finish ingress ``key`` and queue its replies, in one transaction; returns how many were queued."""
        now = self._now()
        db = self._q
        with _Tx(db, self._lock):
            db.execute(
                "UPDATE ingress SET status = 'done', outcome = ?, payload = NULL, updated_at = ? WHERE key = ?", (outcome, now, key)
            )
            queued = self._put(db, items or [], now)
        return queued

    def ingress_fail(self, key: str, error: str) -> None:
        now = self._now()
        db = self._q
        with _Tx(db, self._lock):
            db.execute("UPDATE ingress SET status = 'failed', error = ?, updated_at = ? WHERE key = ?", (error, now, key))

    def drop_ingress(self, key: str, outcome: str) -> None:
        self.ingress_done(key, [], outcome)

    def ingress_counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._q.execute("SELECT status, count(*) FROM ingress GROUP BY status").fetchall()
        return dict(rows)

    def get_offset(self, channel: str, account_id: str, name: str) -> str | None:
        with self._lock:
            row = self._q.execute(
                "SELECT value FROM offsets WHERE channel = ? AND account_id = ? AND name = ?", (channel, account_id, name)
            ).fetchone()
        return row[0] if row else None

    # ------------------------------------------------------------------ outbox

    def _put(self, db: sqlite3.Connection, items: list[OutboundItem], now: int) -> int:
        queued = 0
        for it in items:
            cur = db.execute(
                "INSERT OR IGNORE INTO outbox (key, channel, account_id, target, text, kind, grp, idx, cnt, reply_to, thread_id, "
                "parse_mode, state, next_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                (it.key, it.channel, it.account_id, it.target, it.text, it.kind, it.group, it.index, it.count, it.reply_to,
                 it.thread_id, it.parse_mode, now, now, now),
            )
            queued += cur.rowcount
        return queued

    def outbox_put(self, items: list[OutboundItem]) -> int:
        now = self._now()
        db = self._q
        with _Tx(db, self._lock):
            return self._put(db, items, now)

    def outbox_head(self, channel: str, account_id: str) -> dict[str, Any] | None:
        """The oldest unsettled message of the account (strict order: it blocks the ones behind it)."""
        with self._lock:
            row = self._q.execute(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE channel = ? AND account_id = ? AND state IN ('pending', 'sending') "
                "ORDER BY seq LIMIT 1",
                (channel, account_id),
            ).fetchone()
        return _item(row) if row else None

    def outbox_sending(self, seq: int) -> None:
        """Mark an attempt as started (committed before the request goes out: a crash now is ambiguous)."""
        now = self._now()
        db = self._q
        with _Tx(db, self._lock):
            db.execute("UPDATE outbox SET state = 'sending', attempts = attempts + 1, updated_at = ? WHERE seq = ?", (now, seq))

    def outbox_settle(self, seq: int, decision: Decision, message_id: str | None = None, notice: OutboundItem | None = None) -> None:
        """Record how an attempt ended; an ambiguous one queues the unconfirmed notice too."""
        now = self._now()
        db = self._q
        with _Tx(db, self._lock):
            db.execute(
                "UPDATE outbox SET state = ?, next_at = COALESCE(?, next_at), message_id = COALESCE(?, message_id), error = ?, "
                "updated_at = ? WHERE seq = ?",
                (decision.state, decision.next_at_ms, message_id, decision.error, now, seq),
            )
            if notice is not None:
                self._put(db, [notice], now)

    def outbox_recover(self) -> list[dict[str, Any]]:
        """At start: attempts a crash cut short (``sending``) are ambiguous; returns them (now ``unknown``)."""
        now = self._now()
        db = self._q
        with _Tx(db, self._lock):
            rows = db.execute(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE state = 'sending' ORDER BY seq").fetchall()
            db.execute(
                "UPDATE outbox SET state = 'unknown', error = 'unknown_after_send; interrupted by a restart', updated_at = ? "
                "WHERE state = 'sending'",
                (now,),
            )
        return [_item(r) for r in rows]

    def outbox_get(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        if not keys:
            return {}
        with self._lock:
            rows = self._q.execute(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE key IN ({','.join('?' * len(keys))})", keys
            ).fetchall()
        out = {}
        for r in rows:
            item = _item(r)
            out[item["key"]] = {"state": item["state"], "messageId": item["message_id"], "error": item["error"], "seq": item["seq"]}
        return out

    def outbox_accounts(self) -> list[tuple[str, str]]:
        with self._lock:
            return self._q.execute(
                "SELECT DISTINCT channel, account_id FROM outbox WHERE state IN ('pending', 'sending')"
            ).fetchall()

    def outbox_counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._q.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall()
        return dict(rows)

    def prune(self) -> None:
        """Forget old tombstones and settled outbox rows (bounded by age and count)."""
        now = self._now()
        db = self._q
        with _Tx(db, self._lock):
            db.execute("DELETE FROM ingress WHERE status != 'pending' AND updated_at < ?", (now - TOMBSTONE_DAYS_MS,))
            for channel, account in db.execute("SELECT DISTINCT channel, account_id FROM ingress").fetchall():
                db.execute(
                    "DELETE FROM ingress WHERE channel = ? AND account_id = ? AND status != 'pending' AND seq NOT IN ("
                    "SELECT seq FROM ingress WHERE channel = ? AND account_id = ? AND status != 'pending' ORDER BY seq DESC LIMIT ?)",
                    (channel, account, channel, account, TOMBSTONES_PER_ACCOUNT),
                )
            db.execute(
                f"DELETE FROM outbox WHERE state IN ({','.join('?' * len(SETTLED_STATES))}) AND updated_at < ?",
                (*SETTLED_STATES, now - SETTLED_KEEP_MS),
            )

    # ------------------------------------------------------------------ pairing (published tables)

    def _read_pairing(self, db: sqlite3.Connection, channel: str) -> P.PairingState:
        state = P.PairingState(requests=[], allow={})
        for rid, account, code, created, seen, meta_json in db.execute(
            "SELECT request_id, account_id, code, created_at, last_seen_at, meta_json FROM channel_pairing_requests "
            "WHERE channel_key = ? ORDER BY created_at, account_id, request_id",
            (channel,),
        ):
            try:
                raw = json.loads(meta_json) if meta_json else {}
            except ValueError:
                raw = {}
            meta = {str(k): str(v) for k, v in raw.items() if v} if isinstance(raw, dict) else {}
            meta["accountId"] = P.account_key(account)
            state.requests.append(P.Request(id=rid, code=code, created_at=created, last_seen_at=seen or created, meta=meta))
        for account, entry in db.execute(
            "SELECT account_id, entry FROM channel_pairing_allow_entries WHERE channel_key = ? ORDER BY account_id, sort_order, entry",
            (channel,),
        ):
            state.allow.setdefault(P.account_key(account), []).append(entry)
        return state

    def _write_pairing(self, db: sqlite3.Connection, channel: str, state: P.PairingState) -> None:
        now = self._now()
        db.execute("DELETE FROM channel_pairing_requests WHERE channel_key = ?", (channel,))
        db.execute("DELETE FROM channel_pairing_allow_entries WHERE channel_key = ?", (channel,))
        for req in state.requests:
            db.execute(
                "INSERT OR REPLACE INTO channel_pairing_requests (channel_key, account_id, request_id, code, created_at, last_seen_at, "
                "meta_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (channel, req.account_id, req.id, req.code, req.created_at, req.last_seen_at, json.dumps(req.meta) if req.meta else None),
            )
        for account, entries in state.allow.items():
            seen: set[str] = set()
            order = 0
            for entry in entries:
                if entry and entry != "*" and entry not in seen:
                    seen.add(entry)
                    db.execute(
                        "INSERT OR REPLACE INTO channel_pairing_allow_entries (channel_key, account_id, entry, sort_order, updated_at) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (channel, P.account_key(account), entry, order, now),
                    )
                    order += 1

    def _pairing(self, channel: str, fn: Callable[[P.PairingState], Any], write: bool = True) -> Any:
        db = self._p
        with _Tx(db, self._lock):
            state = self._read_pairing(db, channel)
            result = fn(state)
            if write:
                self._write_pairing(db, channel, state)
        return result

    def pairing_allowed(self, channel: str, account_id: str) -> list[str]:
        with self._lock:
            rows = self._p.execute(
                "SELECT entry FROM channel_pairing_allow_entries WHERE channel_key = ? AND account_id = ? ORDER BY sort_order",
                (channel, P.account_key(account_id)),
            ).fetchall()
        return [r[0] for r in rows]

    def pairing_upsert(self, channel: str, account_id: str, sender_id: str, meta: dict[str, Any]) -> P.Upserted:
        now = self._now()
        return self._pairing(channel, lambda st: P.upsert(st, account_id=account_id, sender_id=sender_id, meta=meta, now_ms=now, codes=self._codes))

    def pairing_pending(self, channel: str, account_id: str | None = None) -> list[P.Request]:
        now = self._now()

        def fn(st: P.PairingState) -> list[P.Request]:
            return P.pending(st, now, account_id)

        return self._pairing(channel, fn)

    def pairing_approve_code(self, channel: str, code: str, account_id: str | None = None) -> P.Request | None:
        now = self._now()
        return self._pairing(channel, lambda st: P.approve_code(st, code, now, account_id))

    def pairing_approve_request(self, channel: str, account_id: str, request_id: str) -> P.Request | None:
        now = self._now()
        return self._pairing(channel, lambda st: P.approve_request(st, channel, request_id, now, account_id))

    def pairing_dismiss_request(self, channel: str, account_id: str, request_id: str) -> P.Request | None:
        now = self._now()
        return self._pairing(channel, lambda st: P.dismiss_request(st, channel, request_id, now, account_id))


class AsyncChannelStore(AsyncSessionStore):
    """The channel store for the event loop: every call runs in a worker thread, one at a time
    (the same runner as the session store's)."""

    store: ChannelStore  # type: ignore[assignment]


__all__ = [
    "PAIRING_DDL",
    "AsyncChannelStore",
    "ChannelStore",
    "StoreError",
    "pairing_path",
    "queue_path",
    "random_codes",
]
