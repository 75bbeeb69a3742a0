"""The method catalogue and the authorization algorithm (protocol.md §7.3, §14, §15).

The table is data (``_catalogue_data.METHOD_ROWS``); this module turns it into
:class:`MethodSpec` rows and implements the exact check order of §7.3 as one pure function.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from msgspec import Struct

from . import scopes as S
from ._catalogue_data import EVENT_NAMES, METHOD_ROWS
from .errors import INVALID_REQUEST, error, missing_scope
from .frames import ErrorShape

_TAG_SCOPE: Final = {
    "R": S.READ,
    "W": S.WRITE,
    "A": S.ADMIN,
    "P": S.PAIRING,
    "Ap": S.APPROVALS,
    "Q": S.QUESTIONS,
    "T": S.TALK,
    "SW": S.SESSIONS_WRITE,
}


class MethodSpec(Struct, frozen=True):
    """One catalogue row."""

    name: str
    #: Static scope (``None`` for node-only and for dynamic methods).
    scope: str | None
    node_only: bool = False
    dynamic: bool = False
    #: Counts against the 30-per-minute control-plane write budget (§7.3 step 11).
    control_plane_write: bool = False
    #: Callable but not advertised in hello-ok (†).
    hidden: bool = False


def _build() -> dict[str, MethodSpec]:
    table: dict[str, MethodSpec] = {}
    for name, tag, flags in METHOD_ROWS:
        table[name] = MethodSpec(
            name=name,
            scope=_TAG_SCOPE.get(tag),
            node_only=tag == "N",
            dynamic=tag == "D",
            control_plane_write="*" in flags,
            hidden="†" in flags,
        )
    return table


#: Every method name the published gateway knows, in its advertised order.
CATALOGUE: Final[Mapping[str, MethodSpec]] = _build()

#: hello-ok ``features.events`` (the 64 names of §16.1).
EVENTS: Final = EVENT_NAMES

#: Methods answered with UNAVAILABLE while startup sidecars are pending (§14).
STARTUP_GATED: Final = frozenset(
    {
        "models.list",
        "sessions.list",
        "sessions.subscribe",
        "agent",
        "agent.wait",
        "chat.history",
        "chat.send",
        "chat.startup",
        "chat.metadata",
        "chat.message.get",
        "sessions.create",
        "sessions.send",
        "sessions.abort",
        "tools.effective",
    }
)

#: Reserved prefixes: unclassified names under them need admin (§7.3 step 7).
RESERVED_PREFIXES: Final = ("config.", "exec.approvals.", "wizard.", "update.")

_AGENT_ADMIN_COMMAND = re.compile(r"^/(new|reset)(\s|$)", re.IGNORECASE)

#: Scope of the params-dependent (D) methods when params do not raise it (§7.3 dynamic scopes).
_DYNAMIC_BASE: Final = {
    "agent": S.WRITE,
    "node.invoke": S.WRITE,
    "talk.config": S.READ,
    "sessions.create": S.WRITE,
    "sessions.patch": S.WRITE,
    "sessions.patchMany": S.WRITE,
    "sessions.delete": S.WRITE,
    "sessions.dispatch": S.WRITE,
    "sessions.move": S.WRITE,
    "fs.listDir": S.READ,
    "environments.list": S.READ,
    "channels.pairing.approve": S.PAIRING,
    "plugins.sessionAction": S.WRITE,
}

#: Methods that skip the scope check entirely (§7.3 step 5).
SCOPE_EXEMPT: Final = frozenset({"device.scopes.requestUpgrade", "device.scopes.waitUpgrade"})


def required_scope(method: str, params: Any) -> str:
    """The scope a call needs (§7.3 step 7); unknown and unclassified names need admin."""
    spec = CATALOGUE.get(method)
    if method == "connect":
        return S.ADMIN
    if spec is None:
        return S.ADMIN
    if spec.dynamic:
        if method == "agent" and isinstance(params, dict):
            msg = params.get("message")
            if isinstance(msg, str) and _AGENT_ADMIN_COMMAND.match(msg):
                return S.ADMIN
        return _DYNAMIC_BASE.get(method, S.ADMIN)
    if spec.scope is None:
        return S.ADMIN
    return spec.scope


def is_node_method(method: str) -> bool:
    """Whether ``method`` is callable only by node-role connections."""
    spec = CATALOGUE.get(method)
    return spec is not None and spec.node_only


def authorize(method: str, params: Any, role: str, granted: frozenset[str]) -> ErrorShape | None:
    """Steps 2-8 of §7.3: ``None`` when allowed, else the error to answer with.

    A role error is ``INVALID_REQUEST "unauthorized role: <role>"`` (the caller counts those for
    the flood guard); a scope error is ``FORBIDDEN "missing scope: <scope>"``.
    """
    if method == "health":
        return None
    node_method = is_node_method(method)
    if node_method != (role == "node"):
        return error(INVALID_REQUEST, f"unauthorized role: {role}")
    if role == "node":
        return None
    if method in SCOPE_EXEMPT or S.ADMIN in granted:
        return None
    scope = required_scope(method, params)
    if S.satisfies(granted, scope):
        return None
    return missing_scope(scope)


def advertised_methods(implemented: frozenset[str] | None = None) -> list[str]:
    """``features.methods``: catalogue order, hidden names left out, filtered to ``implemented``."""
    return [
        name
        for name, spec in CATALOGUE.items()
        if not spec.hidden and name != "mcp.authLogin" and (implemented is None or name in implemented)
    ]


__all__ = [
    "CATALOGUE",
    "EVENTS",
    "RESERVED_PREFIXES",
    "SCOPE_EXEMPT",
    "STARTUP_GATED",
    "MethodSpec",
    "advertised_methods",
    "authorize",
    "is_node_method",
    "required_scope",
]
