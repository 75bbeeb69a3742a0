"""The session store's contract: sessions, their transcripts, and the runs that write them.

The records and the :class:`SessionStore` protocol are pure; the Trio shell implements it over
SQLite (``gateway_trio.store.sessions``), and :class:`MemorySessionStore` implements it in memory
for the conformance simulator and unit tests. One contract test suite runs against both.

Consistency rule: a turn is written in one transaction (its messages, the session's usage and
timestamps, the run's end), so a crash never leaves half a turn. A run is recorded when it starts
(:meth:`begin_run`) with its input, so a run interrupted by a crash is found at the next start
(:meth:`interrupted_runs`) and its input is not lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import msgspec
from msgspec import Struct

SORT_KEYS = ("updatedAt", "createdAt", "label", "key")


class Usage(Struct, frozen=True, kw_only=True):
    """Token counts, normalized (http-agents-channels.md §2.6)."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    total: int = 0

    def add(self, other: Usage) -> Usage:
        return Usage(
            input=self.input + other.input,
            output=self.output + other.output,
            cache_read=self.cache_read + other.cache_read,
            cache_write=self.cache_write + other.cache_write,
            total=self.total + other.total,
        )


class SessionRecord(Struct, kw_only=True):
    """One session row."""

    key: str
    session_id: str
    agent_id: str
    created_at: int
    updated_at: int
    label: str | None = None
    model_override: str | None = None
    thinking: str | None = None
    usage: Usage = Usage()
    message_count: int = 0
    last_model: str | None = None
    last_provider: str | None = None
    last_route: dict[str, Any] | None = None
    #: The newest message's text, cut short (sessions.list previews).
    last_text: str | None = None
    #: Row facts without a column of their own (createdVia, chatType, the last run's outcome, …).
    extra: dict[str, Any] = {}


class MessageRecord(Struct, kw_only=True):
    """One transcript entry. ``content`` is a string or a list of parts (JSON-ready dicts)."""

    role: str
    content: Any
    ts: int
    seq: int = 0
    run_id: str | None = None
    meta: dict[str, Any] = {}


class RunRecord(Struct, kw_only=True):
    """A run as the store knows it (``running`` until its turn is written or it is ended)."""

    run_id: str
    session_key: str
    status: str
    started_at: int
    input: str = ""
    ended_at: int | None = None


class SessionQuery(Struct, kw_only=True):
    """``sessions.list`` filters: substring search over key/label, one agent, a label, paging."""

    search: str | None = None
    agent_id: str | None = None
    label: str | None = None
    active_since_ms: int | None = None
    sort_by: str = "updatedAt"
    limit: int = 100
    offset: int = 0


class SessionPage(Struct, kw_only=True):
    rows: list[SessionRecord]
    total: int


PREVIEW_CHARS = 200


def preview_text(content: Any) -> str | None:
    """The text of a message's content, cut to :data:`PREVIEW_CHARS`."""
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    else:
        return None
    return text[:PREVIEW_CHARS] if text else None


class SessionStore(Protocol):
    """What the agent runtime asks of the store (each call is one transaction)."""

    def get(self, key: str) -> SessionRecord | None: ...
    def ensure(
        self, key: str, agent_id: str, now_ms: int, extra: dict[str, Any] | None = None, *, new: bool = False
    ) -> SessionRecord: ...
    def messages(self, session_id: str, *, limit: int, before_seq: int | None = None) -> list[MessageRecord]: ...
    def begin_run(self, run_id: str, key: str, input_text: str, now_ms: int) -> None: ...
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
    ) -> SessionRecord: ...
    def end_run(self, run_id: str, status: str, now_ms: int) -> None: ...
    def interrupted_runs(self) -> list[RunRecord]: ...
    def list(self, query: SessionQuery) -> SessionPage: ...
    def patch(self, key: str, fields: dict[str, Any], now_ms: int) -> SessionRecord | None: ...
    def reset(self, key: str, now_ms: int, marker: MessageRecord | None = None) -> SessionRecord | None: ...
    def delete(self, key: str) -> bool: ...
    def count(self) -> int: ...
    def recent(self, limit: int) -> list[SessionRecord]: ...


PATCHABLE = ("label", "model_override", "thinking")
#: What a reset clears besides the transcript (the session id stays, as published).
RESET_CLEARS = {"label": None, "model_override": None, "thinking": None}


def _matches(rec: SessionRecord, q: SessionQuery) -> bool:
    if q.agent_id is not None and rec.agent_id != q.agent_id:
        return False
    if q.label is not None and rec.label != q.label:
        return False
    if q.active_since_ms is not None and rec.updated_at < q.active_since_ms:
        return False
    if q.search:
        needle = q.search.lower()
        if needle not in rec.key.lower() and needle not in (rec.label or "").lower():
            return False
    return True


