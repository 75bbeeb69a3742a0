"""Which route answers an HTTP request: the pipeline order of http-agents-channels.md §1.2 as a table.

Pure. :func:`match` walks :data:`TABLE` in order; the first row whose path matches and whose enable
condition holds (read from :class:`Flags`, derived from the config of the moment, so a hot reload
flips a route on or off for the next request) wins. A row knows its method, its auth, the scope the
caller needs and its body limit; a wrong method is the row's own 405. Nothing matched: the Control
UI may claim a GET, else the final plain-text 404.

Probes (``/health`` … ``/startupz``) are answered before this table (liveness even before config
and proxy checks); the table never claims them.
"""

from __future__ import annotations

from typing import Any, Final, Literal, NamedTuple

from msgspec import Struct

from .openai import chat, embeddings, invoke, responses

Auth = Literal["gateway", "hook", "plugin"]
MIB: Final = 1024 * 1024


class Flags(Struct, frozen=True, kw_only=True):
    """The enable switches of the optional routes (from config)."""

    chat_completions: bool = False
    responses: bool = False
    hooks_path: str | None = None
    admin_rpc: bool = False
    a2a: bool = False

    @property
    def openai(self) -> bool:
        """``/v1/models*`` and ``/v1/embeddings`` exist while either OpenAI endpoint is on."""
        return self.chat_completions or self.responses


class Row(NamedTuple):
    name: str
    path: str
    prefix: bool
    methods: tuple[str, ...]
    auth: Auth
    scope: str | None
    body_limit: int
    #: The 405's ``Allow`` header value.
    allow: str


def _enabled(name: str, flags: Flags) -> bool:
    return {
        "models": flags.openai,
        "model": flags.openai,
        "embeddings": flags.openai,
        "responses": flags.responses,
        "chat.completions": flags.chat_completions,
        "admin.rpc": flags.admin_rpc,
        "a2a": flags.a2a,
        "a2a.card": flags.a2a,
    }.get(name, True)


#: The pipeline after the probes, in order (§1.2 stages 7-20; hooks are placed by :func:`match`).
TABLE: Final = (
    Row("worker", "/__openclaw__/worker", True, (), "plugin", None, 0, ""),
    Row("models", "/v1/models", False, ("GET", "HEAD"), "gateway", "operator.read", 0, "GET"),
    Row("model", "/v1/models/", True, ("GET", "HEAD"), "gateway", "operator.read", 0, "GET"),
    Row("embeddings", "/v1/embeddings", False, ("POST",), "gateway", "operator.write", embeddings.BODY_LIMIT, "POST"),
    Row("tools.invoke", "/tools/invoke", False, ("POST",), "gateway", "operator.write", invoke.BODY_LIMIT, "POST"),
    Row("sessions", "/sessions/", True, (), "gateway", None, 0, "POST"),  # kill/history: their own method and scope
    Row("responses", "/v1/responses", False, ("POST",), "gateway", "operator.write", responses.BODY_LIMIT, "POST"),
    Row("chat.completions", "/v1/chat/completions", False, ("POST",), "gateway", "operator.write", chat.BODY_LIMIT, "POST"),
    Row("admin.rpc", "/api/v1/admin/rpc", False, ("POST",), "gateway", None, MIB, "POST"),
    Row("a2a", "/a2a/v1", False, ("POST",), "plugin", None, MIB, "POST"),
    Row("a2a.card", "/.well-known/agent-card.json", False, ("GET", "HEAD"), "plugin", None, 0, "GET"),
    Row("a2a.card", "/.well-known/agent.json", False, ("GET", "HEAD"), "plugin", None, 0, "GET"),
)
HOOKS: Final = Row("hooks", "", True, ("POST",), "hook", None, 256 * 1024, "POST")


class Match(NamedTuple):
    row: Row
    #: What follows the row's path (``/v1/models/<id>`` → ``<id>``; hooks: the sub-path).
    rest: str
    method: str

    @property
    def method_allowed(self) -> bool:
        return not self.row.methods or self.method in self.row.methods


def _path_matches(path: str, base: str, prefix: bool) -> str | None:
    if not prefix:
        return "" if path == base else None
    if base.endswith("/"):
        return path[len(base):] if path.startswith(base) else None
    if path == base:
        return ""
    return path[len(base) + 1:] if path.startswith(base + "/") else None


def match(method: str, path: str, flags: Flags) -> Match | None:
    """The route for ``method path``, or ``None`` (Control UI, then 404)."""
    if flags.hooks_path is not None:
        rest = _path_matches(path, flags.hooks_path, True)
        if rest is not None:
            return Match(HOOKS, rest, method)
    for row in TABLE:
        rest = _path_matches(path, row.path, row.prefix)
        if rest is not None and _enabled(row.name, flags):
            return Match(row, rest, method)
    return None


def _hooks_path(config: dict[str, Any]) -> str | None:
    hooks = config.get("hooks")
    if not isinstance(hooks, dict) or hooks.get("enabled") is not True:
        return None
    raw = hooks.get("path")
    path = raw.strip() if isinstance(raw, str) and raw.strip() else "/hooks"
    path = "/" + path.strip("/")
    return None if path == "/" else path


def _endpoint(config: dict[str, Any], name: str) -> bool:
    gateway = config.get("gateway") if isinstance(config.get("gateway"), dict) else {}
    http = gateway.get("http") if isinstance(gateway.get("http"), dict) else {}
    endpoints = http.get("endpoints") if isinstance(http.get("endpoints"), dict) else {}
    entry = endpoints.get(name)
    return isinstance(entry, dict) and entry.get("enabled") is True


def _plugin_enabled(config: dict[str, Any], plugin: str) -> bool:
    plugins = config.get("plugins") if isinstance(config.get("plugins"), dict) else {}
    entries = plugins.get("entries") if isinstance(plugins.get("entries"), dict) else {}
    entry = entries.get(plugin)
    return isinstance(entry, dict) and entry.get("enabled") is True


def _a2a(config: dict[str, Any]) -> bool:
    channels = config.get("channels") if isinstance(config.get("channels"), dict) else {}
    section = channels.get("a2a")
    return isinstance(section, dict) and section.get("enabled") is not False


def flags_of(config: dict[str, Any] | None) -> Flags:
    """The route switches of ``config`` (computed once per config version by the host)."""
    cfg = config if isinstance(config, dict) else {}
    return Flags(
        chat_completions=_endpoint(cfg, "chatCompletions"),
        responses=_endpoint(cfg, "responses"),
        hooks_path=_hooks_path(cfg),
        admin_rpc=_plugin_enabled(cfg, "admin-http-rpc"),
        a2a=_a2a(cfg),
    )


__all__ = ["HOOKS", "TABLE", "Flags", "Match", "Row", "flags_of", "match"]
