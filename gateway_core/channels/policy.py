"""The access policy (§5.3 step 3) as tables: who may talk to the agent, and when.

:func:`decide` looks at one :class:`~.inbound.Inbound`, the account's :class:`~.accounts.AccessConfig`
and the senders approved through pairing, and answers an :class:`Admission`:

* ``dispatch`` — hand the message on (commands, then the agent);
* ``pairing`` — an unknown DM sender under ``dmPolicy: pairing``: issue (or keep) a pairing
  request; the message itself is **not** processed;
* ``skip`` — an admitted group message that does not mention the bot while mentions are required;
* ``drop`` — not admitted; ``reason`` says why, in the published log wording.

DMs (:data:`DM_TABLE`): the policy and whether the sender is listed in ``allowFrom`` (or approved
through pairing) decide. ``open`` admits everyone only when ``allowFrom`` holds ``"*"``; with
concrete entries it admits only those, and pairing approvals never widen it. Pairing approvals
grant DM access only — never group access.

Groups, in order: ``groupPolicy: disabled`` drops; the group must be allowed (``groups`` acts as an
allowlist when configured, ``allowlist`` without ``groups`` blocks everything, ``open`` without
``groups`` lets any group through); a group entry with ``enabled: false`` drops; the sender must
pass the group sender allowlist when one is configured (the group's own ``allowFrom``, else
``groupAllowFrom``, else — for channels that fall back — ``allowFrom``); and mention gating
(``requireMention``, default true) skips unmentioned messages.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Final, Literal

from msgspec import Struct

from .accounts import AccessConfig
from .inbound import Inbound

Action = Literal["dispatch", "pairing", "skip", "drop"]


class Admission(Struct, frozen=True):
    """The policy's answer; ``reason`` is for the log (``irc: drop channel #x (not allowlisted)``)."""

    action: Action
    reason: str = ""
    #: Whether the sender is an owner (``commands.ownerAllowFrom``): owner-only commands need it.
    owner: bool = False


#: (dmPolicy, sender listed in allowFrom, sender approved by pairing) → action.
#: ``None`` in a key matches either value.
DM_TABLE: Final[tuple[tuple[str, bool | None, bool | None, Action], ...]] = (
    ("disabled", None, None, "drop"),
    ("open", True, None, "dispatch"),
    ("open", False, None, "drop"),
    ("allowlist", True, None, "dispatch"),
    ("allowlist", False, True, "dispatch"),
    ("allowlist", False, False, "drop"),
    ("pairing", True, None, "dispatch"),
    ("pairing", False, True, "dispatch"),
    ("pairing", False, False, "pairing"),
)


def _dm_action(policy: str, listed: bool, paired: bool) -> Action:
    for p, want_listed, want_paired, action in DM_TABLE:
        if p == policy and want_listed in (None, listed) and want_paired in (None, paired):
            return action
    return "drop"  # an unknown policy admits nobody


def strip_channel_prefix(entry: str, channel: str, aliases: Collection[str] = ()) -> str:
    """``telegram:123`` / ``tg:123`` → ``123`` (entries may name their channel)."""
    head, sep, rest = entry.partition(":")
    if sep and head.lower() in {channel, *aliases}:
        return rest
    return entry


def listed(
    entries: Collection[str],
    identities: Collection[str],
    *,
    channel: str,
    normalize: Callable[[str], str] = lambda s: s,
    aliases: Collection[str] = (),
    wildcard: bool = True,
) -> bool:
    """Whether any of ``identities`` (already normalized) is in ``entries`` (``*`` matches all)."""
    wanted = set(identities)
    for raw in entries:
        entry = raw.strip()
        if entry == "*":
            if wildcard:
                return True
            continue
        if normalize(strip_channel_prefix(entry, channel, aliases)) in wanted:
            return True
    return False


def group_entry(groups: dict[str, dict[str, Any]], peer: str, normalize: Callable[[str], str] = lambda s: s) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The group's own entry (matched by normalized id) and the ``*`` entry, if any."""
    own = None
    for key, value in groups.items():
        if key != "*" and normalize(key) == normalize(peer):
            own = value
            break
    return own, groups.get("*")


def require_mention(groups: dict[str, dict[str, Any]], peer: str, normalize: Callable[[str], str] = lambda s: s) -> bool:
    own, wild = group_entry(groups, peer, normalize)
    for entry in (own, wild):
        if entry is not None and isinstance(entry.get("requireMention"), bool):
            return bool(entry["requireMention"])
    return True


def decide(
    msg: Inbound,
    access: AccessConfig,
    paired: Collection[str],
    *,
    identities: Collection[str] | None = None,
    normalize: Callable[[str], str] = lambda s: s,
    aliases: Collection[str] = (),
) -> Admission:
    """Admit ``msg`` or not. ``identities``: the sender's normalized ids that allowlists may name
    (default: ``sender_id`` alone); ``paired``: normalized ids approved through pairing."""
    ids = set(identities) if identities is not None else {normalize(msg.sender_id)}
    ch = msg.channel
    owner = listed(access.owners, ids, channel=ch, normalize=normalize, aliases=aliases, wildcard=False)
    if not msg.is_group:
        in_list = listed(access.allow_from, ids, channel=ch, normalize=normalize, aliases=aliases)
        if access.dm_policy == "open" and "*" not in access.allow_from:
            in_list = listed(access.allow_from, ids, channel=ch, normalize=normalize, aliases=aliases, wildcard=False)
        approved = bool(ids & {normalize(p) for p in paired}) and access.dm_policy != "open"
        action = _dm_action(access.dm_policy, in_list, approved)
        reason = "" if action == "dispatch" else f"drop DM sender {msg.sender_id} (dmPolicy={access.dm_policy})"
        return Admission(action, reason, owner)
    # groups and channels
    where = f"channel {msg.peer_id}"
    if access.group_policy == "disabled":
        return Admission("drop", f"drop {where} (groupPolicy=disabled)", owner)
    own, wild = group_entry(access.groups, msg.peer_id, normalize)
    configured = bool(access.groups)
    if configured and own is None and wild is None:
        return Admission("drop", f"drop {where} (not allowlisted)", owner)
    if not configured and access.group_policy == "allowlist":
        return Admission("drop", f"drop {where} (not allowlisted)", owner)
    if (own is not None and own.get("enabled") is False) or (wild is not None and wild.get("enabled") is False and own is None):
        return Admission("drop", f"drop {where} (disabled)", owner)
    senders = _group_senders(access, own, wild)
    if senders is not None and not listed(senders, ids, channel=ch, normalize=normalize, aliases=aliases):
        return Admission("drop", f"drop group sender {msg.sender_id} (policy={access.group_policy})", owner)
    if require_mention(access.groups, msg.peer_id, normalize) and not msg.mentioned:
        return Admission("skip", f"drop {where} (missing-mention)", owner)
    return Admission("dispatch", "", owner)


def _group_senders(access: AccessConfig, own: dict[str, Any] | None, wild: dict[str, Any] | None) -> tuple[str, ...] | None:
    """The group sender allowlist in force, or ``None`` when none is configured (any sender)."""
    for entry in (own, wild):
        if entry is not None and isinstance(entry.get("allowFrom"), list) and entry["allowFrom"]:
            return tuple(str(x) for x in entry["allowFrom"])
    if access.group_allow_from:
        return access.group_allow_from
    if access.group_fallback_to_allow_from and access.allow_from:
        return access.allow_from
    return None


__all__ = ["DM_TABLE", "Action", "Admission", "decide", "group_entry", "listed", "require_mention", "strip_channel_prefix"]
