"""Config hot reload: watch the file, validate the new version, plan with ``plan_reload``, apply.

The watcher (watchfiles, 300 ms debounce) lives across in-process restarts. For every change:
read and parse the file (JSON5) and resolve it as ``gateway run`` would (same flags); an invalid
edit is logged and the gateway keeps its last good config. Otherwise the pure planner decides:
no-op and hot paths are applied in place (log levels; a rotated token/password takes effect at
once and closes the connections that authenticated with the old secret, 4001 ``gateway auth
changed``), and a restart-class change triggers the in-process restart (port re-read from the
file unless pinned by ``--port`` or the environment).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
from watchfiles import Change
from watchfiles._rust_notify import RustNotify
from watchfiles.main import (
    _default_debug,
    _default_force_polling,
    _default_ignore_permission_denied,
    _default_poll_delay_ms,
)

from gateway_core.auth import SharedSecret
from gateway_core.reload import plan_reload

from .runtime import GatewaySettings, StartupError, reload_mode

if TYPE_CHECKING:
    from .listener import GatewayRef
    from .server import Control

DEBOUNCE_MS = 300
STEP_MS = 50
#: How long one wait in the watcher's thread lasts before it returns to Trio (as ``awatch``'s default).
WAIT_MS = 5_000


class ReloadState:
    """The last good settings, and the status ``health.configReload`` reports."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.status = "active"
        self.last_error: str | None = None
        #: How ``gateway run`` resolves its settings (set when the config is watched).
        self.resolve_again: Callable[[], GatewaySettings] | None = None
        #: Told about settings applied without a restart (the mDNS advertiser follows them).
        self.on_applied: Callable[[GatewaySettings], None] | None = None

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {"hotReloadStatus": self.status, "mode": reload_mode(self.settings.config)}
        if self.last_error:
            out["lastError"] = self.last_error
        return out


async def watch_config(
    state: ReloadState,
    resolve_again: Callable[[], GatewaySettings],
    ref: GatewayRef,
    control: Control,
    stop: trio.Event | None = None,
) -> None:
    """Run until ``stop`` is set (or cancelled): every settled change of the config file is
    evaluated and applied. Set ``stop`` before cancelling: the watcher's thread sees it within
    one 50 ms step, while a bare cancellation waits for its 5 s poll timeout."""
    path = state.settings.paths.config_path
    path.parent.mkdir(parents=True, exist_ok=True)

    try:
        async for _changes in changes_of(path, trio.Event() if stop is None else stop):
            apply_change(state, resolve_again, ref, control)
    except (OSError, RuntimeError) as exc:
        state.status = "disabled"
        state.last_error = f"watcher failed: {exc}"
        gw = ref.gateway
        if gw is not None:
            gw.log.error("reload", f"config hot-reload disabled: watcher failed: {exc}")


async def changes_of(path: Path, stop: trio.Event) -> AsyncIterator[set[tuple[Change, str]]]:
    """Settled changes of the file ``path`` (its directory watched, not recursively), until ``stop``.

    ``watchfiles.awatch`` on Trio without anyio: the same Rust watcher, with the same defaults from
    the ``WATCHFILES_*`` environment, waited on in a Trio worker thread. ``awatch`` costs ~20 ms of
    start-up (anyio's Trio backend is imported on its first call) and the resident modules. The
    watch is established before the first wait, so a change made once the gateway is ready is seen.
    """
    with RustNotify(
        [str(path.parent)],
        _default_debug(None),
        _default_force_polling(None),
        _default_poll_delay_ms(300),
        False,
        _default_ignore_permission_denied(None),
    ) as watcher:
        while True:
            raw = await trio.to_thread.run_sync(watcher.watch, DEBOUNCE_MS, STEP_MS, WAIT_MS, stop)
            if raw == "stop":
                return
            if raw == "signal":
                raise RuntimeError("watch thread unexpectedly received a signal")
            if raw == "timeout":
                continue
            changes = {(Change(kind), changed) for kind, changed in raw if Path(changed).name == path.name}
            if changes:
                yield changes


def apply_change(
    state: ReloadState,
    resolve_again: Callable[[], GatewaySettings],
    ref: GatewayRef,
    control: Control,
) -> None:
    """Evaluate the file as it is now against the last good settings, and act on the plan."""
    gw = ref.gateway
    if gw is None:
        return
    log = gw.log
    try:
        new = resolve_again()
    except StartupError as exc:
        text = " ".join(exc.message.removeprefix("Gateway failed to start: ").split())
        state.last_error = text
        log.warn("reload", f"config reload skipped (invalid config): {text}")
        return
    old = state.settings
    mode = reload_mode(new.config)
    plan = plan_reload(old.config or {}, new.config or {}, mode)
    if not plan.changes:
        return
    state.last_error = None
    log.info("reload", f"config change detected; evaluating reload ({', '.join(c.path for c in plan.changes)})")
    if mode == "off":
        log.info("reload", "config reload disabled (gateway.reload.mode=off)")
        return
    applied = set(plan.apply)
    # In place: logging and the shared secret (the rest of the hot set has no live consumer yet).
    if any(p.startswith("logging") for p in applied):
        gw.log.set_levels(new.log_level, new.console_level)
    live = gw.apply_hot(applied, new.config)
    if live:
        log.info("reload", f"config hot reload applied ({', '.join(live)})")
    rotated = [p for p in applied if p in ("gateway.auth.token", "gateway.auth.password")]
    if rotated:
        secret = SharedSecret(mode=new.auth_mode, token=new.token, password=new.password)  # type: ignore[arg-type]
        closed = gw.rotate_secret(secret)
        log.info("reload", f"config hot reload applied ({', '.join(rotated)}); closed {closed} connection(s)")
    state.settings = new
    if state.on_applied is not None and not plan.restart:
        state.on_applied(new)
    if plan.deferred:
        log.warn(
            "reload",
            f"config change requires gateway restart ({', '.join(plan.deferred)}) — not applied in mode {mode}; "
            "restart the gateway to apply it",
        )
    if "gateway.port" in plan.restart_reasons and new.port_source in ("--port", "OPENCLAW_GATEWAY_PORT"):
        log.warn("reload", f"gateway.port changed in the config, but the port is pinned by {new.port_source}")
    if plan.restart:
        log.warn(
            "reload",
            f"config change requires gateway restart ({', '.join(plan.restart_reasons) or 'mode restart'}) — preparing",
        )
        control.restart(f"config reload: {', '.join(plan.restart_reasons or plan.hot_paths)}", settings=new)
    elif applied and not rotated and not live:
        log.info("reload", f"config change applied (dynamic reads: {', '.join(sorted(applied))})")


__all__ = ["ReloadState", "apply_change", "changes_of", "watch_config"]
