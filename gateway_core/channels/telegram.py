"""Telegram Bot API, the pure parts: updates → :class:`Inbound`, request bodies, answers → outcomes.

What the published channel sends, as observed (channels-observed.md), is reproduced here as data:
the start-up calls (``getMe``; ``deleteWebhook {"drop_pending_updates": false}``; the command menu
for private and group chats), ``getUpdates`` with the 24 :data:`ALLOWED_UPDATES`, ``timeout`` 0 on
the first poll and 30 after, ``offset`` = last ``update_id`` + 1; ``sendChatAction`` with a numeric
``chat_id``, ``sendMessage`` with a string ``chat_id``, the text in Telegram HTML and
``parse_mode: "HTML"``; the pairing message.
"""

from __future__ import annotations

from typing import Any, Final

from . import commands, pairing
from .chunking import TELEGRAM_LIMIT, chunk_lines, telegram_html
from .delivery import Outcome, classify_http
from .inbound import Inbound

ALLOWED_UPDATES: Final = (
    "message", "edited_message", "channel_post", "edited_channel_post", "business_connection", "business_message",
    "edited_business_message", "deleted_business_messages", "guest_message", "inline_query", "chosen_inline_result",
    "callback_query", "shipping_query", "pre_checkout_query", "purchased_paid_media", "poll", "poll_answer",
    "my_chat_member", "managed_bot", "chat_join_request", "chat_boost", "removed_chat_boost", "subscription",
    "message_reaction",
)
POLL_TIMEOUT_S: Final = 30
POLL_LIMIT: Final = 100
CHANNEL: Final = "telegram"
ALIASES: Final = ("tg",)
ID_LABEL: Final = "telegramUserId"


def normalize_id(entry: str) -> str:
    """``telegram:123`` / ``tg:123`` / `` 123 `` → ``123``."""
    text = entry.strip()
    head, sep, rest = text.partition(":")
    if sep and head.lower() in (CHANNEL, *ALIASES):
        text = rest.strip()
    return text


def chat_type(chat: dict[str, Any]) -> str:
    kind = chat.get("type")
    if kind == "private":
        return "direct"
    if kind == "channel":
        return "channel"
    return "group"


def _mentioned(msg: dict[str, Any], text: str, bot_username: str | None, bot_id: int | None) -> bool:
    entities = msg.get("entities") or msg.get("caption_entities") or []
    handle = f"@{bot_username}".lower() if bot_username else None
    for ent in entities if isinstance(entities, list) else ():
        if not isinstance(ent, dict):
            continue
        if ent.get("type") == "mention" and handle:
            offset, length = int(ent.get("offset") or 0), int(ent.get("length") or 0)
            if text[offset : offset + length].lower() == handle:
                return True
        if ent.get("type") == "text_mention" and bot_id is not None and (ent.get("user") or {}).get("id") == bot_id:
            return True
    if handle and handle in text.lower() and not entities:
        return True
    reply = msg.get("reply_to_message")
    return bool(bot_id is not None and isinstance(reply, dict) and (reply.get("from") or {}).get("id") == bot_id)


def normalize_update(update: dict[str, Any], *, account_id: str, bot_username: str | None, bot_id: int | None) -> Inbound | None:
    """A ``message`` or ``channel_post`` update with text → :class:`Inbound`; anything else ``None``."""
    uid = update.get("update_id")
    msg = update.get("message") or update.get("channel_post")
    if not isinstance(uid, int) or not isinstance(msg, dict):
        return None
    chat = msg.get("chat") or {}
    sender = msg.get("from") or msg.get("sender_chat") or {}
    text = msg.get("text") if isinstance(msg.get("text"), str) else msg.get("caption")
    if not isinstance(text, str) or not text.strip() or not isinstance(chat.get("id"), int):
        return None
    if sender.get("is_bot") and sender.get("id") == bot_id:
        return None  # our own message echoed back
    kind = chat_type(chat)
    thread = msg.get("message_thread_id") if msg.get("is_topic_message") else None
    name = " ".join(x for x in (sender.get("first_name"), sender.get("last_name")) if isinstance(x, str)) or str(
        sender.get("title") or ""
    )
    reply = msg.get("reply_to_message")
    return Inbound(
        channel=CHANNEL,
        account_id=account_id,
        event_id=str(uid),
        chat_type=kind,  # type: ignore[arg-type]
        peer_id=str(chat["id"]),
        sender_id=str(sender.get("id", chat["id"])),
        sender_name=name,
        sender_username=str(sender.get("username") or ""),
        text=text,
        message_id=str(msg.get("message_id")) if msg.get("message_id") is not None else None,
        reply_to=str(reply.get("message_id")) if isinstance(reply, dict) and reply.get("message_id") is not None else None,
        thread_id=str(thread) if thread is not None else None,
        mentioned=kind != "direct" and _mentioned(msg, text, bot_username, bot_id),
        reply_target=str(chat["id"]),
        ts=int(msg.get("date") or 0) * 1000,
        extra={"botUsername": bot_username} if bot_username else {},
    )


