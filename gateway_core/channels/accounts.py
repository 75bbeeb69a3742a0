"""Channel config: sections, accounts and the access settings each account runs with (§5.1).

``channels.<id>`` is a channel's section; ``channels.<id>.accounts.<accountId>`` are its accounts.
Root-level settings are inherited by every account (an account's own keys win; ``groups`` is
replaced, not merged, as documented). Without ``accounts`` a section has one account, ``default``.
The default account is ``channels.<id>.defaultAccount`` when it names one, else ``default`` when it
exists, else the first account id in order. A channel runs when its section exists and neither the
section nor the account says ``enabled: false``.
"""

from __future__ import annotations

from typing import Any, Final

from msgspec import Struct

DEFAULT_ACCOUNT: Final = "default"
#: Keys of a section that describe the section itself, never inherited by accounts.
SECTION_ONLY: Final = frozenset({"accounts", "defaultAccount"})
DM_POLICIES: Final = ("pairing", "allowlist", "open", "disabled")
GROUP_POLICIES: Final = ("allowlist", "open", "disabled")
#: Keys that never leave the gateway in ``inspect`` output.
SECRET_KEYS: Final = frozenset({"botToken", "password", "token", "outboundToken", "webhookSecret", "secret", "apiKey"})


def section(config: dict[str, Any] | None, channel: str) -> dict[str, Any] | None:
    """``channels.<channel>`` when it is an object, else ``None`` (the channel is not configured)."""
    channels = (config or {}).get("channels")
    if not isinstance(channels, dict):
        return None
    sec = channels.get(channel)
    return sec if isinstance(sec, dict) else None


def configured_channels(config: dict[str, Any] | None) -> list[str]:
    """Channel ids with a section, in config order (``defaults`` and ``modelByChannel`` are not channels)."""
    channels = (config or {}).get("channels")
    if not isinstance(channels, dict):
        return []
    return [k for k, v in channels.items() if isinstance(v, dict) and k not in ("defaults", "modelByChannel")]


def account_ids(sec: dict[str, Any] | None) -> list[str]:
    """The section's account ids: the keys of ``accounts`` (lower-cased), or ``["default"]``."""
    if sec is None:
        return []
    accounts = sec.get("accounts")
    if isinstance(accounts, dict) and accounts:
        return [str(k).strip().lower() for k in accounts if str(k).strip()]
    return [DEFAULT_ACCOUNT]


def default_account_id(sec: dict[str, Any] | None) -> str:
    ids = account_ids(sec)
    named = (sec or {}).get("defaultAccount")
    if isinstance(named, str) and named.strip().lower() in ids:
        return named.strip().lower()
    if DEFAULT_ACCOUNT in ids or not ids:
        return DEFAULT_ACCOUNT
    return ids[0]


def account_config(sec: dict[str, Any] | None, account_id: str) -> dict[str, Any]:
    """The effective settings of one account: the section's root keys, then the account's own."""
    if sec is None:
        return {}
    base = {k: v for k, v in sec.items() if k not in SECTION_ONLY}
    accounts = sec.get("accounts")
    own: dict[str, Any] = {}
    if isinstance(accounts, dict):
        for key, value in accounts.items():
            if str(key).strip().lower() == account_id and isinstance(value, dict):
                own = value
                break
    return {**base, **own}


def is_enabled(sec: dict[str, Any] | None, account_id: str) -> bool:
    if sec is None or sec.get("enabled") is False:
        return False
    return account_config(sec, account_id).get("enabled") is not False


class AccessConfig(Struct, frozen=True, kw_only=True):
    """What the access policy needs to know about one account (§5.3 step 3)."""

    dm_policy: str = "pairing"
    allow_from: tuple[str, ...] = ()
    group_policy: str = "allowlist"
    group_allow_from: tuple[str, ...] | None = None
    #: ``groups``: group / channel id (or ``*``) → its settings.
    groups: dict[str, dict[str, Any]] = {}
    #: Whether the group sender allowlist falls back to ``allowFrom`` when ``groupAllowFrom`` is unset
    #: (Telegram: yes; IRC: no).
    group_fallback_to_allow_from: bool = True
    #: Owners (``commands.ownerAllowFrom``), channel-prefixed as published (``telegram:123``).
    owners: tuple[str, ...] = ()


def _strings(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list):
        return ()
    return tuple(str(x).strip() for x in raw if isinstance(x, str | int) and str(x).strip())


def access_config(
    config: dict[str, Any] | None, channel: str, account_id: str, *, group_fallback_to_allow_from: bool = True
) -> AccessConfig:
    """The account's access settings with the published defaults (DMs ``pairing``, groups ``allowlist``)."""
    sec = section(config, channel)
    acc = account_config(sec, account_id)
    defaults = ((config or {}).get("channels") or {}).get("defaults") or {}
    dm = acc.get("dmPolicy") if acc.get("dmPolicy") in DM_POLICIES else "pairing"
    group = acc.get("groupPolicy")
    if group not in GROUP_POLICIES:
        group = defaults.get("groupPolicy") if isinstance(defaults, dict) and defaults.get("groupPolicy") in GROUP_POLICIES else "allowlist"
    groups_raw = acc.get("groups")
    groups = {str(k): (v if isinstance(v, dict) else {}) for k, v in groups_raw.items()} if isinstance(groups_raw, dict) else {}
    gaf = acc.get("groupAllowFrom")
    commands = (config or {}).get("commands") or {}
    return AccessConfig(
        dm_policy=dm,
        allow_from=_strings(acc.get("allowFrom")),
        group_policy=group,
        group_allow_from=_strings(gaf) if isinstance(gaf, list) else None,
        groups=groups,
        group_fallback_to_allow_from=group_fallback_to_allow_from,
        owners=_strings(commands.get("ownerAllowFrom") if isinstance(commands, dict) else None),
    )


def redact(value: Any) -> Any:
    """A copy of a config subtree with secrets replaced (for ``inspect`` and status output)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in SECRET_KEYS or k.endswith("Token") or k.endswith("Password"):
                out[k] = "***" if v else v
            else:
                out[k] = redact(v)
        return out
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


__all__ = [
    "DEFAULT_ACCOUNT",
    "DM_POLICIES",
    "GROUP_POLICIES",
    "AccessConfig",
    "access_config",
    "account_config",
    "account_ids",
    "configured_channels",
    "default_account_id",
    "is_enabled",
    "redact",
    "section",
]
