"""Config hot reload as a pure function: ``plan_reload(old, new, mode) -> ReloadPlan``.

The rules table follows runtime-cli.md §7.4 (core rules first, the defaults after them); the seed
runbook's four modes win over the published gateway's two (design.md §1):

* ``off``: nothing is applied (changes are only reported);
* ``hot``: hot and no-op paths apply in place; paths that need a restart are *not* applied and
  are reported so the operator can restart;
* ``restart``: any change that is not a no-op restarts the gateway (hot paths ride along);
* ``hybrid`` (default): hot where safe, restart where needed.

Matching (§7.4): a prefix matches a path equal to it or below it; ``*`` matches one segment; the
longest prefix wins (ties: fewer ``*``); **a path no rule matches needs a restart**, so a key added
later that nobody classified can never be silently "hot-applied" and ignored.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

from msgspec import Struct

ReloadMode = Literal["off", "hot", "restart", "hybrid"]
RELOAD_MODES: Final = ("off", "hot", "restart", "hybrid")


class Effect(enum.Enum):
    """What a changed path needs."""

    NONE = "none"  # snapshot swap only: readers see the new value (logging.*, ...)
    HOT = "hot"  # applied to the running gateway
    RESTART = "restart"  # needs the listener/process restarted


_N, _H, _R = Effect.NONE, Effect.HOT, Effect.RESTART

#: (prefix, effect). Order does not matter: matching sorts by specificity (see module doc).
RELOAD_RULES: Final[tuple[tuple[str, Effect], ...]] = (
    # core rules
    ("gateway.remote", _N),
    ("gateway.reload", _N),
    ("gateway.auth.token", _H),  # hot only while the effective auth mode stays token/password (see plan)
    ("gateway.auth.password", _H),
    ("mcp.apps", _R),
    ("secrets.egressProxy", _R),
    ("gateway.portals", _R),
    ("gateway.http.endpoints", _H),
    ("gateway.http.securityHeaders.strictTransportSecurity", _H),
    ("gateway.tools", _H),
    ("gateway.cliAgents", _H),
    *(
        (f"gateway.controlUi.{k}", _H)
        for k in (
            "enabled",
            "environment",
            "communityInvite",
            "github",
            "sessionObserver",
            "embedSandbox",
            "allowExternalEmbedUrls",
            "automaticallyFetchFavicons",
            "experimental.customPlugins",
            "allowedOrigins",
            "dangerouslyAllowHostHeaderOriginFallback",
        )
    ),
    *((f"gateway.nodes.{k}", _H) for k in ("browser", "pairing", "commands", "pluginTools.enabled", "allowSkills")),
    ("gateway.push.apns.relay", _H),
    ("gateway.terminal", _H),
    *((f"gateway.auth.{k}", _H) for k in ("rateLimit", "allowTailscale", "identityScopes", "trustedProxy")),
    ("gateway.roles", _H),
    ("gateway.trustedProxies", _H),
    ("gateway.allowRealIpFallback", _H),
    ("diagnostics.enabled", _H),
    ("discovery.mdns.mode", _H),
    ("mcp.apps.sandboxOrigin", _H),
    ("agents.defaults", _H),
    ("desktop.host", _H),
    ("cloudWorkers", _H),
    ("hooks.gmail", _H),
    ("hooks.internal", _H),
    ("agents.defaults.workspace", _H),
    ("hooks", _H),
    *(
        (p, _H)
        for p in (
            "agents.defaults.heartbeat",
            "agents.defaults.models",
            "agents.defaults.modelPolicy",
            "agents.defaults.model",
            "models",
            "agent.heartbeat",
            "agents.entries",
            "agents.entries.*.decisionModel",
            "agents.defaults.sessionStore",
            "agents.ownership",
            "skills.workshop.autonomous.mode",
            "agents.defaults.decisionModel",
            "plugins.load",
            "plugins.installs",
            "transcripts",
            "cloudWorkers.profiles",
            "talk.provider",
            "talk.realtime.provider",
            "cron",
            "mcp",
            "gateway.publicOrigin",
            "session.scope",
            "session.store",
        )
    ),
    ("plugins.installs.*.installedAt", _N),
    ("plugins.installs.*.resolvedAt", _N),
    # default rules
    *(
        (p, _N)
        for p in (
            "meta",
            "identity",
            "wizard",
            "logging",
            "agents",
            "bindings",
            "audio",
            "agent",
            "routing",
            "messages",
            "session",
            "talk",
            "skills",
            "secrets",
            "tui",
            "ui",
        )
    ),
    *(
        (p, _H)
        for p in (
            "tools",
            "approvals.exec",
            "approvals.plugin",
            "auth.order",
            "auth.profiles",
            "broadcast",
            "memory.citations",
            "worktreeRoot",
            "worktreeAcceleration",
            "security.audit.suppressions",
            "security.installPolicy",
            "diagnostics.cacheTrace.enabled",
            "acp",
            "attachments.ttlHours",
            "update.checkOnStart",
            "update.channel",
            "update.auto.enabled",
            "telemetry.enabled",
            "telemetry.consentedAt",
            "plugins",
            "channels",
            # commands.ownerAllowFrom (written by the first pairing approval) is read live by the channels.
            "commands",
        )
    ),
    ("gateway", _R),
    ("discovery", _R),
)


def _specificity(rule: tuple[str, Effect]) -> tuple[int, int]:
    segments = rule[0].split(".")
    return (-len(segments), segments.count("*"))


_SORTED: Final = tuple(sorted(RELOAD_RULES, key=_specificity))


def _matches(prefix: str, path: str) -> bool:
    want = prefix.split(".")
    have = path.split(".")
    if len(have) < len(want):
        return False
    return all(w == "*" or w == h for w, h in zip(want, have, strict=False))


def classify(path: str) -> tuple[Effect, str | None]:
    """The effect of a change at ``path`` and the rule prefix that decided it (``None``: no rule)."""
    for prefix, effect in _SORTED:
        if _matches(prefix, path):
            return effect, prefix
    return Effect.RESTART, None


#: Rule prefixes, for refining an added or removed object into the paths a rule names.
_RULE_PREFIXES: Final = tuple(prefix for prefix, _ in RELOAD_RULES)

_ABSENT: Final = object()


def _refined(prefix: str) -> bool:
    """Whether some rule names a path below ``prefix`` (so an added/removed object there recurses)."""
    return not prefix or any(rule.startswith(prefix + ".") for rule in _RULE_PREFIXES)


def diff_paths(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Changed paths between two authored configs (§7.3): objects recurse, arrays and scalars are leaves.

    An object added or removed as a whole recurses (as if the other side were ``{}``) where a
    reload rule names something below it, as the published gateway does: adding
    ``gateway.controlUi: {allowedOrigins: [...]}`` is the hot ``gateway.controlUi.allowedOrigins``,
    not a change of ``gateway.controlUi`` (which would fall under ``gateway``: a restart).
    """
    if old is _ABSENT and new is _ABSENT:
        return []
    both = isinstance(old, Mapping) and isinstance(new, Mapping)
    either = isinstance(old, Mapping) or isinstance(new, Mapping)
    if both or (either and _refined(prefix)):
        before = old if isinstance(old, Mapping) else {}
        after = new if isinstance(new, Mapping) else {}
        out: list[str] = []
        for key in sorted(set(before) | set(after)):
            path = f"{prefix}.{key}" if prefix else str(key)
            out.extend(diff_paths(before.get(key, _ABSENT), after.get(key, _ABSENT), path))
        return out
    if old == new and type(old) is type(new):
        return []
    return [prefix or "<root>"]


