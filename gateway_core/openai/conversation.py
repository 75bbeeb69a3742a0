"""Opt-in: one session per chat-UI conversation, for clients that send no ``user`` (published #78091).

Chat UIs send the whole conversation with every request and (Open WebUI, LobeChat) no ``user``,
so the published gateway starts a new session for every message. With
``gateway.http.endpoints.chatCompletions.sessionMode: "conversation"`` the session is derived from
the conversation instead — never from a hash of all messages, which changes every turn:

1. ``x-openclaw-session-key`` still wins (published rule).
2. An explicit conversation id, first found of: the headers ``x-openclaw-conversation-id``,
   ``x-openwebui-chat-id`` (Open WebUI sends it when ``ENABLE_FORWARD_USER_INFO_HEADERS`` is on;
   the name follows its ``FORWARD_SESSION_INFO_HEADER_CHAT_ID``, so it is configurable here),
   ``x-conversation-id`` (LibreChat can send ``{{LIBRECHAT_BODY_CONVERSATIONID}}`` through its
   endpoint ``headers``), then the body fields ``conversation_id``, ``chat_id``,
   ``metadata.conversation_id``, ``metadata.chat_id``.
3. Otherwise the conversation's *anchor*: its first user message and the first assistant reply,
   which stay the same as the conversation grows. The first turn has no reply yet, so it runs in a
   fresh session and the host :meth:`ConversationLinks.remember` s the anchor it will have (first
   user message + the reply just given); the second turn finds it there. If that link is gone
   (restart without persistence, eviction, a UI that edited the reply), turn two onwards use a
   key computed from the anchor, so only the first turn is split off.

Helper requests a UI makes about a conversation (Open WebUI's title/tag/follow-up generation,
whose prompt starts ``### Task:``) would pollute it; with an explicit id they go to the
conversation's ``…:tasks`` session, without one they are stateless. ``user`` (LibreChat sends its
user id) does not select the session in this mode, but it scopes the keys, as does the caller's
auth subject, so two callers never share a conversation. Keys hold digests, never message text.
Modes ``user`` (the default: the published behaviour) and ``stateless`` (ignore ``user``) exist too.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Final

from msgspec import Struct

from ..agents import keys
from .models import header
from .prompt import message_text
from .sessions import LinkMap, Scope, explicit_key, link_record

MODES: Final = ("user", "stateless", "conversation")
DEFAULT_ID_HEADERS: Final = ("x-openclaw-conversation-id", "x-openwebui-chat-id", "x-conversation-id")
BODY_ID_FIELDS: Final = (("conversation_id",), ("chat_id",), ("metadata", "conversation_id"), ("metadata", "chat_id"))
DEFAULT_TASK_PREFIXES: Final = ("### Task:",)
LINK_TTL_MS: Final = 7 * 24 * 3600 * 1000
LINK_MAX_ENTRIES: Final = 10_000
_WS: Final = re.compile(r"\s+")


class ConversationSettings(Struct, frozen=True, kw_only=True):
    """``gateway.http.endpoints.chatCompletions.sessionMode`` and ``….conversation.*``."""

    mode: str = "user"
    id_headers: tuple[str, ...] = DEFAULT_ID_HEADERS
    task_prefixes: tuple[str, ...] = DEFAULT_TASK_PREFIXES
    persist: bool = False
    #: ``client``: flatten the whole history the client sent (published); ``session``: only the new part.
    history: str = "client"


def conversation_settings(config: dict[str, Any] | None) -> ConversationSettings:
    node = (((config or {}).get("gateway") or {}).get("http") or {}).get("endpoints") or {}
    chat = node.get("chatCompletions") if isinstance(node, dict) else None
    chat = chat if isinstance(chat, dict) else {}
    mode = chat.get("sessionMode") if chat.get("sessionMode") in MODES else "user"
    conv = chat.get("conversation") if isinstance(chat.get("conversation"), dict) else {}
    hdrs = conv.get("idHeaders")
    prefixes = conv.get("taskPrefixes")
    return ConversationSettings(
        mode=mode,
        id_headers=tuple(h.lower() for h in hdrs if isinstance(h, str) and h) if isinstance(hdrs, list) else DEFAULT_ID_HEADERS,
        task_prefixes=tuple(p for p in prefixes if isinstance(p, str) and p) if isinstance(prefixes, list) else DEFAULT_TASK_PREFIXES,
        persist=conv.get("persist") is True,
        history="session" if conv.get("history") == "session" else "client",
    )


def normalize(text: str) -> str:
    """Whitespace-insensitive form of a message, so a UI that re-wraps the reply still matches."""
    return _WS.sub(" ", text).strip()


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:32]


def conversation_id(settings: ConversationSettings, headers: dict[str, str], body: dict[str, Any]) -> str | None:
    """The explicit conversation id a client sent, if any."""
    for name in settings.id_headers:
        value = header(headers, name)
        if value:
            return value
    for path in BODY_ID_FIELDS:
        node: Any = body
        for step in path:
            node = node.get(step) if isinstance(node, dict) else None
        if isinstance(node, str | int) and not isinstance(node, bool) and str(node).strip():
            return str(node).strip()
    return None


def anchor(messages: Any) -> tuple[str | None, str | None]:
    """The first user message and the first assistant reply after it (normalized), if present."""
    first_user: str | None = None
    for msg in messages if isinstance(messages, list) else ():
        if not isinstance(msg, dict):
            continue
        text = message_text(msg.get("content"))
        text = normalize(text) if text is not None else ""
        if first_user is None and msg.get("role") == "user" and text:
            first_user = text
        elif first_user is not None and msg.get("role") == "assistant" and text:
            return first_user, text
    return first_user, None


def anchor_id(scope: Scope, user: str | None, first_user: str, first_reply: str) -> str:
    """The link id of a conversation anchor (also the digest in its fallback key)."""
    return _digest("anchor", scope.subject, scope.agent_id, (user or "").strip().lower(), first_user, normalize(first_reply))


class Derived(Struct, frozen=True, kw_only=True):
    """The session a conversation-mode request runs in, and what to remember once it answered."""

    session_key: str
    #: How it was found: ``header`` | ``id`` | ``task`` | ``linked`` | ``anchor`` | ``first`` | ``stateless``.
    source: str
    #: For ``first``: the first user message, whose anchor :meth:`ConversationLinks.remember` completes.
    first_user: str | None = None


class ConversationLinks:
    """Links from a conversation's anchor to the session its first turn ran in (bounded, persistable)."""

    def __init__(self, ttl_ms: int = LINK_TTL_MS, max_entries: int = LINK_MAX_ENTRIES) -> None:
        self.links = LinkMap(ttl_ms, max_entries)

    def derive(
        self,
        settings: ConversationSettings,
        *,
        agent_id: str,
        prefix: str,
        headers: dict[str, str],
        body: dict[str, Any],
        scope: Scope,
        request_id: str,
        now_ms: int,
    ) -> Derived:
        """The session key for a chat completion in ``conversation`` mode."""
        explicit = explicit_key(headers, agent_id)
        if explicit is not None:
            return Derived(session_key=explicit, source="header")
        user = body.get("user") if isinstance(body.get("user"), str) else None
        scoped = (scope.subject, (user or "").strip().lower())
        messages = body.get("messages")
        first_user, first_reply = anchor(messages)
        task = self._is_task(settings, messages)
        given = conversation_id(settings, headers, body)
        if given is not None:
            key = f"agent:{agent_id}:{prefix}-conv:{_digest('id', *scoped, given)}"
            return Derived(session_key=key + (":tasks" if task else ""), source="task" if task else "id")
        fresh = keys.http_key(agent_id, prefix, request_id=request_id)
        if task or first_user is None:
            return Derived(session_key=fresh, source="stateless")
        if first_reply is None:
            return Derived(session_key=f"agent:{agent_id}:{prefix}-conv:{request_id.lower()}", source="first", first_user=first_user)
        link = anchor_id(scope, user, first_user, first_reply)
        found = self.links.lookup(link, scope, now_ms)
        if found is not None:
            return Derived(session_key=found, source="linked")
        return Derived(session_key=f"agent:{agent_id}:{prefix}-conv:{link}", source="anchor")

    def remember(self, derived: Derived, *, scope: Scope, user: str | None, reply: str, now_ms: int) -> dict[str, Any] | None:
        """After a ``first`` turn answered ``reply``: link the anchor to its session. Returns the record to persist."""
        if derived.source != "first" or derived.first_user is None or not normalize(reply):
            return None
        link = self.links.store(anchor_id(scope, user, derived.first_user, reply), derived.session_key, scope, now_ms)
        return link_record(link)

    @staticmethod
    def _is_task(settings: ConversationSettings, messages: Any) -> bool:
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"] if isinstance(messages, list) else []
        others = [m for m in messages if isinstance(m, dict) and m.get("role") == "assistant"] if isinstance(messages, list) else []
        if len(users) != 1 or others:
            return False
        text = (message_text(users[0].get("content")) or "").lstrip()
        return any(text.startswith(p) for p in settings.task_prefixes)


def since_last_reply(messages: Any) -> list[Any]:
    """``system``/``developer`` messages plus everything after the last assistant message.

    For ``conversation.history: "session"``: the session already holds the earlier turns, so only
    the new part is flattened into the turn (the default, ``"client"``, flattens all, as published).
    """
    items = messages if isinstance(messages, list) else []
    last = max((i for i, m in enumerate(items) if isinstance(m, dict) and m.get("role") == "assistant"), default=-1)
    head = [m for m in items[: last + 1] if isinstance(m, dict) and m.get("role") in ("system", "developer")]
    return head + items[last + 1 :]


__all__ = [
    "BODY_ID_FIELDS",
    "DEFAULT_ID_HEADERS",
    "DEFAULT_TASK_PREFIXES",
    "MODES",
    "ConversationLinks",
    "ConversationSettings",
    "Derived",
    "anchor",
    "anchor_id",
    "conversation_id",
    "conversation_settings",
    "normalize",
    "since_last_reply",
]
