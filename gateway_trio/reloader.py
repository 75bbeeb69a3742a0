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
import watchfiles
from watchfiles import Change

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
            resolved = await trio.to_thread.run_sync(resolve_off_loop, resolve_again, abandon_on_cancel=True)
            apply_change(state, resolved, ref, control)
    except (OSError, RuntimeError) as exc:
        state.status = "disabled"
        state.last_error = f"watcher failed: {exc}"
        gw = ref.gateway
        if gw is not None:
            gw.log.error("reload", f"config hot-reload disabled: watcher failed: {exc}")


async def changes_of(path: Path, stop: trio.Event) -> AsyncIterator[set[tuple[Change, str]]]:
    """Settled changes of the file ``path`` (its directory watched, not recursively), until ``stop``.

    watchfiles' synchronous ``watch`` advanced in a Trio worker thread: the same Rust watcher and
    ``WATCHFILES_*`` defaults as ``awatch``, without importing anyio's Trio backend (~20 ms of
    start-up and its resident modules). ``yield_on_timeout`` hands control back every
    ``WAIT_MS`` so a cancelled task is not held by a blocked thread for longer.
    """
    changes = watchfiles.watch(
        path.parent,
        watch_filter=lambda _change, changed: Path(changed).name == path.name,
        debounce=DEBOUNCE_MS,
        step=STEP_MS,
        stop_event=stop,
        rust_timeout=WAIT_MS,
        yield_on_timeout=True,
        recursive=False,
        raise_interrupt=False,
    )
    try:
        while True:
            batch = await trio.to_thread.run_sync(next, changes, None)
            if batch is None:  # the stop event was set
                return
            if batch:
                yield batch
    finally:
        changes.close()


class Resolved:
    """``resolve_again`` run in a worker thread: the settings (with the provider keys they name) or
    the error to report. Exec SecretRefs run a command with a 10 s budget: never on the loop."""

    def __init__(self, resolve_again: Callable[[], GatewaySettings]) -> None:
        self.settings: GatewaySettings | None = None
        self.provider_keys: dict[str, str | None] | None = None
        self.error: StartupError | None = None
        try:
            self.settings = resolve_again()
        except StartupError as exc:
            self.error = exc
            return
        from .agent_host import resolve_provider_keys

        self.provider_keys = resolve_provider_keys(self.settings.config)

    def __call__(self) -> GatewaySettings:
        if self.error is not None:
            raise self.error
        assert self.settings is not None
        return self.settings


def resolve_off_loop(resolve_again: Callable[[], GatewaySettings]) -> Resolved:
    """For ``trio.to_thread.run_sync``: everything of a reload that may block (file, commands)."""
    return Resolved(resolve_again)


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
    keys = getattr(resolve_again, "provider_keys", None)
    live = gw.apply_hot(applied, new.config, provider_keys=keys)
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


__all__ = ["ReloadState", "Resolved", "apply_change", "changes_of", "resolve_off_loop", "watch_config"]
