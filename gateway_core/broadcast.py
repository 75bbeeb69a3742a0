"""Scope gating of broadcast events (protocol.md §10.3), as a rules table.

``audience(event)`` answers who may receive a broadcast: everyone authenticated
(:data:`EVERYONE`), operators holding a scope, or nobody (unknown names fail closed).
"""

from __future__ import annotations

from typing import Final

from . import scopes as S

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


__all__ = ["EVERYONE", "audience", "may_receive"]