def _sort_key(sort_by: str) -> Callable[[SessionRecord], Any]:
    if sort_by == "createdAt":
        return lambda r: (-r.created_at, r.key)
    if sort_by == "label":
        return lambda r: ((r.label or "\uffff").lower(), r.key)
    if sort_by == "key":
        return lambda r: r.key
    return lambda r: (-r.updated_at, r.key)


class MemorySessionStore:
    """:class:`SessionStore` in memory; session ids come from ``new_id``."""

    def __init__(self, new_id: Callable[[], str]) -> None:
        self._new_id = new_id
        self._sessions: dict[str, SessionRecord] = {}
        self._messages: dict[str, list[MessageRecord]] = {}
        self._runs: dict[str, RunRecord] = {}

    def get(self, key: str) -> SessionRecord | None:
        rec = self._sessions.get(key)
        return msgspec.structs.replace(rec) if rec is not None else None

    def ensure(
        self, key: str, agent_id: str, now_ms: int, extra: dict[str, Any] | None = None, *, new: bool = False
    ) -> SessionRecord:
        """The session of ``key``, created if absent. ``new``: the key was minted for this call (a
        fresh uuid), so a store may skip looking for it; the answer is the same."""
        rec = self._sessions.get(key)
        if rec is None:
            rec = SessionRecord(
                key=key, session_id=self._new_id(), agent_id=agent_id, created_at=now_ms, updated_at=now_ms,
                extra=dict(extra or {}),
            )
            self._sessions[key] = rec
            self._messages[rec.session_id] = []
        return msgspec.structs.replace(rec)

    def messages(self, session_id: str, *, limit: int, before_seq: int | None = None) -> list[MessageRecord]:
        rows = [m for m in self._messages.get(session_id, []) if before_seq is None or m.seq < before_seq]
        return rows[-limit:] if limit > 0 else []

    def begin_run(self, run_id: str, key: str, input_text: str, now_ms: int) -> None:
        self._runs[run_id] = RunRecord(run_id=run_id, session_key=key, status="running", started_at=now_ms, input=input_text)

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
        rec = self._sessions[key]
        if extra:
            rec.extra = {**rec.extra, **extra}
        box = self._messages.setdefault(rec.session_id, [])
        for m in messages:
            box.append(msgspec.structs.replace(m, seq=len(box) + 1))
        rec.usage = rec.usage.add(usage)
        rec.updated_at = now_ms
        rec.message_count = len(box)
        if model is not None:
            rec.last_model, rec.last_provider = model, provider
        if route is not None:
            rec.last_route = route
        if messages:
            rec.last_text = preview_text(messages[-1].content)
        if run_id is not None and run_id in self._runs:
            run = self._runs[run_id]
            run.status, run.ended_at = status, now_ms
        return msgspec.structs.replace(rec)

    def end_run(self, run_id: str, status: str, now_ms: int) -> None:
        run = self._runs.get(run_id)
        if run is not None and run.status == "running":
            run.status, run.ended_at = status, now_ms

    def interrupted_runs(self) -> list[RunRecord]:
        return [r for r in self._runs.values() if r.status == "running"]

    def list(self, query: SessionQuery) -> SessionPage:
        rows = sorted((r for r in self._sessions.values() if _matches(r, query)), key=_sort_key(query.sort_by))
        page = rows[query.offset : query.offset + query.limit]
        return SessionPage(rows=[msgspec.structs.replace(r) for r in page], total=len(rows))

    def patch(self, key: str, fields: dict[str, Any], now_ms: int) -> SessionRecord | None:
        rec = self._sessions.get(key)
        if rec is None:
            return None
        for name, value in fields.items():
            if name in PATCHABLE:
                setattr(rec, name, value)
        rec.updated_at = now_ms
        return msgspec.structs.replace(rec)

    def reset(self, key: str, now_ms: int, marker: MessageRecord | None = None) -> SessionRecord | None:
        rec = self._sessions.get(key)
        if rec is None:
            return None
        box = self._messages[rec.session_id] = []
        if marker is not None:
            box.append(msgspec.structs.replace(marker, seq=1))
        for name, value in RESET_CLEARS.items():
            setattr(rec, name, value)
        rec.usage, rec.message_count, rec.last_text, rec.updated_at = Usage(), len(box), None, now_ms
        rec.extra = {k: v for k, v in rec.extra.items() if k in ("createdVia", "chatType")}
        return msgspec.structs.replace(rec)

    def delete(self, key: str) -> bool:
        rec = self._sessions.pop(key, None)
        if rec is None:
            return False
        self._messages.pop(rec.session_id, None)
        return True

    def count(self) -> int:
        return len(self._sessions)

    def recent(self, limit: int) -> list[SessionRecord]:
        return self.list(SessionQuery(limit=limit)).rows


__all__ = [
    "MemorySessionStore",
    "MessageRecord",
    "RunRecord",
    "SessionPage",
    "SessionQuery",
    "SessionRecord",
    "SessionStore",
    "Usage",
    "preview_text",
]