class Change(Struct, frozen=True):
    """One changed path, its effect and why."""

    path: str
    effect: Effect
    rule: str | None
    reason: str


class ReloadPlan(Struct, frozen=True, kw_only=True):
    """What to do with a config change under one reload mode."""

    mode: str
    changes: tuple[Change, ...] = ()
    #: Paths to apply in place now (hot and no-op ones).
    apply: tuple[str, ...] = ()
    #: Restart the gateway (in-process) to apply the rest.
    restart: bool = False
    #: Paths that need a restart but will not get one under this mode.
    deferred: tuple[str, ...] = ()

    @property
    def restart_reasons(self) -> tuple[str, ...]:
        return tuple(c.path for c in self.changes if c.effect is Effect.RESTART)

    @property
    def hot_paths(self) -> tuple[str, ...]:
        return tuple(c.path for c in self.changes if c.effect is Effect.HOT)

    @property
    def noop_paths(self) -> tuple[str, ...]:
        return tuple(c.path for c in self.changes if c.effect is Effect.NONE)


def _get(cfg: Any, dotted: str) -> Any:
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _auth_mode(cfg: Any) -> str | None:
    mode = _get(cfg, "gateway.auth.mode")
    if isinstance(mode, str):
        return mode
    password = _get(cfg, "gateway.auth.password")
    if isinstance(password, Mapping):
        return None  # a SecretRef with an inferred mode is not eligible for a hot rotation
    return "password" if password else "token"


