"""Presence rows and the gateway-wide ``stateVersion`` counters (protocol.md §10.2, §10.4).

Pure bookkeeping. Rows are kept in recency order (most recently touched last), so listing the
newest ``max_rows`` and expiring stale rows cost O(rows returned / rows expired), independent of
how many clients have come and gone: a churn of connect/disconnects cannot slow broadcasts.
The published gateway keeps 200 rows; so does this table (the gateway's own row included).
"""

from __future__ import annotations

from collections import OrderedDict

from ..frames import PresenceEntry, StateVersion

#: protocol.md §10.4: rows older than this are dropped.
DEFAULT_PRESENCE_TTL_MS = 5 * 60_000
#: protocol.md §10.4: at most this many rows are listed (the gateway's own row is one of them).
DEFAULT_PRESENCE_MAX = 200


class PresenceTable:
    """Presence rows keyed by connection id (or device/instance id for ``system-event`` rows)."""

    def __init__(self, ttl_ms: int = DEFAULT_PRESENCE_TTL_MS, max_rows: int = DEFAULT_PRESENCE_MAX) -> None:
        self.ttl_ms = ttl_ms
        self.max_rows = max_rows
        self._rows: OrderedDict[str, PresenceEntry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: str) -> bool:
        return key in self._rows

    def get(self, key: str) -> PresenceEntry | None:
        return self._rows.get(key)

    def upsert(self, key: str, row: PresenceEntry) -> None:
        """Insert or replace ``key``'s row; it becomes the most recent. The table stays bounded."""
        self._rows[key] = row
        self._rows.move_to_end(key)
        while len(self._rows) > self.max_rows:
            self._rows.popitem(last=False)

    def touch(self, key: str, ts: int, reason: str | None = None) -> bool:
        """Refresh ``key``'s timestamp (and reason); False when there is no such row."""
        row = self._rows.get(key)
        if row is None:
            return False
        row.ts = ts
        if reason is not None:
            row.reason = reason
        self._rows.move_to_end(key)
        return True

    def expire(self, now_ms: int) -> None:
        """Drop rows not touched for ``ttl_ms`` (oldest first; stops at the first fresh one)."""
        horizon = now_ms - self.ttl_ms
        while self._rows:
            key, row = next(iter(self._rows.items()))
            if row.ts >= horizon:
                break
            del self._rows[key]

    def newest(self, now_ms: int, limit: int) -> list[PresenceEntry]:
        """The ``limit`` most recent live rows, newest first."""
        self.expire(now_ms)
        out: list[PresenceEntry] = []
        for row in reversed(self._rows.values()):
            if len(out) >= limit:
                break
            out.append(row)
        return out

    def listing(self, now_ms: int, self_row: PresenceEntry) -> list[PresenceEntry]:
        """What ``system-presence`` and the ``presence`` event carry: the gateway first, then newest."""
        return [self_row, *self.newest(now_ms, self.max_rows - 1)]


class Versions:
    """``stateVersion``: bumped on every presence change and every health refresh."""

    def __init__(self) -> None:
        self.presence = 1
        self.health = 1
        self._current = StateVersion(presence=1, health=1)

    @property
    def current(self) -> StateVersion:
        return self._current

    def bump_presence(self) -> StateVersion:
        self.presence += 1
        self._current = StateVersion(presence=self.presence, health=self.health)
        return self._current

    def bump_health(self) -> StateVersion:
        self.health += 1
        self._current = StateVersion(presence=self.presence, health=self.health)
        return self._current


__all__ = ["DEFAULT_PRESENCE_MAX", "DEFAULT_PRESENCE_TTL_MS", "PresenceTable", "Versions"]
