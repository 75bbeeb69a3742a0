"""Scope gating of broadcast events (protocol.md §10.3), as a rules table, and a broadcast's frame
encoded once for all its recipients.

``audience(event)`` answers who may receive a broadcast: everyone authenticated
(:data:`EVERYONE`), operators holding a scope, or nobody (unknown names fail closed).
:class:`EncodedEvent` is what a fan-out hands to each connection: the event frame's JSON split
around its ``seq``, so a recipient's frame costs one concatenation instead of an encode.
"""

from __future__ import annotations

import functools
from typing import Any, Final

import msgspec
from msgspec import UNSET

from . import scopes as S
from .frames import EventFrame, StateVersion, encode_bytes

#: Sentinel audience: every authenticated connection, nodes and scope-less operators included.
EVERYONE: Final = "*"

_UNRESTRICTED: Final = frozenset({"tick", "health", "heartbeat", "shutdown", "gateway.suspension", "update.available"})

_EXACT: Final[dict[str, str]] = {
    "agent": S.READ,
    "chat": S.READ,
    "chat.metadata.changed": S.READ,
    "presence": S.READ,
    "sessions.changed": S.READ,
    "cron": S.READ,
    "task": S.READ,
    "task.suggestion": S.READ,
    "config.changed": S.READ,
    "skills.changed": S.READ,
    "plugins.changed": S.READ,
    "plugins.controlUi.changed": S.READ,
    "voicewake.changed": S.READ,
    "voicewake.routing.changed": S.READ,
    "node.presence": S.READ,
    "node.hostStats": S.READ,
    "node.runnerInventory.changed": S.READ,
    "talk.event": S.READ,
    "mentions.changed": S.READ,
    "users.prefs.changed": S.READ,
    "portal.changed": S.READ,
    "progressCard.changed": S.READ,
    "controlUi.sessionPullRequests.changed": S.READ,
    "ui.command": S.READ,
    "chat.send_timing": S.READ,
    "chat.side_result": S.READ,
    "board.changed": S.READ,
    "board.command": S.READ,
    "session.approval": S.APPROVALS,
    "talk.mode": S.TALK,
    "talk.voice.change": S.TALK,
    "update.run.changed": S.ADMIN,
    "plugins.install.progress": S.ADMIN,
}

#: Prefix rules, first match wins (checked after the exact table).
_PREFIXES: Final[tuple[tuple[str, str], ...]] = (
    ("exec.approval.", S.APPROVALS),
    ("plugin.approval.", S.APPROVALS),
    ("openclaw.approval.", S.APPROVALS),
    ("question.", S.QUESTIONS),
    ("device.pair.", S.PAIRING),
    ("node.pair.", S.PAIRING),
    ("terminal.", S.ADMIN),
    ("session.", S.READ),
    ("sessions.", S.READ),
    ("plugin.", S.WRITE),
)


def audience(event: str) -> str | None:
    """Required scope for ``event``, :data:`EVERYONE`, or ``None`` (deliver to nobody)."""
    if event in _UNRESTRICTED:
        return EVERYONE
    scope = _EXACT.get(event)
    if scope is not None:
        return scope
    for prefix, scope in _PREFIXES:
        if event.startswith(prefix):
            return scope
    return None


def may_receive(event: str, role: str, granted: frozenset[str]) -> bool:
    """Whether a connection with ``role``/``granted`` is eligible for broadcast ``event``."""
    need = audience(event)
    if need is None:
        return False
    if need == EVERYONE:
        return True
    if role != "operator":
        return False
    return S.satisfies(granted, need)


#: Event names one :class:`RecipientKind` remembers decisions for (the catalogue has ~60).
MAX_DECISIONS = 1024


class RecipientKind:
    """One kind of admitted connection for broadcasts: role, scopes and profile id.

    Every connection of a kind shares this object (:func:`recipient_kind`), so whether a kind may
    receive an event is decided once per event name for all of them, and a fan-out reads one
    small table that stays in cache instead of one per connection.
    """

    __slots__ = ("role", "scopes", "profile_id", "eligible")

    def __init__(self, role: str, scopes: frozenset[str], profile_id: str | None) -> None:
        self.role = role
        self.scopes = scopes
        self.profile_id = profile_id or None
        #: event name -> may receive it (filled by :meth:`decide`).
        self.eligible: dict[str, bool] = {}

    def decide(self, event: str) -> bool:
        """:func:`may_receive` for this kind, remembered."""
        if len(self.eligible) >= MAX_DECISIONS:
            self.eligible.clear()
        ok = self.eligible[event] = may_receive(event, self.role, self.scopes)
        return ok


@functools.lru_cache(maxsize=256)
def recipient_kind(role: str, scopes: frozenset[str], profile_id: str | None) -> RecipientKind:
    """The shared :class:`RecipientKind` for these values (a connection of an evicted kind keeps
    its object; a new one gets a fresh object with the same decisions)."""
    return RecipientKind(role, scopes, profile_id)


class EncodedEvent:
    """One broadcast (event name, payload, ``stateVersion``), encoded once for every recipient.

    A recipient's frame is ``prefix + seq + suffix``: byte for byte what encoding its
    :class:`~gateway_core.frames.EventFrame` gives (tests/core/test_fanout_core.py checks it). The split
    point is found by encoding ``seq`` 0 and 1 and taking the one byte where they differ (searched
    from the end, past the short tail only), so a payload that itself contains ``"seq":`` cannot
    mislead it. ``recipientProfileId`` follows
    ``seq`` in the frame: each profile id gets its own suffix, made on first use.
    """

    __slots__ = ("event", "drop_if_slow", "prefix", "suffix", "_payload", "_state_version", "_suffixes")

    def __init__(
        self, event: str, payload: Any = UNSET, *, state_version: StateVersion | None = None, drop_if_slow: bool = False
    ) -> None:
        self.event = event
        self.drop_if_slow = drop_if_slow
        if payload is not UNSET and not isinstance(payload, msgspec.Raw):
            payload = msgspec.Raw(encode_bytes(payload))  # encoded here, once
        self._payload = payload
        self._state_version = state_version if state_version is not None else UNSET
        self.prefix, self.suffix = self._split(UNSET)
        self._suffixes: dict[str, bytes] | None = None

    def _split(self, profile_id: Any) -> tuple[bytes, bytes]:
        zero, one = (
            encode_bytes(
                EventFrame(
                    event=self.event,
                    payload=self._payload,
                    seq=n,
                    state_version=self._state_version,
                    recipient_profile_id=profile_id,
                )
            )
            for n in (0, 1)
        )
        at = len(zero) - 1  # the seq digit is near the end (after the payload): search from there
        while zero[at] == one[at]:
            at -= 1
        return zero[:at], zero[at + 1 :]

    def suffix_for(self, profile_id: str | None) -> bytes:
        """What follows ``seq`` in the frame of a recipient acting as ``profile_id`` (if any)."""
        if not profile_id:
            return self.suffix
        suffixes = self._suffixes
        if suffixes is None:
            suffixes = self._suffixes = {}
        suffix = suffixes.get(profile_id)
        if suffix is None:
            prefix, suffix = self._split(profile_id)
            assert prefix == self.prefix  # seq comes before recipientProfileId
            suffixes[profile_id] = suffix
        return suffix

    def frame(self, seq: int, profile_id: str | None = None) -> bytes:
        """The complete event frame (JSON, UTF-8) for one recipient."""
        return b"%b%d%b" % (self.prefix, seq, self.suffix_for(profile_id))


__all__ = ["EVERYONE", "EncodedEvent", "RecipientKind", "audience", "may_receive", "recipient_kind"]