def _explain(path: str, effect: Effect, rule: str | None) -> str:
    if rule is None:
        return "no reload rule covers this key, so it is treated as needing a restart"
    word = {
        Effect.NONE: "read live (no action needed)",
        Effect.HOT: "applied in place",
        Effect.RESTART: "needs a gateway restart",
    }
    return f"{word[effect]} (rule {rule!r})"


def plan_reload(old: Any, new: Any, mode: str = "hybrid", *, paths: Iterable[str] | None = None) -> ReloadPlan:
    """Decide what a change from ``old`` to ``new`` does under ``mode`` (pure; no side effects)."""
    if mode not in RELOAD_MODES:
        raise ValueError(f"unknown reload mode {mode!r} (use one of {', '.join(RELOAD_MODES)})")
    changed = list(paths) if paths is not None else diff_paths(old or {}, new or {})
    changes: list[Change] = []
    for path in changed:
        effect, rule = classify(path)
        reason = _explain(path, effect, rule)
        if rule in ("gateway.auth.token", "gateway.auth.password"):
            before, after = _auth_mode(old), _auth_mode(new)
            if not (before == after and before in ("token", "password")):
                effect = Effect.RESTART
                reason = (
                    f"the auth credential changed together with the auth mode ({before} → {after}); needs a restart"
                )
            else:
                reason = f"credential rotation under auth mode {after}: applied at once, old-secret clients are closed"
        changes.append(Change(path, effect, rule, reason))
    restart_needed = any(c.effect is Effect.RESTART for c in changes)
    in_place = tuple(c.path for c in changes if c.effect is not Effect.RESTART)
    needs_restart = tuple(c.path for c in changes if c.effect is Effect.RESTART)
    if mode == "off":
        return ReloadPlan(mode=mode, changes=tuple(changes), deferred=needs_restart)
    if mode == "hot":
        return ReloadPlan(mode=mode, changes=tuple(changes), apply=in_place, deferred=needs_restart)
    if mode == "restart":
        any_effect = any(c.effect is not Effect.NONE for c in changes)
        return ReloadPlan(mode=mode, changes=tuple(changes), apply=in_place, restart=any_effect)
    return ReloadPlan(mode=mode, changes=tuple(changes), apply=in_place, restart=restart_needed)


__all__ = [
    "RELOAD_MODES",
    "RELOAD_RULES",
    "Change",
    "Effect",
    "ReloadMode",
    "ReloadPlan",
    "classify",
    "diff_paths",
    "plan_reload",
]
