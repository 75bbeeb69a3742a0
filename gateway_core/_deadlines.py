"""Named deadlines without a clock (aioquic's method): the owner passes ``now`` in.

``next()`` is the earliest armed deadline; ``due(now)`` pops every deadline ``<= now`` in the
fixed order of the name enum, so simultaneous expiries are handled deterministically.
"""

from __future__ import annotations

import enum


class Deadline(enum.IntEnum):
    """Deadline names, in firing order when several are due at once."""

    HANDSHAKE = 1
    DELAYED_REJECT = 2
    CLOSE_GRACE = 3
    KEEPALIVE = 4
    TICK = 5
    TICK_WATCHDOG = 6


class Deadlines:
    """A small map of :class:`Deadline` → monotonic seconds."""

    __slots__ = ("_at",)

    def __init__(self) -> None:
        self._at: dict[Deadline, float] = {}

    def arm(self, name: Deadline, at: float) -> None:
        self._at[name] = at

    def cancel(self, name: Deadline) -> None:
        self._at.pop(name, None)

    def clear(self) -> None:
        self._at.clear()

    def get(self, name: Deadline) -> float | None:
        return self._at.get(name)

    def next(self) -> float | None:
        return min(self._at.values()) if self._at else None

    def due(self, now: float) -> list[tuple[Deadline, float]]:
        fired = sorted((name, at) for name, at in self._at.items() if at <= now)
        for name, _ in fired:
            del self._at[name]
        return fired
