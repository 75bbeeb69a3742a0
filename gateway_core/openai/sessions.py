"""Which session an OpenAI-compatible request runs in (http-agents-channels.md §2.3; observed §3.4, §4.4).

=========================================  =================================================
request                                    session key
=========================================  =================================================
``x-openclaw-session-key: K``              ``K`` under the agent (``agent:main:k``); reserved
                                           namespaces (``subagent:``, ``cron:``, ``acp:``, and
                                           agent-scoped ones) are 400
``user: U`` (non-blank)                    ``agent:<id>:<prefix>-user:<u>`` (lower-cased)
neither                                    ``agent:<id>:<prefix>:<uuid>``, new every request
=========================================  =================================================

``<prefix>`` is ``openai`` (chat completions) or ``openresponses`` (responses). Responses may
instead continue the session of ``previous_response_id`` through :class:`LinkMap`: a bounded map
(30 minutes, 500 entries, oldest first out) from response id to session key, consulted only
within the same scope (auth subject, agent, ``x-openclaw-session-key`` value). An unknown id is
not an error (d04). The map is pure; :meth:`LinkMap.records` / :meth:`LinkMap.load` give the host
a JSON form to persist when ``gateway.http.endpoints.responses.previousResponse.persist`` is on.
"""

from __future__ import annotations

import functools
import hashlib
from collections import OrderedDict
from typing import Any, Final

from msgspec import Struct

from ..agents import keys
from .models import header
from .wire import Refused, forbidden, invalid_request

SESSION_KEY_HEADER: Final = "x-openclaw-session-key"
RESERVED_MESSAGE: Final = "`x-openclaw-session-key` cannot use reserved internal session namespaces."
CHAT_PREFIX: Final = "openai"
RESPONSES_PREFIX: Final = "openresponses"
#: Published bounds of the previous_response_id map (dist: 30 min TTL, 500 entries).
RESPONSE_TTL_MS: Final = 30 * 60 * 1000
RESPONSE_MAX_ENTRIES: Final = 500


def explicit_key(headers: dict[str, str], agent_id: str) -> str | None:
    """The ``x-openclaw-session-key`` override, canonical under ``agent_id``; 400 for reserved ones."""
    raw = header(headers, SESSION_KEY_HEADER)
    if raw is None:
        return None
    if keys.is_reserved(raw):
        raise Refused(invalid_request(RESERVED_MESSAGE))
    return keys.canonical(raw, agent_id)


def session_key(agent_id: str, prefix: str, headers: dict[str, str], user: str | None, request_id: str) -> str:
    """The published rule: explicit header, else ``user``, else a fresh key from ``request_id``."""
    explicit = explicit_key(headers, agent_id)
    if explicit is not None:
        return explicit
    name = (user or "").strip()
    if name:
        return keys.http_key(agent_id, prefix, user=name)
    return keys.http_key(agent_id, prefix, request_id=request_id)


def minted(key: str, request_id: str) -> bool:
    """Whether ``key`` was made from this request's fresh uuid (stateless, or a conversation's first
    turn): no session can hold it yet, so the store need not look it up."""
    return bool(request_id) and key.endswith(":" + request_id.lower())


def authorize_session(key: str, sender_is_owner: bool) -> None:
    """Incognito keys need owner/admin authority (403 ``missing scope: operator.admin``)."""
    if keys.is_incognito(key) and not sender_is_owner:
        raise Refused(forbidden("missing scope: operator.admin"))


@functools.lru_cache(maxsize=64)
def _bearer_subject(bearer: str) -> str:
    return "bearer:" + hashlib.sha256(bearer.encode()).hexdigest()


def auth_subject(mode: str, bearer: str | None = None, proxy_user: str | None = None) -> str:
    """Who asked, for scoping links: ``trusted-proxy:<user>``, ``bearer:<sha256>``, ``gateway-auth:<mode>``."""
    if mode == "trusted-proxy" and proxy_user is not None:
        return f"trusted-proxy:{proxy_user}"
    if bearer:
        return _bearer_subject(bearer)
    return f"gateway-auth:{mode}"


class Scope(Struct, frozen=True, kw_only=True):
    """What must match for a link to be followed."""

    subject: str
    agent_id: str
    requested_key: str | None = None

    @staticmethod
    def of(subject: str, agent_id: str, headers: dict[str, str]) -> Scope:
        return Scope(subject=subject.strip(), agent_id=agent_id, requested_key=header(headers, SESSION_KEY_HEADER))


class Link(Struct, frozen=True, kw_only=True):
    """One remembered link (its JSON form is what the host persists)."""

    id: str
    session_key: str
    scope: Scope
    ts_ms: int