def get_updates_body(offset: int | None, timeout: int) -> dict[str, Any]:
    body: dict[str, Any] = {"timeout": timeout, "limit": POLL_LIMIT, "allowed_updates": list(ALLOWED_UPDATES)}
    if offset is not None:
        body["offset"] = offset
    return body


def menu_commands() -> list[dict[str, str]]:
    return [{"command": name, "description": about} for name, about in commands.COMMANDS.items()]


def send_message_body(chat_id: str, html: str, *, reply_to: str | None = None, thread_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"chat_id": str(chat_id), "text": html, "parse_mode": "HTML"}
    if thread_id:
        body["message_thread_id"] = int(thread_id) if thread_id.lstrip("-").isdigit() else thread_id
    if reply_to:
        body["reply_parameters"] = {"message_id": int(reply_to) if reply_to.isdigit() else reply_to, "allow_sending_without_reply": True}
    return body


def typing_body(chat_id: str) -> dict[str, Any]:
    return {"chat_id": int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id, "action": "typing"}


def render_chunks(text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """A reply as the HTML texts of its ``sendMessage`` calls (split at line breaks, ≤ ``limit``);
    as published, every chunk but the last keeps the line break it was split at."""
    chunks = [telegram_html(chunk) for chunk in chunk_lines(text, limit - 1)]
    return [c + "\n" for c in chunks[:-1]] + chunks[-1:]


def pairing_text(user_id: str, code: str) -> str:
    """The HTML pairing message an unknown DM sender gets (byte for byte as observed)."""
    return telegram_html(pairing.pairing_reply(CHANNEL, f"Your Telegram user id: {user_id}", code))


def parse_target(target: str) -> tuple[str, str | None]:
    """``telegram:123`` / ``-100123:topic:42`` / ``@name`` → ``(chat id, topic id)``."""
    text = normalize_id(target)
    chat, sep, topic = text.partition(":topic:")
    return chat, (topic if sep else None)


def classify(status: int | None, body: Any, *, sent: bool, detail: str = "") -> Outcome:
    """A Bot API answer (``{"ok", "result" | "error_code", "description", "parameters"}``) as an outcome."""
    if isinstance(body, dict) and status is not None:
        if body.get("ok") is True and 200 <= status < 300:
            result = body.get("result")
            mid = result.get("message_id") if isinstance(result, dict) else None
            return Outcome(kind="delivered", message_id=str(mid) if mid is not None else None)
        params = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
        retry = params.get("retry_after")
        code = body.get("error_code") if isinstance(body.get("error_code"), int) else status
        text = f"{code}: {body.get('description') or ''}".strip()
        return classify_http(code, sent=True, retry_after_s=float(retry) if isinstance(retry, int | float) else None, detail=text)
    return classify_http(status, sent=sent, detail=detail)


def bot_facts(me: dict[str, Any]) -> dict[str, Any]:
    """``getMe``'s result as ``probe.bot`` shows it (camel case, as published)."""
    return {
        "id": me.get("id"),
        "isBot": me.get("is_bot"),
        "firstName": me.get("first_name"),
        "username": me.get("username"),
        "canJoinGroups": me.get("can_join_groups"),
        "canReadAllGroupMessages": me.get("can_read_all_group_messages"),
        "supportsInlineQueries": me.get("supports_inline_queries"),
        "hasTopicsEnabled": me.get("has_topics_enabled"),
    }


def probe_result(ok: bool, *, me: dict[str, Any] | None = None, status: int | None = None, error: str | None = None, elapsed_ms: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": ok, "status": status, "error": error}
    if me is not None:
        out["botInfo"] = me
        out["bot"] = bot_facts(me)
    out["elapsedMs"] = elapsed_ms
    return out


__all__ = [
    "ALIASES",
    "ALLOWED_UPDATES",
    "CHANNEL",
    "ID_LABEL",
    "POLL_TIMEOUT_S",
    "bot_facts",
    "chat_type",
    "classify",
    "get_updates_body",
    "menu_commands",
    "normalize_id",
    "normalize_update",
    "pairing_text",
    "parse_target",
    "probe_result",
    "render_chunks",
    "send_message_body",
    "typing_body",
]
