"""Channel account status: the snapshot each account publishes, and its health (§5.6).

An account's runtime patches its status (``running``, ``connected``, ``lastInboundAt``, …) as things
happen; :func:`health_state` evaluates a snapshot with the rules of §5.6, checked in the order of
:data:`HEALTH_RULES`, plus one rule the published table lacks: a transport that says it is
connected but has shown no activity for longer than its own liveness window (Telegram's long poll
answers at least every 30 s, IRC servers ping every few minutes) is ``stale-socket`` — unhealthy —
long before the generic 30 minutes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from msgspec import Struct

CONNECT_GRACE_MS: Final = 120_000
BUSY_WINDOW_MS: Final = 25 * 60_000
STALE_SOCKET_MS: Final = 30 * 60_000
#: Health states that count as healthy (readiness also ignores ``stale-socket``, as published).
HEALTHY: Final = frozenset({"healthy", "unmanaged", "startup-connect-grace", "busy", "reconnect-grace"})
ISSUE_KINDS: Final = ("intent", "permissions", "config", "auth", "runtime")
MAX_ISSUES: Final = 50


class ChannelMeta(Struct, frozen=True, kw_only=True):
    """How a channel is shown (``channelLabels`` etc.)."""

    id: str
    label: str
    detail_label: str
    system_image: str = ""
    #: How long a connected transport may stay silent before it is stale (ms).
    liveness_ms: int = STALE_SOCKET_MS
    #: The pairing id label shown by ``pairing list`` (``telegramUserId``, ``ircUser``).
    id_label: str = "id"
    supports_pairing: bool = True


def _num(snap: dict[str, Any], key: str) -> int | None:
    value = snap.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _unmanaged(s: dict[str, Any], now: int, live: int) -> bool:
    skipped = s.get("lifecycle") == "skipped"  # OPENCLAW_SKIP_CHANNELS: not ours to run
    return skipped or s.get("enabled") is False or s.get("configured") is False or s.get("linked") is False


def _terminal(s: dict[str, Any], now: int, live: int) -> bool:
    return not s.get("running") and bool(s.get("terminal"))


def _ingress(s: dict[str, Any], now: int, live: int) -> bool:
    return s.get("ingressAvailable") is False


def _blocked(s: dict[str, Any], now: int, live: int) -> bool:
    return s.get("lifecycle") == "blocked"


def _grace(s: dict[str, Any], now: int, live: int) -> bool:
    started = _num(s, "lastStartAt")
    return s.get("lifecycle") in ("starting", "recovering") and started is not None and now - started <= CONNECT_GRACE_MS


def _not_running(s: dict[str, Any], now: int, live: int) -> bool:
    return not s.get("running")


def _busy(s: dict[str, Any], now: int, live: int) -> bool:
    return bool(s.get("busy"))


def _busy_recent(s: dict[str, Any], now: int) -> bool:
    last = _num(s, "lastRunActivityAt")
    return last is not None and now - last <= BUSY_WINDOW_MS


def _disconnected(s: dict[str, Any], now: int, live: int) -> bool:
    return s.get("connected") is False


def _reconnect_recent(s: dict[str, Any], now: int) -> bool:
    since = _num(s, "lastDisconnectAt") or _num(s, "lastStartAt")
    return since is not None and now - since <= CONNECT_GRACE_MS


def _stale(s: dict[str, Any], now: int, live: int) -> bool:
    last = _num(s, "lastTransportActivityAt") or _num(s, "lastConnectedAt")
    return last is not None and now - last > min(live, STALE_SOCKET_MS)


Rule = Callable[[dict[str, Any], int, int], bool]
#: (test, state) in the order of §5.6; the first that matches decides. ``busy`` and
#: ``disconnected`` split in two by recency (see :func:`health_state`).
HEALTH_RULES: Final[tuple[tuple[Rule, str], ...]] = (
    (_unmanaged, "unmanaged"),
    (_terminal, "terminal-disconnect"),
    (_ingress, "ingress-unavailable"),
    (_blocked, "blocked"),
    (_grace, "startup-connect-grace"),
    (_not_running, "not-running"),
    (_busy, "busy"),
    (_disconnected, "disconnected"),
    (_stale, "stale-socket"),
)


def health_state(snap: dict[str, Any], now_ms: int, liveness_ms: int = STALE_SOCKET_MS) -> str:
    """The account's ``healthState`` (§5.6 order, with the per-transport liveness window)."""
    for test, state in HEALTH_RULES:
        if test(snap, now_ms, liveness_ms):
            if state == "busy":
                return "busy" if _busy_recent(snap, now_ms) else "stuck"
            if state == "disconnected":
                return "reconnect-grace" if _reconnect_recent(snap, now_ms) else "disconnected"
            return state
    return "healthy"


def is_healthy(state: str) -> bool:
    return state in HEALTHY


def issue(channel: str, account_id: str, kind: str, message: str, fix: str | None = None) -> dict[str, Any]:
    assert kind in ISSUE_KINDS
    out: dict[str, Any] = {"channel": channel, "accountId": account_id, "kind": kind, "message": message}
    if fix:
        out["fix"] = fix
    return out


class ChannelView(Struct, kw_only=True):
    """One channel as ``channels.status`` reports it."""

    meta: ChannelMeta
    default_account: str
    accounts: list[dict[str, Any]]
    summary: dict[str, Any] | None = None
    issues: list[dict[str, Any]] = []


def status_payload(now_ms: int, views: list[ChannelView], warnings: list[str] | None = None) -> dict[str, Any]:
    """The ``channels.status`` result (§5.6 shape)."""
    payload: dict[str, Any] = {
        "ts": now_ms,
        "channelOrder": [v.meta.id for v in views],
        "channelLabels": {v.meta.id: v.meta.label for v in views},
        "channelDetailLabels": {v.meta.id: v.meta.detail_label for v in views},
        "channelSystemImages": {v.meta.id: v.meta.system_image for v in views if v.meta.system_image},
        "channelMeta": [
            {"id": v.meta.id, "label": v.meta.label, "detailLabel": v.meta.detail_label,
             **({"systemImage": v.meta.system_image} if v.meta.system_image else {})}
            for v in views
        ],
        "channels": {},
        "channelAccounts": {},
        "channelDefaultAccountId": {},
        "statusIssues": [],
    }
    for v in views:
        default = next((a for a in v.accounts if a.get("accountId") == v.default_account), v.accounts[0] if v.accounts else {})
        summary = v.summary if v.summary is not None else {"configured": bool(default.get("configured"))}
        if v.summary is None and default.get("lastError"):
            summary["lastError"] = default["lastError"]
        payload["channels"][v.meta.id] = summary
        payload["channelAccounts"][v.meta.id] = v.accounts
        payload["channelDefaultAccountId"][v.meta.id] = v.default_account
        payload["statusIssues"].extend(v.issues)
    payload["statusIssues"] = payload["statusIssues"][:MAX_ISSUES]
    if warnings:
        payload["partial"] = True
        payload["warnings"] = sorted(warnings)[:MAX_ISSUES]
    return payload


__all__ = [
    "BUSY_WINDOW_MS",
    "CONNECT_GRACE_MS",
    "HEALTHY",
    "HEALTH_RULES",
    "STALE_SOCKET_MS",
    "ChannelMeta",
    "ChannelView",
    "health_state",
    "is_healthy",
    "issue",
    "status_payload",
]
