"""Idempotency bookkeeping for side-effecting methods (protocol.md §13.1-§13.3).

Gateway-wide and pure: the application owns one :class:`IdempotencyLedger` and passes ``now_ms``.
For ``agent`` and ``chat.send`` the idempotency key is the run id. A repeated key while the run is
active answers ``in_flight``; after completion (for 5 minutes) it answers the cached final frame.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from msgspec import Struct

from .constants import IDEMPOTENCY_MAX_ENTRIES, IDEMPOTENCY_TTL_MS
from .frames import ErrorShape


class Final(Struct, frozen=True, kw_only=True):
    """A cached terminal answer: replayed identically (ok, payload, error) on a repeat."""

    ok: bool
    payload: Any
    error: ErrorShape | None = None


class Entry(Struct, kw_only=True):
    """One ledger row."""

    key: str
    started_ms: int
    in_flight_payload: Any
    final: Final | None = None
    finished_ms: int | None = None


class Begin(Struct, frozen=True, kw_only=True):
    """What :meth:`IdempotencyLedger.begin` decided: ``new``, ``in_flight`` or ``done``."""

    status: str
    entry: Entry

    def replay(self) -> Final:
        """The answer to a repeated key: the in-flight payload, or the cached final verbatim."""
        if self.entry.final is not None:
            return self.entry.final
        return Final(ok=True, payload=self.entry.in_flight_payload)


class IdempotencyLedger:
    """Dedupe map keyed ``"<kind>:<key>"`` (``agent:k1``, ``chat:c1``, ``send:…``)."""

    def __init__(self, ttl_ms: int = IDEMPOTENCY_TTL_MS, max_entries: int = IDEMPOTENCY_MAX_ENTRIES) -> None:
        self.ttl_ms = ttl_ms
        self.max_entries = max_entries
        self._entries: OrderedDict[str, Entry] = OrderedDict()

    def _prune(self, now_ms: int) -> None:
        expired = [
            k for k, e in self._entries.items() if e.finished_ms is not None and now_ms - e.finished_ms >= self.ttl_ms
        ]
        for k in expired:
            del self._entries[k]
        if len(self._entries) > self.max_entries:
            # Drop the oldest finished entries first; never an active run.
            for k in [k for k, e in self._entries.items() if e.finished_ms is not None]:
                if len(self._entries) <= self.max_entries:
                    break
                del self._entries[k]

    def begin(self, kind: str, key: str, now_ms: int, in_flight_payload: Any) -> Begin:
        """Register a run, or report the existing one. ``in_flight_payload`` answers repeats."""
        self._prune(now_ms)
        full = f"{kind}:{key}"
        entry = self._entries.get(full)
        if entry is None:
            entry = Entry(key=full, started_ms=now_ms, in_flight_payload=in_flight_payload)
            self._entries[full] = entry
            return Begin(status="new", entry=entry)
        return Begin(status="done" if entry.final is not None else "in_flight", entry=entry)

    def finish(self, kind: str, key: str, final: Final, now_ms: int) -> None:
        """Record the terminal answer of a run; it is replayed for ``ttl_ms``."""
        entry = self._entries.get(f"{kind}:{key}")
        if entry is None:
            entry = Entry(key=f"{kind}:{key}", started_ms=now_ms, in_flight_payload=None)
            self._entries[entry.key] = entry
        entry.final = final
        entry.finished_ms = now_ms
        self._prune(now_ms)

    def active(self, kind: str) -> list[str]:
        """Keys of runs of ``kind`` still in flight."""
        prefix = f"{kind}:"
        return [e.key[len(prefix) :] for e in self._entries.values() if e.key.startswith(prefix) and e.final is None]

    def get(self, kind: str, key: str) -> Entry | None:
        return self._entries.get(f"{kind}:{key}")

    def __len__(self) -> int:
        return len(self._entries)


__all__ = ["Begin", "Entry", "Final", "IdempotencyLedger"]
