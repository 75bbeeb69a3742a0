"""``/hooks/*``: inbound webhooks with their own token (http-agents-channels.md §1.8; docs gateway/config-hooks.md).

The pure parts: the config (:func:`hooks_config`, whose errors stop the gateway at startup), the
gate every request passes (:class:`HookGate`), the body, the ``wake`` and ``agent`` payloads with
their session, agent and delivery policies, mappings with ``{{…}}`` templates, the idempotency
replay cache, and the answers. The host dispatches the resulting actions.

Gate, in order (texts are ``text/plain``):

====================================  ========================================================
``?token=`` in the query              400 ``Hook token must be provided via Authorization: …``
method other than POST                405 ``Method Not Allowed``, ``Allow: POST``
wrong or missing hook token           401 ``Unauthorized``; after 20 failures in 60 s from one
                                      client: 429 ``Too Many Requests`` with ``Retry-After``
                                      for 60 s (loopback is **not** exempt); success resets
exactly the base path                 404 ``Not Found``
====================================  ========================================================

The token is ``Authorization: Bearer …`` (non-empty wins) or ``X-OpenClaw-Token``, compared in
constant time with ``hooks.token`` — never the gateway's own token.
"""

from __future__ import annotations

import hmac
import math
from typing import Any, Final

from msgspec import Struct

from ..agents import keys
from ..agents.roster import Roster
from ..auth import AuthRateLimiter, RateLimitPolicy
from .jsonbody import BadJson, parse_body
from .models import header
from .wire import Answer, json_answer, text_answer

DEFAULT_PATH: Final = "/hooks"
MAX_BODY: Final = 256 * 1024
BODY_TIMEOUT_S: Final = 30.0
ADMISSION_TIMEOUT_S: Final = 15.0
FANOUT_DEADLINE_S: Final = 8.0
#: The hook limiter's fixed parameters (not ``gateway.auth.rateLimit``).
HOOK_LIMIT: Final = RateLimitPolicy(max_attempts=20, window_ms=60_000, lockout_ms=60_000, exempt_loopback=False)
LIMIT_SCOPE: Final = "hook-auth"
TOKEN_IN_QUERY: Final = (
    "Hook token must be provided via Authorization: Bearer <token> or X-OpenClaw-Token header "
    "(query parameters are not allowed)."
)
CONFIG_CHANGED: Final = "hook configuration changed; retry request"


class HooksConfigError(ValueError):
    """A hooks config the gateway refuses to start with."""


class Mapping(Struct, frozen=True, kw_only=True):
    """One ``hooks.mappings[]`` entry, normalized (templates unrendered)."""

    id: str
    match_path: str | None = None
    match_source: str | None = None
    action: str = "agent"  # agent | wake
    wake_mode: str = "now"
    name: str | None = None
    agent_id: str | None = None
    session_key: str | None = None
    session_mode: str = "isolated"
    message_template: str = ""
    text_template: str = ""
    for_each: str | None = None
    deliver: bool = True
    channel: str = "last"
    to: str | None = None
    model: str | None = None
    thinking: str | None = None
    timeout_seconds: int | None = None
    allow_unsafe_external_content: bool = False
    transform: str | None = None


class HooksConfig(Struct, frozen=True, kw_only=True):
    base_path: str
    token: str
    mappings: tuple[Mapping, ...] = ()
    allowed_agent_ids: frozenset[str] | None = None  # None: any
    default_session_key: str | None = None
    allow_request_session_key: bool = False
    allowed_prefixes: tuple[str, ...] | None = None
    known_agents: frozenset[str] = frozenset()
    default_agent: str | None = None
    max_body_bytes: int = MAX_BODY


def opt_text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _match_path(raw: Any) -> str | None:
    text = opt_text(raw)
    return text.strip("/") or None if text else None


def hooks_config(config: dict[str, Any] | None, roster: Roster) -> HooksConfig | None:
    """``hooks.*``: ``None`` while disabled; :class:`HooksConfigError` for the published startup failures."""
    hooks = (config or {}).get("hooks")
    if not isinstance(hooks, dict) or hooks.get("enabled") is not True:
        return None
    token = opt_text(hooks.get("token"))
    if token is None:
        raise HooksConfigError("hooks.enabled requires hooks.token")
    path = opt_text(hooks.get("path")) or DEFAULT_PATH
    path = path if path.startswith("/") else "/" + path
    path = path.rstrip("/") or "/" if len(path) > 1 else path
    if path == "/":
        raise HooksConfigError("hooks.path may not be '/'")
    allowed_raw = hooks.get("allowedAgentIds")
    allowed: frozenset[str] | None = None
    if isinstance(allowed_raw, list) and "*" not in allowed_raw:
        allowed = frozenset(keys.normalize_agent_id(a) for a in allowed_raw if isinstance(a, str) and a.strip())
    prefixes_raw = hooks.get("allowedSessionKeyPrefixes")
    prefixes = tuple(dict.fromkeys(p.strip().lower() for p in prefixes_raw if isinstance(p, str) and p.strip())) if isinstance(prefixes_raw, list) else ()
    default_key = opt_text(hooks.get("defaultSessionKey"))
    mappings = _mappings(hooks)
    cfg = HooksConfig(
        base_path=path, token=token, mappings=mappings, allowed_agent_ids=allowed, default_session_key=default_key,
        allow_request_session_key=hooks.get("allowRequestSessionKey") is True, allowed_prefixes=prefixes or None,
        known_agents=frozenset(roster.ids), default_agent=_default_agent(roster),
    )
    if default_key and cfg.allowed_prefixes and not prefix_allowed(default_key, cfg.allowed_prefixes):
        raise HooksConfigError("hooks.defaultSessionKey must match hooks.allowedSessionKeyPrefixes")
    if not default_key and cfg.allowed_prefixes and not prefix_allowed("hook:example", cfg.allowed_prefixes):
        raise HooksConfigError("hooks.allowedSessionKeyPrefixes must include 'hook:' when hooks.defaultSessionKey is unset")
    if any(m.session_key and "{{" in m.session_key for m in mappings) and not cfg.allowed_prefixes:
        raise HooksConfigError(
            "hooks.allowedSessionKeyPrefixes is required when a hook mapping sessionKey uses templates, "
            "even if hooks.allowRequestSessionKey=true"
        )
    return cfg


