"""Session keys (http-agents-channels.md §2.3, §5.3): their shapes, case rules and reserved namespaces.

Every session lives under ``agent:<agentId>:<rest>``. A bare key from a client (``main``) belongs
to the default agent. Agent ids are lower-case ``[a-z0-9][a-z0-9_-]{0,63}``; the part after
``agent:<id>:`` is lower-cased too, so keys that differ only in case name one session.
"""

from __future__ import annotations

import re
from typing import Final

AGENT_ID_RE: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
DEFAULT_AGENT_ID: Final = "main"
MAIN_KEY: Final = "main"
#: Namespaces a client may not address directly (§2.3): subagents, cron jobs, ACP harnesses.
RESERVED_NAMESPACES: Final = ("subagent", "cron", "acp")
#: Incognito namespaces need owner/admin authority (§2.3).
INCOGNITO_NAMESPACES: Final = ("dashboard", "subagent", "internal-session-effects")


def normalize_agent_id(raw: str) -> str:
    """Lower-case; characters outside ``[a-z0-9_-]`` become ``-``; at most 64 characters."""
    out = re.sub(r"[^a-z0-9_-]", "-", raw.strip().lower())[:64]
    return out or DEFAULT_AGENT_ID


def is_agent_id(raw: str) -> bool:
    return bool(AGENT_ID_RE.match(raw))


def canonical(raw: str, default_agent: str = DEFAULT_AGENT_ID) -> str:
    """``main`` → ``agent:main:main``; ``agent:Ops:X`` → ``agent:ops:x``."""
    key = raw.strip()
    if key.lower().startswith("agent:"):
        parts = key.split(":", 2)
        agent = normalize_agent_id(parts[1]) if len(parts) > 1 and parts[1] else default_agent
        rest = parts[2] if len(parts) > 2 and parts[2] else MAIN_KEY
        return f"agent:{agent}:{rest.lower()}"
    return f"agent:{default_agent}:{key.lower() or MAIN_KEY}"


def split(key: str) -> tuple[str, str]:
    """``agent:<id>:<rest>`` → ``(id, rest)`` (a canonical key is assumed)."""
    _, agent, rest = key.split(":", 2)
    return agent, rest


def agent_of(key: str, default_agent: str = DEFAULT_AGENT_ID) -> str:
    return split(canonical(key, default_agent))[0]


def is_reserved(raw: str) -> bool:
    """A key in a namespace clients may not use (``subagent:``, ``cron:``, ``acp:``, or agent-scoped)."""
    key = raw.strip().lower()
    first = key.split(":", 1)[0]
    if first in RESERVED_NAMESPACES:
        return True
    if first == "agent":
        parts = key.split(":")
        return len(parts) > 2 and parts[2] in RESERVED_NAMESPACES
    return False


def is_incognito(key: str) -> bool:
    parts = key.lower().split(":")
    return len(parts) > 3 and parts[0] == "agent" and parts[2] in INCOGNITO_NAMESPACES and parts[3].startswith("incognito-")


def main_key(agent: str) -> str:
    return f"agent:{agent}:{MAIN_KEY}"


def explicit_key(agent: str, run_id: str) -> str:
    """A raw ``agent`` request without a session: ``agent:<id>:explicit:<runId>``."""
    return f"agent:{agent}:explicit:{run_id.lower()}"


def http_key(agent: str, prefix: str, *, user: str | None = None, request_id: str | None = None) -> str:
    """OpenAI-compatible routes: ``<prefix>-user:<user>`` when ``user`` is set, else per request."""
    if user:
        return f"agent:{agent}:{prefix}-user:{user}".lower()
    return f"agent:{agent}:{prefix}:{(request_id or '').lower()}"


def peer_key(
    agent: str,
    *,
    channel: str,
    account: str,
    chat_type: str,
    peer: str,
    dm_scope: str = "main",
    thread: str | None = None,
    topic: str | None = None,
) -> str:
    """Channel traffic (§5.3 step 4): DMs by ``dmScope``; groups and channels per conversation."""
    if chat_type == "direct":
        if dm_scope == "per-peer":
            key = f"agent:{agent}:direct:{peer}"
        elif dm_scope == "per-channel-peer":
            key = f"agent:{agent}:{channel}:direct:{peer}"
        elif dm_scope == "per-account-channel-peer":
            key = f"agent:{agent}:{channel}:{account}:direct:{peer}"
        else:
            key = main_key(agent)
    else:
        kind = "group" if chat_type == "group" else "channel"
        key = f"agent:{agent}:{channel}:{kind}:{peer}"
    if thread:
        key += f":thread:{thread}"
    if topic:
        key += f":topic:{topic}"
    return key.lower()


__all__ = [
    "DEFAULT_AGENT_ID",
    "agent_of",
    "canonical",
    "explicit_key",
    "http_key",
    "is_agent_id",
    "is_incognito",
    "is_reserved",
    "main_key",
    "normalize_agent_id",
    "peer_key",
    "split",
]
