"""What the pure pipeline needs to know about one kind of channel: :class:`ChannelRules`.

A channel's rules are pure functions over :class:`~.inbound.Inbound` facts: how allowlist entries
and sender ids are normalized, which ids a sender may be listed under, what the pairing message
looks like, and how a reply is cut and rendered for the wire. The built-in Telegram and IRC rules
are here; a third-party channel (loaded through the ``openclaw.channels`` entry points) brings its
own subclass.
"""

from __future__ import annotations

from typing import Any

from . import pairing
from . import telegram as tg
from .chunking import IRC_LIMIT, TELEGRAM_LIMIT, chunk_irc, chunk_lines
from .inbound import Inbound
from .status import ChannelMeta


class ChannelRules:
    """Defaults suit a plain-text channel whose ids are case-sensitive strings."""

    meta: ChannelMeta = ChannelMeta(id="generic", label="Generic", detail_label="Generic")
    aliases: tuple[str, ...] = ()
    #: Whether the group sender allowlist falls back to ``allowFrom`` (see ``policy``).
    group_fallback_to_allow_from: bool = True
    parse_mode: str | None = None
    text_limit: int = 4000

    def normalize(self, entry: str) -> str:
        return entry.strip()

    def identities(self, msg: Inbound, account: dict[str, Any]) -> set[str]:
        return {self.normalize(msg.sender_id)}

    def pairing_id(self, msg: Inbound) -> str:
        return self.normalize(msg.sender_id)

    def pairing_meta(self, msg: Inbound) -> dict[str, Any]:
        return {"name": msg.sender_name, "username": msg.sender_username}

    def id_line(self, msg: Inbound) -> str:
        return f"Your {self.meta.label} id: {msg.sender_id}"

    def pairing_message(self, msg: Inbound, code: str) -> str:
        return pairing.pairing_reply(self.meta.id, self.id_line(msg), code)

    def render(self, text: str, target: str, account: dict[str, Any]) -> list[str]:
        limit = account.get("textChunkLimit") if isinstance(account.get("textChunkLimit"), int) else self.text_limit
        return chunk_lines(text, max(1, limit))

    def bot_name(self, msg: Inbound) -> str | None:
        return None


class TelegramRules(ChannelRules):
    meta = ChannelMeta(
        id="telegram", label="Telegram", detail_label="Telegram Bot", system_image="paperplane",
        liveness_ms=120_000, id_label=tg.ID_LABEL,
    )
    aliases = tg.ALIASES
    parse_mode = "HTML"
    text_limit = TELEGRAM_LIMIT

    def normalize(self, entry: str) -> str:
        return tg.normalize_id(entry)

    def pairing_meta(self, msg: Inbound) -> dict[str, Any]:
        return {"firstName": msg.sender_name, "username": msg.sender_username}

    def pairing_message(self, msg: Inbound, code: str) -> str:
        return tg.pairing_text(self.pairing_id(msg), code)

    def render(self, text: str, target: str, account: dict[str, Any]) -> list[str]:
        limit = account.get("textChunkLimit") if isinstance(account.get("textChunkLimit"), int) else TELEGRAM_LIMIT
        return tg.render_chunks(text, max(1, min(limit, TELEGRAM_LIMIT)))

    def bot_name(self, msg: Inbound) -> str | None:
        name = msg.extra.get("botUsername")
        return name if isinstance(name, str) else None


class IrcRules(ChannelRules):
    meta = ChannelMeta(
        id="irc", label="IRC", detail_label="IRC", system_image="network", liveness_ms=300_000, id_label="ircUser",
    )
    group_fallback_to_allow_from = False
    text_limit = IRC_LIMIT

    def normalize(self, entry: str) -> str:
        return entry.strip().lower()

    def identities(self, msg: Inbound, account: dict[str, Any]) -> set[str]:
        ids = {self.normalize(msg.sender_id)}
        if account.get("dangerouslyAllowNameMatching") is True:
            nick = msg.sender_id.split("!", 1)[0]
            ids.add(self.normalize(nick))
        return ids

    def pairing_meta(self, msg: Inbound) -> dict[str, Any]:
        return {"name": msg.sender_name}

    def id_line(self, msg: Inbound) -> str:
        return f"Your IRC id: {msg.extra.get('display') or msg.sender_id}"

    def render(self, text: str, target: str, account: dict[str, Any]) -> list[str]:
        limit = account.get("textChunkLimit") if isinstance(account.get("textChunkLimit"), int) else IRC_LIMIT
        return chunk_irc(text, target, max(1, limit))


BUILTIN: dict[str, ChannelRules] = {"telegram": TelegramRules(), "irc": IrcRules()}

__all__ = ["BUILTIN", "ChannelRules", "IrcRules", "TelegramRules"]