def _default_agent(roster: Roster) -> str | None:
    marked = [a.id for a in roster.agents if a.default]
    return marked[0] if marked else roster.agents[0].id if len(roster.agents) == 1 else None


def _mappings(hooks: dict[str, Any]) -> tuple[Mapping, ...]:
    raw = [m for m in hooks.get("mappings") or () if isinstance(m, dict)]  # the ``gmail`` preset is not built
    out = []
    for i, m in enumerate(raw):
        match = m.get("match") if isinstance(m.get("match"), dict) else {}
        timeout = m.get("timeoutSeconds")
        transform = m.get("transform") if isinstance(m.get("transform"), dict) else {}
        out.append(Mapping(
            id=opt_text(m.get("id")) or f"mapping-{i}", match_path=_match_path(match.get("path")), match_source=opt_text(match.get("source")),
            action="wake" if m.get("action") == "wake" else "agent",
            wake_mode="next-heartbeat" if m.get("wakeMode") == "next-heartbeat" else "now",
            name=opt_text(m.get("name")), agent_id=opt_text(m.get("agentId")), session_key=opt_text(m.get("sessionKey")),
            session_mode="persistent" if m.get("sessionMode") == "persistent" else "isolated",
            message_template=m.get("messageTemplate") if isinstance(m.get("messageTemplate"), str) else "",
            text_template=m.get("textTemplate") if isinstance(m.get("textTemplate"), str) else "",
            for_each=opt_text(m.get("forEach")), deliver=m.get("deliver") is not False, channel=opt_text(m.get("channel")) or "last",
            to=opt_text(m.get("to")), model=opt_text(m.get("model")), thinking=opt_text(m.get("thinking")),
            timeout_seconds=int(timeout) if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0 else None,
            allow_unsafe_external_content=m.get("allowUnsafeExternalContent") is True, transform=opt_text(transform.get("module")),
        ))
    return tuple(out)


def prefix_allowed(session_key: str, prefixes: tuple[str, ...]) -> bool:
    key = session_key.strip().lower()
    return bool(key) and any(key.startswith(p) for p in prefixes)


# --------------------------------------------------------------------------- the gate


def hook_token(headers: dict[str, str]) -> str | None:
    """A non-empty ``Authorization: Bearer`` token, else ``X-OpenClaw-Token``."""
    auth = header(headers, "authorization") or ""
    if auth.lower().startswith("bearer "):
        token = auth[7:].strip()
        if token:
            return token
    return header(headers, "x-openclaw-token")


class HookGate:
    """The hook surface's failed-token limiter (its own: 20 failures / 60 s, 60 s lockout, loopback included)."""

    def __init__(self) -> None:
        self.limiter = AuthRateLimiter(HOOK_LIMIT)

    def admit(
        self, cfg: HooksConfig, *, path: str, query: dict[str, Any], method: str, headers: dict[str, str],
        client_ip: str, now_ms: int,
    ) -> str | Answer | None:
        """The sub-path (``wake``, ``agent``, a mapping's path) to handle, an answer, or ``None`` (not a hook path)."""
        if path != cfg.base_path and not path.startswith(cfg.base_path + "/"):
            return None
        if "token" in query:
            return text_answer(400, TOKEN_IN_QUERY)
        if method.upper() != "POST":
            return text_answer(405, "Method Not Allowed", ("Allow", "POST"))
        given = hook_token(headers)
        if given is None or not hmac.compare_digest(given.encode(), cfg.token.encode()):
            wait = self.limiter.retry_after_ms(LIMIT_SCOPE, client_ip, now_ms)
            if wait is not None:
                return text_answer(429, "Too Many Requests", ("Retry-After", str(max(1, math.ceil(wait / 1000)))))
            self.limiter.record_failure(LIMIT_SCOPE, client_ip, now_ms)
            return text_answer(401, "Unauthorized")
        self.limiter.record_success(LIMIT_SCOPE, client_ip)
        sub = path[len(cfg.base_path):].lstrip("/")
        return sub or text_answer(404, "Not Found")


def failure(status: int, error: str, **extra: Any) -> Answer:
    """``{"ok":false,"error":…}`` (``runId``/``runIds`` may follow)."""
    return json_answer(status, {"ok": False, "error": error, **extra})


def read_hook_body(body: bytes) -> dict[str, Any] | Answer:
    """The payload (``{}`` when empty; a non-object counts as ``{}``), or 400 ``{"ok":false,"error":<parse error>}``."""
    try:
        value = parse_body(body)
    except BadJson as bad:
        return failure(400, bad.message)
    return value if isinstance(value, dict) else {}


def too_large() -> Answer:
    return failure(413, "payload too large")


def body_timeout() -> Answer:
    return failure(408, "request body timeout")


__all__ = [
    "CONFIG_CHANGED",
    "HOOK_LIMIT",
    "MAX_BODY",
    "TOKEN_IN_QUERY",
    "HookGate",
    "HooksConfig",
    "HooksConfigError",
    "Mapping",
    "body_timeout",
    "failure",
    "hook_token",
    "hooks_config",
    "opt_text",
    "prefix_allowed",
    "read_hook_body",
    "too_large",
]
