"""Routing an admitted message to an agent and a session (§5.3 step 4, §5.4 bindings).

Bindings are top-level ``bindings: [{agentId, match: {channel, accountId?, peer?: {kind, id},
guildId?, teamId?, roles?}, session?: {dmScope?, groupScope?}}]``. A binding matches when every
field it gives matches; without ``accountId`` it matches only the channel's default account,
``accountId: "*"`` matches any. The most specific tier wins (:data:`TIERS`), the first binding in
config order within a tier. No binding: the sole agent owns the message; a fleet of several agents
without a matching binding **fails closed** (:class:`Unrouted`), as published. Our channels carry
no guilds, teams or roles, so bindings that ask for them never match here.

The session key then comes from ``keys.peer_key`` with ``session.dmScope`` (or the binding's),
and ``session.groupScope: "main"`` sends groups to the agent's main session.
"""

from __future__ import annotations

from typing import Any, Final

from msgspec import Struct

from ..agents import keys
from ..agents.roster import Roster
from .inbound import Inbound

DM_SCOPES: Final = ("main", "per-peer", "per-channel-peer", "per-account-channel-peer")
#: Tier names, most specific first (§5.4).
TIERS: Final = ("peer", "parent-peer", "peer-wildcard", "guild-roles", "guild", "team", "account", "channel", "owner")


class Route(Struct, frozen=True, kw_only=True):
    agent_id: str
    session_key: str
    tier: str
    dm_scope: str = "main"


class Unrouted(Struct, frozen=True, kw_only=True):
    """No owner: several agents and no binding for this conversation (fails closed)."""

    reason: str
    fix: str


def _bindings(config: dict[str, Any] | None) -> list[dict[str, Any]]:
    raw = (config or {}).get("bindings")
    return [b for b in raw if isinstance(b, dict) and isinstance(b.get("match"), dict)] if isinstance(raw, list) else []


def _kind(value: Any) -> str:
    kind = str(value or "").strip().lower()
    return {"dm": "direct", "user": "direct", "room": "channel"}.get(kind, kind)


def _tier(binding: dict[str, Any], msg: Inbound, default_account: str) -> str | None:
    """The tier at which ``binding`` matches ``msg``, or ``None``."""
    match = binding["match"]
    if str(match.get("channel") or "").strip().lower() != msg.channel:
        return None
    account = match.get("accountId")
    if account is None:
        if msg.account_id != default_account:
            return None
    elif str(account).strip().lower() not in ("*", msg.account_id):
        return None
    if any(match.get(k) for k in ("guildId", "teamId", "roles")):
        return None  # no guilds, teams or roles on these channels
    peer = match.get("peer")
    if isinstance(peer, dict):
        kind = _kind(peer.get("kind"))
        pid = str(peer.get("id") or "").strip()
        if kind and kind != msg.chat_type:
            return None
        full = f"{msg.peer_id}:topic:{msg.thread_id}" if msg.thread_id else msg.peer_id
        if pid == "*":
            return "peer-wildcard"
        if pid.lower() == full.lower():
            return "peer"
        if msg.thread_id and pid.lower() == msg.peer_id.lower():
            return "parent-peer"
        return None
    if account is not None and str(account).strip() != "*":
        return "account"
    return "channel" if account is not None else "account"


def pick(config: dict[str, Any] | None, roster: Roster, msg: Inbound, default_account: str) -> tuple[str, str, dict[str, Any]] | Unrouted:
    """``(agent id, tier, binding session overrides)`` for ``msg``, or :class:`Unrouted`."""
    best: tuple[int, str, dict[str, Any]] | None = None
    for binding in _bindings(config):
        tier = _tier(binding, msg, default_account)
        if tier is None:
            continue
        rank = TIERS.index(tier)
        agent = keys.normalize_agent_id(str(binding.get("agentId") or ""))
        if roster.get(agent) is None:
            continue
        if best is None or rank < best[0]:
            session = binding.get("session") if isinstance(binding.get("session"), dict) else {}
            best = (rank, agent, session)
    if best is not None:
        return best[1], TIERS[best[0]], best[2]
    if len(roster.agents) == 1:
        return roster.agents[0].id, "owner", {}
    explicit = [a for a in roster.agents if a.default]
    if len(explicit) == 1 and not _bindings(config):
        return explicit[0].id, "owner", {}
    return Unrouted(
        reason=f"no agent owns {msg.channel} account {msg.account_id}: several agents are configured and no binding matches",
        fix=f'add {{ agentId: "<agent>", match: {{ channel: "{msg.channel}", accountId: "{msg.account_id}" }} }} to bindings',
    )


def route(config: dict[str, Any] | None, roster: Roster, msg: Inbound, default_account: str) -> Route | Unrouted:
    """The agent and session key for ``msg``."""
    picked = pick(config, roster, msg, default_account)
    if isinstance(picked, Unrouted):
        return picked
    agent, tier, overrides = picked
    session_cfg = (config or {}).get("session") if isinstance((config or {}).get("session"), dict) else {}
    dm_scope = overrides.get("dmScope") or session_cfg.get("dmScope") or "main"
    if dm_scope not in DM_SCOPES:
        dm_scope = "main"
    group_scope = overrides.get("groupScope") or session_cfg.get("groupScope") or "per-group"
    if msg.is_group and group_scope == "main":
        key = keys.main_key(agent)
    else:
        topic = msg.thread_id if msg.channel == "telegram" and msg.is_group else None
        thread = msg.thread_id if msg.thread_id and topic is None else None
        key = keys.peer_key(
            agent,
            channel=msg.channel,
            account=msg.account_id,
            chat_type=msg.chat_type,
            peer=msg.peer_id,
            dm_scope=dm_scope,
            thread=thread,
            topic=topic,
        )
    return Route(agent_id=agent, session_key=key, tier=tier, dm_scope=dm_scope)


__all__ = ["DM_SCOPES", "TIERS", "Route", "Unrouted", "pick", "route"]