class LinkMap:
    """id → session key, bounded by age and count, oldest evicted first; lookups are scope-checked.

    Storing an id again moves it to the newest end. Expired entries are dropped from the oldest
    end on every store, and on lookup of that entry.
    """

    def __init__(self, ttl_ms: int = RESPONSE_TTL_MS, max_entries: int = RESPONSE_MAX_ENTRIES) -> None:
        self.ttl_ms = ttl_ms
        self.max_entries = max_entries
        self._links: OrderedDict[str, Link] = OrderedDict()

    def store(self, link_id: str, session_key: str, scope: Scope, now_ms: int) -> Link:
        """Remember ``link_id``; returns the :class:`Link` (for a host that persists links one by one)."""
        link = Link(id=link_id, session_key=session_key, scope=scope, ts_ms=now_ms)
        self._links.pop(link_id, None)
        self._links[link_id] = link
        self._prune(now_ms)
        return link

    def lookup(self, link_id: str | None, scope: Scope, now_ms: int) -> str | None:
        """The session key of ``link_id`` if it is live and was stored in ``scope``."""
        if not link_id:
            return None
        link = self._links.get(link_id)
        if link is None:
            return None
        if now_ms - link.ts_ms > self.ttl_ms:
            del self._links[link_id]
            return None
        return link.session_key if link.scope == scope else None

    def _prune(self, now_ms: int) -> None:
        while self._links:
            oldest = next(iter(self._links.values()))
            if now_ms - oldest.ts_ms <= self.ttl_ms:
                break
            self._links.popitem(last=False)
        while len(self._links) > self.max_entries:
            self._links.popitem(last=False)

    def __len__(self) -> int:
        return len(self._links)

    def ids(self) -> list[str]:
        """Live ids, oldest first."""
        return list(self._links)

    # ---------------------------------------------------------------- persistence (the host does the I/O)

    def records(self) -> list[dict[str, Any]]:
        """Every link as a JSON-ready dict, oldest first."""
        return [link_record(link) for link in self._links.values()]

    def load(self, records: list[Any], now_ms: int) -> int:
        """Add persisted links (any order; malformed ones skipped); the bounds apply. Returns how many are live."""
        links = sorted((lk for lk in (link_from_record(r) for r in records) if lk is not None), key=lambda lk: lk.ts_ms)
        for link in links:
            if now_ms - link.ts_ms <= self.ttl_ms:
                self._links.pop(link.id, None)
                self._links[link.id] = link
        self._prune(now_ms)
        return len(self._links)


def link_record(link: Link) -> dict[str, Any]:
    scope: dict[str, Any] = {"subject": link.scope.subject, "agentId": link.scope.agent_id}
    if link.scope.requested_key is not None:
        scope["sessionKeyHeader"] = link.scope.requested_key
    return {"id": link.id, "sessionKey": link.session_key, "scope": scope, "ts": link.ts_ms}


def link_from_record(record: Any) -> Link | None:
    if not isinstance(record, dict):
        return None
    scope = record.get("scope")
    fields = (record.get("id"), record.get("sessionKey"), record.get("ts"))
    if not isinstance(scope, dict) or not isinstance(fields[0], str) or not isinstance(fields[1], str):
        return None
    if not isinstance(fields[2], int) or isinstance(fields[2], bool):
        return None
    subject, agent, requested = scope.get("subject"), scope.get("agentId"), scope.get("sessionKeyHeader")
    if not isinstance(subject, str) or not isinstance(agent, str) or not isinstance(requested, str | None):
        return None
    return Link(id=fields[0], session_key=fields[1], scope=Scope(subject=subject, agent_id=agent, requested_key=requested),
                ts_ms=fields[2])


class PreviousResponseSettings(Struct, frozen=True, kw_only=True):
    """``gateway.http.endpoints.responses.previousResponse`` (our extension; the defaults are published)."""

    persist: bool = False
    ttl_ms: int = RESPONSE_TTL_MS
    max_entries: int = RESPONSE_MAX_ENTRIES


def previous_response_settings(config: dict[str, Any] | None) -> PreviousResponseSettings:
    """Read the settings; ``persist: true`` asks the host to keep links across restarts."""
    node = (((config or {}).get("gateway") or {}).get("http") or {}).get("endpoints") or {}
    raw = ((node.get("responses") or {}) if isinstance(node, dict) else {}).get("previousResponse")
    if not isinstance(raw, dict):
        return PreviousResponseSettings()
    ttl = raw.get("ttlSeconds")
    top = raw.get("maxEntries")
    return PreviousResponseSettings(
        persist=raw.get("persist") is True,
        ttl_ms=int(ttl * 1000) if isinstance(ttl, int | float) and not isinstance(ttl, bool) and ttl > 0 else RESPONSE_TTL_MS,
        max_entries=top if isinstance(top, int) and not isinstance(top, bool) and top > 0 else RESPONSE_MAX_ENTRIES,
    )


__all__ = [
    "CHAT_PREFIX",
    "RESERVED_MESSAGE",
    "RESPONSES_PREFIX",
    "RESPONSE_MAX_ENTRIES",
    "RESPONSE_TTL_MS",
    "SESSION_KEY_HEADER",
    "Link",
    "LinkMap",
    "PreviousResponseSettings",
    "Scope",
    "auth_subject",
    "authorize_session",
    "explicit_key",
    "link_from_record",
    "link_record",
    "previous_response_settings",
    "session_key",
]
