"""``ChannelsState``: what the application knows about its channels (``app.parts["channels"]``).

The host registers the channel kinds it can run (their :class:`~.rules.ChannelRules`), patches
each account's runtime status as things happen (``running``, ``connected``, ``lastInboundAt``, the
config inspection without secrets, …) and reads :meth:`ChannelsState.snapshot` back; the pipeline
counts active runs per account. Pure: time comes in as ``now_ms``.
"""

from __future__ import annotations

from typing import Any

from . import accounts as A
from .rules import BUILTIN, ChannelRules
from .status import ChannelMeta, health_state, is_healthy

PART = "channels"


class ChannelsState:
    def __init__(self) -> None:
        self.rules: dict[str, ChannelRules] = dict(BUILTIN)
        #: (channel, account) → runtime status fields (camel case, as the snapshot shows them).
        self.runtime: dict[tuple[str, str], dict[str, Any]] = {}
        #: (channel, account) → ids of channel runs in progress.
        self.active: dict[tuple[str, str], set[str]] = {}

    # ------------------------------------------------------------------ registry

    def register(self, rules: ChannelRules) -> None:
        self.rules[rules.meta.id] = rules

    def known(self, channel: str) -> bool:
        return channel in self.rules

    def meta(self, channel: str) -> ChannelMeta:
        rules = self.rules.get(channel)
        return rules.meta if rules is not None else ChannelMeta(id=channel, label=channel, detail_label=channel)

    # ------------------------------------------------------------------ runtime status

    def patch(self, channel: str, account_id: str, patch: dict[str, Any]) -> dict[str, Any]:
        row = self.runtime.setdefault((channel, account_id), {})
        row.update(patch)
        return row

    def forget(self, channel: str, account_id: str) -> None:
        self.runtime.pop((channel, account_id), None)

    def run_started(self, channel: str, account_id: str, run_id: str, now_ms: int) -> None:
        self.active.setdefault((channel, account_id), set()).add(run_id)
        self.patch(channel, account_id, {"busy": True, "activeRuns": len(self.active[(channel, account_id)]),
                                         "lastRunActivityAt": now_ms, "activeRunStartedAt": now_ms})

    def run_ended(self, channel: str, account_id: str, run_id: str, now_ms: int) -> None:
        runs = self.active.setdefault((channel, account_id), set())
        runs.discard(run_id)
        patch: dict[str, Any] = {"busy": bool(runs), "activeRuns": len(runs), "lastRunActivityAt": now_ms}
        if not runs:
            patch["activeRunStartedAt"] = None
        self.patch(channel, account_id, patch)

    def accounts_of(self, config: dict[str, Any] | None, channel: str) -> list[str]:
        """Configured accounts first (config order), then runtime-only ones (a removed account still running)."""
        ids = A.account_ids(A.section(config, channel))
        for ch, acc in self.runtime:
            if ch == channel and acc not in ids:
                ids.append(acc)
        return ids

    def snapshot(self, config: dict[str, Any] | None, channel: str, account_id: str, now_ms: int) -> dict[str, Any]:
        """The account snapshot (§5.6 fields) with its ``healthState`` evaluated now."""
        sec = A.section(config, channel)
        acc = A.account_config(sec, account_id)
        configured_here = sec is not None and account_id in A.account_ids(sec)
        snap: dict[str, Any] = {
            "accountId": account_id,
            "enabled": configured_here and A.is_enabled(sec, account_id),
            "configured": False,
            "running": False,
            "connected": False,
            "lastError": None,
            "lastInboundAt": None,
            "lastOutboundAt": None,
        }
        if isinstance(acc.get("name"), str):
            snap["name"] = acc["name"]
        snap.update(self.runtime.get((channel, account_id), {}))
        snap["healthState"] = health_state(snap, now_ms, self.meta(channel).liveness_ms)
        return snap


def not_ready(state: ChannelsState, config: dict[str, Any] | None, now_ms: int) -> list[str]:
    """``channel:account`` of every configured account that is not healthy, for ``/readyz``
    (readiness ignores ``unmanaged`` and ``stale-socket``, as published)."""
    out = []
    for channel in A.configured_channels(config):
        if not state.known(channel):
            continue
        for account in state.accounts_of(config, channel):
            health = state.snapshot(config, channel, account, now_ms)["healthState"]
            if not is_healthy(health) and health != "stale-socket":
                out.append(f"{channel}:{account}")
    return out


def channels_state(app: Any) -> ChannelsState:
    """The app's channel state (created on first use)."""
    state = app.parts.get(PART)
    if state is None:
        state = app.parts[PART] = ChannelsState()
    return state


__all__ = ["PART", "ChannelsState", "channels_state", "not_ready"]
