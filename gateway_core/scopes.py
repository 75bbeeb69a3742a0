"""Operator scopes and their implication rules (protocol.md §7.2).

Scopes are granted by the server, never taken on trust from ``connect`` params (design.md §5).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

ADMIN: Final = "operator.admin"
READ: Final = "operator.read"
WRITE: Final = "operator.write"
APPROVALS: Final = "operator.approvals"
QUESTIONS: Final = "operator.questions"
PAIRING: Final = "operator.pairing"
TALK: Final = "operator.talk"
TALK_SECRETS: Final = "operator.talk.secrets"
SESSIONS_READ: Final = "operator.sessions.read"
SESSIONS_WRITE: Final = "operator.sessions.write"

#: The closed set of operator scopes (10; the docs list 8, the code has 10 - §17 item 3).
OPERATOR_SCOPES: Final = frozenset(
    {ADMIN, READ, WRITE, APPROVALS, QUESTIONS, PAIRING, TALK, TALK_SECRETS, SESSIONS_READ, SESSIONS_WRITE}
)

#: Rule table: required scope → granted scopes that also satisfy it (besides itself and admin).
IMPLIED_BY: Final[dict[str, frozenset[str]]] = {
    READ: frozenset({WRITE}),
    TALK: frozenset({WRITE}),
    SESSIONS_READ: frozenset({WRITE, READ, SESSIONS_WRITE}),
    SESSIONS_WRITE: frozenset({WRITE}),
}


def satisfies(granted: Iterable[str], required: str) -> bool:
    """Whether the granted set ``granted`` satisfies ``required`` (§7.2)."""
    if not required.startswith("operator."):
        return False
    g = granted if isinstance(granted, (set, frozenset)) else frozenset(granted)
    if required in g or ADMIN in g:
        return True
    return not g.isdisjoint(IMPLIED_BY.get(required, ()))


__all__ = [
    "ADMIN",
    "APPROVALS",
    "IMPLIED_BY",
    "OPERATOR_SCOPES",
    "PAIRING",
    "QUESTIONS",
    "READ",
    "SESSIONS_READ",
    "SESSIONS_WRITE",
    "TALK",
    "TALK_SECRETS",
    "WRITE",
    "satisfies",
]
